#include "client/csv_readings.h"

#include <gtest/gtest.h>

#include <sstream>

namespace telemetry::client {
namespace {

CsvReadingParser Parser() {
  auto p = CsvReadingParser::Create({"sensor_id", "timestamp", "value", "unit", "metadata"});
  EXPECT_TRUE(p.ok());
  return *p;
}

TEST(CsvReadingsTest, ParsesRfc3339AndUnixSecondsToTheMicrosecond) {
  auto r = Parser().Parse({"s", "2026-11-24T08:00:00.123456Z", "1.5", "bar", ""});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->timestamp().seconds(), 1795507200);
  EXPECT_EQ(r->timestamp().nanos(), 123456000);
  auto u = Parser().Parse({"s", "-0.5", "1", "", ""});
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->timestamp().seconds(), -1);
  EXPECT_EQ(u->timestamp().nanos(), 500000000);
}

// Found by csv_fuzz: huge Unix seconds overflowed the microsecond arithmetic.
TEST(CsvReadingsTest, RefusesTimestampsOutsideYears1To9999) {
  for (const char* ts : {"1e300", "-9.3e18", "253402300800", "nan", "inf"}) {
    auto r = Parser().Parse({"s", ts, "1", "", ""});
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << ts;
  }
}

TEST(CsvReadingsTest, QuotedCellsMayHoldCommasQuotesAndNewlines) {
  std::istringstream in("a,\"b,\"\"c\"\"\nd\",e\n");
  std::vector<std::string> cells;
  ASSERT_TRUE(ReadCsvRecord(in, &cells));
  ASSERT_EQ(cells.size(), 3u);
  EXPECT_EQ(cells[1], "b,\"c\"\nd");
  EXPECT_FALSE(ReadCsvRecord(in, &cells));
}

TEST(CsvReadingsTest, HeaderMustNameTheRequiredColumns) {
  EXPECT_FALSE(CsvReadingParser::Create({"sensor_id", "value"}).ok());
  EXPECT_FALSE(CsvReadingParser::Create({"sensor_id", "timestamp", "value", "bogus"}).ok());
}

TEST(CsvReadingsTest, TheContentKeyIsStableAndFollowsTheContent) {
  telemetry::v1::ReadingBatch batch;
  auto* r = batch.add_readings();
  r->set_sensor_id("pump-1");
  r->set_value(1.5);
  r->mutable_timestamp()->set_seconds(1764000000);
  // Pinned: a file sent again, by any version of the tool, gets the same
  // keys and is answered as duplicates.
  EXPECT_EQ(ContentKey(batch), "csv:650373d175d43e9f:1");
  telemetry::v1::ReadingBatch other = batch;
  other.mutable_readings(0)->set_value(1.6);
  EXPECT_NE(ContentKey(other), ContentKey(batch));
}

}  // namespace
}  // namespace telemetry::client
