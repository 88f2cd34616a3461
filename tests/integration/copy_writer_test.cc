// The COPY writer against a real PostgreSQL: the fast path, the staging
// fallback on duplicates with exact per-batch counts, sensor registration,
// value fidelity (timestamps, NULLs, JSONB), partitions, and failure when the
// database goes away.
#include "storage/pg/copy_writer.h"

#include <gtest/gtest.h>

#include "tests/support/servers_environment.h"

namespace telemetry::pg {
namespace {

using telemetry::testing::MigratedDatabase;
using telemetry::testing::QueryScalar;

class CountingObserver : public WriteObserver {
 public:
  void OnCommitted(Path path, int64_t rows, absl::Duration) override {
    (path == Path::kCopy ? copy_rows : staging_rows) += rows;
  }
  void OnDuplicateFallback() override { ++fallbacks; }
  void OnDatabaseError(const absl::Status&) override { ++errors; }
  int64_t copy_rows = 0, staging_rows = 0, fallbacks = 0, errors = 0;
};

// 2026-01-01T00:00:00Z plus `i` seconds, in microseconds.
int64_t T(int i) { return (1767225600LL + i) * 1'000'000; }

std::vector<ReadingRow> Rows(const std::string& sensor, int first, int n) {
  std::vector<ReadingRow> rows;
  for (int i = first; i < first + n; ++i) {
    ReadingRow r;
    r.sensor_id = sensor;
    r.timestamp_us = T(i);
    r.value = i * 0.5;
    r.sensor_type = "vibration";
    rows.push_back(r);
  }
  return rows;
}

class CopyWriterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    conninfo_ = MigratedDatabase();
    CopyWriterOptions o;
    o.conninfo = conninfo_;
    o.mode = StorageMode::kNative;
    o.reconnect_backoff = absl::ZeroDuration();
    writer_ = std::make_unique<CopyWriter>(o, &caches_, &observer_);
  }
  std::string Q(const std::string& sql) { return QueryScalar(conninfo_, sql); }

  std::string conninfo_;
  WriterCaches caches_;
  CountingObserver observer_;
  std::unique_ptr<CopyWriter> writer_;
};

TEST_F(CopyWriterTest, CopiesBatchesAndRegistersTheirSensors) {
  auto a = Rows("pump-1", 0, 100);
  auto b = Rows("pump-2", 0, 50);
  auto r = writer_->WriteBatches({&a, &b}, false);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->size(), 2u);
  EXPECT_EQ((*r)[0].inserted, 100u);
  EXPECT_EQ((*r)[1].inserted, 50u);
  EXPECT_EQ(observer_.copy_rows, 150);
  EXPECT_EQ(Q("SELECT count(*) FROM sensor_readings"), "150");
  EXPECT_EQ(Q("SELECT string_agg(sensor_id || ':' || type, ',' ORDER BY sensor_id) "
              "FROM sensors"),
            "pump-1:vibration,pump-2:vibration");
  // Every row got a surrogate id from the sequence.
  EXPECT_EQ(Q("SELECT count(DISTINCT id) FROM sensor_readings"), "150");
  // Rows went into the day's partition, not the default.
  EXPECT_EQ(Q("SELECT count(*) FROM sensor_readings_p20260101"), "150");
}

TEST_F(CopyWriterTest, CreatesPartitionsOnlyForTheDaysThatReceiveRows) {
  // Two readings 170 days apart: two partitions, not 171.
  auto a = Rows("old-1", 0, 1);
  auto b = Rows("old-1", 170 * 86400, 1);
  auto c = Rows("old-1", 171 * 86400, 1);  // the next day: one call with b's
  const std::string before = Q("SELECT count(*) FROM pg_inherits WHERE inhparent = "
                               "'sensor_readings'::regclass");
  ASSERT_TRUE(writer_->WriteBatches({&a, &b, &c}, false).ok());
  EXPECT_EQ(Q("SELECT count(*) FROM pg_inherits WHERE inhparent = "
              "'sensor_readings'::regclass"),
            std::to_string(std::stoi(before) + 3));
  EXPECT_EQ(Q("SELECT count(*) FROM sensor_readings_default"), "0");
  EXPECT_EQ(Q("SELECT count(*) FROM sensor_readings"), "3");
}

