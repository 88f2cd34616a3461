#include "storage/pg/migration.h"

#include <gtest/gtest.h>

namespace telemetry::pg {
namespace {

TEST(SplitSqlStatementsTest, SplitsOnTopLevelSemicolonsOnly) {
  auto s = SplitSqlStatements(
      "CREATE TABLE a (x text DEFAULT 'a;b');\n"
      "-- a comment; with a semicolon\n"
      "CREATE FUNCTION f() RETURNS int AS $fn$ BEGIN RETURN 1; END $fn$ "
      "LANGUAGE plpgsql;\n"
      "/* block; /* nested; */ still */ SELECT \"we;ird\";\n"
      "SELECT $$x;y$$;  SELECT E'it\\'s;'; SELECT $1;");
  ASSERT_EQ(s.size(), 6u);
  EXPECT_EQ(s[0], "CREATE TABLE a (x text DEFAULT 'a;b')");
  EXPECT_EQ(s[1].rfind("-- a comment", 0), 0u);
  EXPECT_NE(s[1].find("END $fn$ LANGUAGE plpgsql"), std::string::npos);
  EXPECT_NE(s[2].find("SELECT \"we;ird\""), std::string::npos);
  EXPECT_EQ(s[3], "SELECT $$x;y$$");
  EXPECT_EQ(s[4], "SELECT E'it\\'s;'");
  EXPECT_EQ(s[5], "SELECT $1");
}

TEST(SplitSqlStatementsTest, DropsCommentOnlyAndEmptyStatements) {
  EXPECT_TRUE(SplitSqlStatements("  ;\n-- only a comment\n;/* x */").empty());
}

TEST(ParseMigrationTest, ReadsVersionModeSectionsAndTransactionFlag) {
  auto m = ParseMigration("0007_add_thing.timescale.sql",
                          "-- about\n-- transaction: none\n"
                          "-- +migrate up\nCREATE TABLE t (x int);\n"
                          "-- +migrate down\nDROP TABLE t;\n");
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->version, 7);
  EXPECT_EQ(m->name, "add_thing");
  EXPECT_EQ(m->mode, "timescale");
  EXPECT_FALSE(m->transactional);
  EXPECT_EQ(m->up_sql, "CREATE TABLE t (x int);\n");
  EXPECT_EQ(m->down_sql, "DROP TABLE t;\n");
  EXPECT_TRUE(m->AppliesTo(StorageMode::kTimescale));
  EXPECT_FALSE(m->AppliesTo(StorageMode::kNative));
}

TEST(ParseMigrationTest, RefusesBadNamesAndEmptyUp) {
  EXPECT_EQ(ParseMigration("x.sql", "-- +migrate up\nSELECT 1;").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseMigration("0001_a.bogus.sql", "-- +migrate up\nSELECT 1;")
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseMigration("0001_a.sql", "-- +migrate up\n-- nothing\n")
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(ParseMigrationTest, ChecksumChangesWithAnyEdit) {
  auto a = ParseMigration("0001_a.sql", "-- +migrate up\nSELECT 1;\n");
  auto b = ParseMigration("0001_a.sql", "-- +migrate up\nSELECT 2;\n");
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_NE(a->checksum, b->checksum);
  EXPECT_EQ(a->checksum.size(), 16u);
}

TEST(EmbeddedMigrationsTest, EveryModeHasIncreasingVersionsWithDownSteps) {
  auto all = LoadEmbeddedMigrations();
  ASSERT_TRUE(all.ok()) << all.status();
  for (StorageMode mode : {StorageMode::kNative, StorageMode::kTimescale}) {
    int last = 0, count = 0;
    for (const Migration& m : *all) {
      if (!m.AppliesTo(mode)) continue;
      EXPECT_GT(m.version, last) << m.file_name;
      last = m.version;
      ++count;
      EXPECT_FALSE(m.down_sql.empty()) << m.file_name << " has no down section";
    }
    EXPECT_GE(count, 6) << StorageModeName(mode);
  }
}

}  // namespace
}  // namespace telemetry::pg
