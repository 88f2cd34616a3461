#include <gtest/gtest.h>

#include "storage/pg/connection.h"

namespace telemetry::pg {
namespace {

TEST(RedactConninfoTest, HidesPasswordsInEveryForm) {
  EXPECT_EQ(RedactConninfo("postgresql://app:s3cr3t@db:5432/x"),
            "postgresql://app:***@db:5432/x");
  EXPECT_EQ(RedactConninfo("host=db password=s3cr3t user=app"),
            "host=db password=*** user=app");
  EXPECT_EQ(RedactConninfo("host=db password='s3 cr\\'et' user=app"),
            "host=db password=*** user=app");
  EXPECT_EQ(RedactConninfo("postgresql://db/x?user=a&password=s3cr3t&sslmode=require"),
            "postgresql://db/x?user=a&password=***&sslmode=require");
  EXPECT_EQ(RedactConninfo("host=db user=app"), "host=db user=app");
}

TEST(SqlStateMappingTest, RetryableClassesMapToRetryableCodes) {
  EXPECT_EQ(CodeForSqlState("08006"), absl::StatusCode::kUnavailable);
  EXPECT_EQ(CodeForSqlState("57P01"), absl::StatusCode::kUnavailable);
  EXPECT_EQ(CodeForSqlState("40P01"), absl::StatusCode::kAborted);
  EXPECT_EQ(CodeForSqlState("53100"), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(CodeForSqlState("25006"), absl::StatusCode::kUnavailable);
  EXPECT_EQ(CodeForSqlState("23505"), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(CodeForSqlState("22P02"), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(CodeForSqlState("42501"), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(CodeForSqlState("42P01"), absl::StatusCode::kInternal);
}

}  // namespace
}  // namespace telemetry::pg