TEST_F(CopyWriterTest, RoundTripsEveryColumnExactly) {
  ReadingRow r;
  r.sensor_id = "s'; DROP TABLE sensors; --";
  r.timestamp_us = T(0) + 123456;
  r.value = -1.0 / 3.0;
  r.unit = "mm/s";
  r.quality = 0.25;
  r.metadata_json = R"({"fw":"2.1","ch":[1,2]})";
  std::vector<ReadingRow> batch{r};
  ASSERT_TRUE(writer_->WriteBatches({&batch}, false).ok());
  EXPECT_EQ(Q("SELECT to_char(\"timestamp\" AT TIME ZONE 'UTC', "
              "'YYYY-MM-DD HH24:MI:SS.US') || '|' || sensor_id || '|' || "
              "coalesce(sensor_type, 'NULL') || '|' || "
              "(value = -1.0/3.0)::text || '|' || unit || '|' || quality || "
              "'|' || (sensor_metadata->'ch'->>1) FROM sensor_readings"),
            "2026-01-01 00:00:00.123456|s'; DROP TABLE sensors; --|NULL|true|"
            "mm/s|0.25|2");
}

TEST_F(CopyWriterTest, DuplicateFallsBackToStagingWithPerBatchCounts) {
  auto a = Rows("s", 0, 10);
  ASSERT_TRUE(writer_->WriteBatches({&a}, false).ok());
  // A retry of `a` (all duplicates), a partial overlap, and new rows.
  auto retry = Rows("s", 0, 10);
  auto overlap = Rows("s", 5, 10);  // 5..14: 5 old, 5 new
  auto fresh = Rows("t", 0, 7);
  auto r = writer_->WriteBatches({&retry, &overlap, &fresh}, false);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(observer_.fallbacks, 1);
  EXPECT_EQ((*r)[0].inserted, 0u);
  EXPECT_EQ((*r)[0].duplicates, 10u);
  EXPECT_EQ((*r)[1].inserted, 5u);
  EXPECT_EQ((*r)[1].duplicates, 5u);
  EXPECT_EQ((*r)[2].inserted, 7u);
  EXPECT_EQ((*r)[2].duplicates, 0u);
  EXPECT_EQ(Q("SELECT count(*) FROM sensor_readings"), "22");
}

TEST_F(CopyWriterTest, RepeatsAcrossBatchesOfOneGroupAreStoredOnce) {
  auto a = Rows("s", 0, 10);
  auto b = Rows("s", 0, 10);
  auto r = writer_->WriteBatches({&a, &b}, true);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ((*r)[0].inserted, 10u);
  EXPECT_EQ((*r)[1].duplicates, 10u);
  EXPECT_EQ(Q("SELECT count(*) FROM sensor_readings"), "10");
  EXPECT_EQ(observer_.staging_rows, 10);
}

TEST_F(CopyWriterTest, CreatesPartitionsForEveryDayWritten) {
  std::vector<ReadingRow> rows;
  for (int day = 0; day < 3; ++day) {
    ReadingRow r;
    r.sensor_id = "s";
    r.timestamp_us = T(day * 86400 + 60);
    rows.push_back(r);
  }
  ASSERT_TRUE(writer_->WriteBatches({&rows}, false).ok());
  EXPECT_EQ(Q("SELECT count(*) FROM sensor_readings_default"), "0");
  EXPECT_EQ(Q("SELECT count(*) FROM pg_class WHERE relname IN "
              "('sensor_readings_p20260101','sensor_readings_p20260102',"
              "'sensor_readings_p20260103')"),
            "3");
}

TEST_F(CopyWriterTest, FailsRetryablyWhileTheDatabaseIsDownThenRecovers) {
  auto a = Rows("s", 0, 5);
  ASSERT_TRUE(writer_->WriteBatches({&a}, false).ok());
  ASSERT_TRUE(telemetry::testing::Pg().Stop().ok());
  auto b = Rows("s", 5, 5);
  auto r = writer_->WriteBatches({&b}, false);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable) << r.status();
  EXPECT_GE(observer_.errors, 1);
  ASSERT_TRUE(telemetry::testing::Pg().Restart().ok());
  r = writer_->WriteBatches({&b}, false);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ((*r)[0].inserted, 5u);
  EXPECT_EQ(Q("SELECT count(*) FROM sensor_readings"), "10");
}

TEST(TextArrayLiteralTest, EscapesQuotesAndBackslashes) {
  EXPECT_EQ(ToTextArrayLiteral({"a", "b\"c", "d\\e", "", "x,y"}),
            R"({"a","b\"c","d\\e","","x,y"})");
}

}  // namespace
}  // namespace telemetry::pg
