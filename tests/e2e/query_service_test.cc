// QueryService end to end: latest, range export, hourly summary, drift, the sensor registry.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "server/query/drift_stats.h"
#include "server/query/query_service.h"
#include "server/query/sql_values.h"
#include "storage/local/http_get.h"
#include "storage/pg/connection.h"
#include "tests/e2e/read_service_fixture.h"

namespace telemetry::testing {
namespace {

TEST_F(ReadServiceTest, LatestReadingsMatchSqlNewestFirst) {
  grpc::ClientContext ctx;
  v1::LatestReadingsRequest req;
  req.set_sensor_id("s1");
  req.set_limit(100);
  v1::LatestReadingsResponse resp;
  ASSERT_TRUE(query_->LatestReadings(&ctx, req, &resp).ok());
  ASSERT_EQ(resp.readings_size(), 100);
  EXPECT_EQ(resp.readings(0).sensor_id(), "s1");
  // The same rows straight from SQL, in the same order.
  auto conn = pg::Connection::Open(conninfo_);
  ASSERT_TRUE(conn.ok());
  auto rows = (*conn)->Query(
      "SELECT (extract(epoch FROM \"timestamp\") * 1000000)::bigint, value, id "
      "FROM sensor_readings WHERE sensor_id = 's1' ORDER BY \"timestamp\" DESC LIMIT 100");
  ASSERT_TRUE(rows.ok());
  ASSERT_EQ(rows->rows(), 100);
  for (int i = 0; i < 100; ++i) {
    EXPECT_EQ(query::ToMicros(resp.readings(i).timestamp()), rows->GetInt(i, 0)) << i;
    EXPECT_EQ(resp.readings(i).value(), rows->GetDouble(i, 1)) << i;
    EXPECT_EQ(resp.readings(i).id(), rows->GetInt(i, 2)) << i;
    EXPECT_EQ(resp.readings(i).unit(), "bar");
  }
  // Default limit.
  grpc::ClientContext ctx2;
  req.clear_limit();
  v1::LatestReadingsResponse defaulted;
  ASSERT_TRUE(query_->LatestReadings(&ctx2, req, &defaulted).ok());
  EXPECT_EQ(defaulted.readings_size(), 100);

  grpc::ClientContext bad;
  req.set_limit(20000);
  EXPECT_EQ(query_->LatestReadings(&bad, req, &resp).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
}

// A sensor whose readings are spread over months: ten in the last hour,
// fifty ten days ago, sixty a hundred days ago. Whichever window answers,
// the result is exactly the newest `limit` rows.
// Latest-N's windows in both storage modes (timescale where installed).
class LatestReadingsTest : public ReadServiceTest,
                           public ::testing::WithParamInterface<pg::StorageMode> {
 protected:
  void SetUp() override {
    if (GetParam() == pg::StorageMode::kTimescale &&
        !local::PostgresServer::TimescaleInstalled()) {
      GTEST_SKIP() << "TimescaleDB is not installed for this PostgreSQL";
    }
    mode_ = GetParam();
    ReadServiceTest::SetUp();
  }
};

INSTANTIATE_TEST_SUITE_P(Modes, LatestReadingsTest,
                         ::testing::Values(pg::StorageMode::kNative,
                                           pg::StorageMode::kTimescale),
                         [](const ::testing::TestParamInfo<pg::StorageMode>& mode) {
                           return std::string(pg::StorageModeName(mode.param));
                         });

TEST_P(LatestReadingsTest, WidensItsWindowOnlyWhenTheNewestAreOlder) {
  const int64_t now_us = absl::ToUnixMicros(absl::Now());
  const int64_t day_us = 86'400'000'000LL, minute_us = 60'000'000LL;
  v1::ReadingBatch b;
  b.set_idempotency_key(absl::StrCat(Db(), "-spread"));
  // One a minute in the future (inside the gateway's skew): newest of all.
  *b.add_readings() = MakeReading("spread", now_us + minute_us, -1);
  for (int i = 0; i < 10; ++i) *b.add_readings() = MakeReading("spread", now_us - (i + 1) * minute_us, i);
  for (int i = 0; i < 50; ++i) {
    *b.add_readings() = MakeReading("spread", now_us - 10 * day_us - i * minute_us, 100 + i);
  }
  for (int i = 0; i < 60; ++i) {
    *b.add_readings() = MakeReading("spread", now_us - 100 * day_us - i * minute_us, 200 + i);
  }
  Write(b);
  auto conn = pg::Connection::Open(conninfo_);
  ASSERT_TRUE(conn.ok());
  for (uint32_t limit : {5u, 11u, 12u, 61u, 62u, 100u, 121u, 500u}) {
    grpc::ClientContext ctx;
    v1::LatestReadingsRequest req;
    req.set_sensor_id("spread");
    req.set_limit(limit);
    v1::LatestReadingsResponse resp;
    ASSERT_TRUE(query_->LatestReadings(&ctx, req, &resp).ok());
    auto rows = (*conn)->Query(absl::StrCat(
        "SELECT (extract(epoch FROM \"timestamp\") * 1000000)::bigint FROM sensor_readings "
        "WHERE sensor_id = 'spread' ORDER BY \"timestamp\" DESC LIMIT ", limit));
    ASSERT_TRUE(rows.ok());
    ASSERT_EQ(resp.readings_size(), rows->rows()) << "limit " << limit;
    for (int i = 0; i < rows->rows(); ++i) {
      EXPECT_EQ(query::ToMicros(resp.readings(i).timestamp()), rows->GetInt(i, 0))
          << "limit " << limit << ", row " << i;
    }
  }
  // A sensor with no readings at all: every window, then an empty answer.
  grpc::ClientContext ctx;
  v1::LatestReadingsRequest req;
  req.set_sensor_id("never-reported");
  v1::LatestReadingsResponse resp;
  ASSERT_TRUE(query_->LatestReadings(&ctx, req, &resp).ok());
  EXPECT_EQ(resp.readings_size(), 0);
}

TEST_P(LatestReadingsTest, PlanUsesTheIndexWithoutASortAndPrunesOldData) {
  // One reading ten days old: its partition (chunk) must not be in the plan
  // of the first window.
  v1::ReadingBatch b;
  b.set_idempotency_key(absl::StrCat(Db(), "-old"));
  *b.add_readings() =
      MakeReading("s1", absl::ToUnixMicros(absl::Now() - absl::Hours(24 * 10)), 1);
  Write(b);
  auto c = pg::Connection::Open(conninfo_);
  ASSERT_TRUE(c.ok());
  ASSERT_TRUE((*c)->Exec("ANALYZE sensor_readings").ok());
  const std::string old_part = QueryScalar(
      conninfo_,
      "SELECT c.relname FROM sensor_readings r JOIN pg_class c ON c.oid = r.tableoid "
      "WHERE r.sensor_id = 's1' AND r.\"timestamp\" < now() - interval '5 days'");
  ASSERT_FALSE(old_part.empty());
  // The service's own statements, prepared as the service prepares them;
  // both the plan for the argument value and the generic plan a prepared
  // statement settles on after a few executions.
  const auto windows = query::LatestReadingsWindows(absl::Now());
  ASSERT_EQ(windows.size(), 3u);
  for (size_t w = 0; w < windows.size(); ++w) {
    const std::string name = absl::StrCat("latest", w);
    ASSERT_TRUE((*c)->Exec(absl::StrCat("PREPARE ", name, "(text) AS ",
                                        query::LatestReadingsSql(100, windows[w]))).ok());
    for (const char* mode : {"force_custom_plan", "force_generic_plan"}) {
      ASSERT_TRUE((*c)->Exec(absl::StrCat("SET plan_cache_mode = ", mode)).ok());
      auto plan = (*c)->Query(absl::StrCat("EXPLAIN EXECUTE ", name, "('s1')"));
      ASSERT_TRUE(plan.ok()) << plan.status();
      std::string text;
      for (int i = 0; i < plan->rows(); ++i) absl::StrAppend(&text, plan->Get(i, 0), "\n");
      // The (sensor_id, timestamp DESC) index of each partition or chunk.
      EXPECT_NE(text.find("sensor_id_timestamp"), std::string::npos)
          << "window " << w << ", " << mode << "\n" << text;
      // Merge Append keeps the index order ("Sort Key:"); a Sort node would not.
      EXPECT_EQ(text.find("Sort  ("), std::string::npos)
          << "window " << w << ", " << mode << ": an explicit sort:\n" << text;
      if (w == 0) {
        EXPECT_EQ(text.find(old_part), std::string::npos)
            << mode << ": the first window's plan reads " << old_part << "\n" << text;
      }
      if (w == windows.size() - 1) {
        EXPECT_NE(text.find(old_part), std::string::npos)
            << "the unbounded plan must reach old data:\n" << text;
      }
    }
  }
}

TEST_F(ReadServiceTest, RangeExportStreamsEveryRowInChunksAndResumes) {
  v1::ReadingsRangeRequest req;
  query::SetFromMicros(base_us_ + kHourUs, req.mutable_start());
  query::SetFromMicros(base_us_ + 3 * kHourUs, req.mutable_end());
  req.set_chunk_size(500);
  std::vector<std::string> all;
  std::string third_cursor;
  {
    grpc::ClientContext ctx;
    auto stream = query_->ReadingsRange(&ctx, req);
    v1::ReadingsRangeChunk chunk;
    int chunks = 0;
    while (stream->Read(&chunk)) {
      EXPECT_LE(chunk.readings_size(), 500);
      for (const auto& r : chunk.readings()) {
        all.push_back(absl::StrCat(query::ToMicros(r.timestamp()), "/", r.sensor_id()));
      }
      if (++chunks == 3) third_cursor = chunk.cursor();
    }
    ASSERT_TRUE(stream->Finish().ok());
  }
  EXPECT_EQ(static_cast<int64_t>(all.size()),
            std::stoll(Q(absl::StrCat("SELECT count(*) FROM sensor_readings WHERE "
                                      "\"timestamp\" >= ", Ts(base_us_ + kHourUs),
                                      " AND \"timestamp\" < ", Ts(base_us_ + 3 * kHourUs)))));
  EXPECT_EQ(all.size(), 3u * 720u);
  // Resume after the third chunk: exactly the remainder.
  req.set_cursor(third_cursor);
  std::vector<std::string> rest;
  grpc::ClientContext ctx;
  auto stream = query_->ReadingsRange(&ctx, req);
  v1::ReadingsRangeChunk chunk;
  while (stream->Read(&chunk)) {
    for (const auto& r : chunk.readings()) {
      rest.push_back(absl::StrCat(query::ToMicros(r.timestamp()), "/", r.sensor_id()));
    }
  }
  ASSERT_TRUE(stream->Finish().ok());
  EXPECT_EQ(rest, std::vector<std::string>(all.begin() + 1500, all.end()));
}

// HourlySummary as "sensor@hour:count,avg,min,max:source" lines, and the same
// statistics from raw rows.
std::string SummaryText(const v1::HourlySummaryResponse& r, bool with_source) {
  std::string out;
  for (const auto& b : r.buckets()) {
    absl::StrAppend(&out, b.sensor_id(), "@", query::ToMicros(b.hour()), ":",
                    b.reading_count(), ",", absl::StrFormat("%.9g", b.avg_value()), ",",
                    b.min_value(), ",", b.max_value());
    if (with_source) absl::StrAppend(&out, ":", b.source());
    out += " ";
  }
  return out;
}

TEST_F(ReadServiceTest, HourlySummaryIsCompleteBeforeAndAfterMaterialisation) {
  v1::HourlySummaryRequest req;
  req.add_sensor_ids("s0");
  req.add_sensor_ids("s2");
  query::SetFromMicros(base_us_, req.mutable_start());
  query::SetFromMicros(base_us_ + 5 * kHourUs, req.mutable_end());
  auto fetch = [&]() {
    grpc::ClientContext ctx;
    v1::HourlySummaryResponse resp;
    grpc::Status s = query_->HourlySummary(&ctx, req, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return resp;
  };
  // Nothing materialised yet: everything raw, 2 sensors x 5 hours.
  v1::HourlySummaryResponse before = fetch();
  ASSERT_EQ(before.buckets_size(), 10);
  for (const auto& b : before.buckets()) EXPECT_EQ(b.source(), v1::HourlyBucket::SOURCE_RAW);
  EXPECT_EQ(before.buckets(0).reading_count(), 360);

  // Materialise the first three hours.
  grpc::ClientContext rctx;
  v1::RefreshAggregateRequest refresh;
  query::SetFromMicros(base_us_, refresh.mutable_start());
  query::SetFromMicros(base_us_ + 3 * kHourUs, refresh.mutable_end());
  v1::RefreshAggregateResponse refreshed;
  ASSERT_TRUE(admin_->RefreshAggregate(&rctx, refresh, &refreshed).ok());
  EXPECT_EQ(refreshed.hours_refreshed(), 3);
  v1::HourlySummaryResponse after = fetch();
  EXPECT_EQ(query::ToMicros(after.materialized_until()), base_us_ + 3 * kHourUs);
  ASSERT_EQ(after.buckets_size(), 10);
  for (const auto& b : after.buckets()) {
    bool old_hour = query::ToMicros(b.hour()) < base_us_ + 3 * kHourUs;
    EXPECT_EQ(b.source(), old_hour ? v1::HourlyBucket::SOURCE_MATERIALIZED
                                   : v1::HourlyBucket::SOURCE_RAW)
        << query::ToMicros(b.hour());
  }
  EXPECT_EQ(SummaryText(after, false), SummaryText(before, false))
      << "materialised and raw statistics must agree";

  // A late reading lands in a materialised hour: it is served raw (complete)
  // until the next refresh, then materialised again.
  v1::ReadingBatch late;
  late.set_idempotency_key(absl::StrCat(Db(), "-late"));
  *late.add_readings() = MakeReading("s0", base_us_ + 5'000'000, 999);
  Write(late);
  v1::HourlySummaryResponse with_late = fetch();
  EXPECT_EQ(with_late.buckets(0).reading_count(), 361);
  EXPECT_EQ(with_late.buckets(0).max_value(), 999);
  EXPECT_EQ(with_late.buckets(0).source(), v1::HourlyBucket::SOURCE_RAW);
  grpc::ClientContext rctx2;
  ASSERT_TRUE(admin_->RefreshAggregate(&rctx2, refresh, &refreshed).ok());
  v1::HourlySummaryResponse rematerialised = fetch();
  EXPECT_EQ(rematerialised.buckets(0).reading_count(), 361);
  EXPECT_EQ(rematerialised.buckets(0).source(), v1::HourlyBucket::SOURCE_MATERIALIZED);
  EXPECT_EQ(Q("SELECT reading_count FROM sensor_readings_summary_hourly WHERE sensor_id = 's0' "
              "ORDER BY hour LIMIT 1"),
            "361");
  // Every bucket equals the statistics computed from raw rows.
  auto conn = pg::Connection::Open(conninfo_);
  ASSERT_TRUE(conn.ok());
  auto raw = (*conn)->Query(
      "SELECT sensor_id, (extract(epoch FROM date_trunc('hour', \"timestamp\", 'UTC')) * "
      "1000000)::bigint, count(*), avg(value), min(value), max(value) FROM sensor_readings "
      "WHERE sensor_id IN ('s0', 's2') GROUP BY 1, 2 ORDER BY 1, 2");
  ASSERT_TRUE(raw.ok());
  ASSERT_EQ(raw->rows(), rematerialised.buckets_size());
  for (int i = 0; i < raw->rows(); ++i) {
    const auto& b = rematerialised.buckets(i);
    EXPECT_EQ(b.sensor_id(), raw->Get(i, 0));
    EXPECT_EQ(query::ToMicros(b.hour()), raw->GetInt(i, 1));
    EXPECT_EQ(b.reading_count(), raw->GetInt(i, 2));
    EXPECT_NEAR(b.avg_value(), raw->GetDouble(i, 3), 1e-9);
    EXPECT_EQ(b.min_value(), raw->GetDouble(i, 4));
    EXPECT_EQ(b.max_value(), raw->GetDouble(i, 5));
  }
}

TEST_F(ReadServiceTest, ResponsesStayUnderTheClientsDefaultReceiveLimit) {
  // 300 readings with 15 KiB of metadata each: 4.5 MB, more than any gRPC
  // client accepts in one message by default (4 MiB).
  v1::ReadingBatch b;
  b.set_idempotency_key(absl::StrCat(Db(), "-fat"));
  for (int i = 0; i < 300; ++i) {
    v1::Reading r = MakeReading("fat", base_us_ + i * 1'000'000LL, i);
    (*r.mutable_metadata()->mutable_fields())["blob"].set_string_value(
        std::string(15 * 1024, 'm'));
    *b.add_readings() = r;
  }
  Write(b);
  v1::LatestReadingsRequest latest;
  latest.set_sensor_id("fat");
  latest.set_limit(400);
  v1::LatestReadingsResponse newest;
  grpc::ClientContext c1;
  grpc::Status st = query_->LatestReadings(&c1, latest, &newest);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_TRUE(newest.truncated());
  EXPECT_GT(newest.readings_size(), 100);
  EXPECT_LT(newest.readings_size(), 300);
  EXPECT_EQ(query::ToMicros(newest.readings(0).timestamp()), base_us_ + 299 * 1'000'000LL);

  v1::ReadingsRangeRequest range;
  range.set_sensor_id("fat");
  query::SetFromMicros(base_us_, range.mutable_start());
  query::SetFromMicros(base_us_ + kHourUs, range.mutable_end());
  range.set_chunk_size(50'000);
  grpc::ClientContext c2;
  auto reader = query_->ReadingsRange(&c2, range);
  v1::ReadingsRangeChunk chunk;
  int chunks = 0, readings = 0;
  while (reader->Read(&chunk)) {
    ++chunks;
    readings += chunk.readings_size();
    EXPECT_LT(chunk.ByteSizeLong(), 4u << 20);
  }
  st = reader->Finish();
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(readings, 300);
  EXPECT_GE(chunks, 2);
}

TEST_F(ReadServiceTest, DriftWindowsMatchHandComputedStatistics) {
  // Reference values 1..10, current 1..8, one per second.
  v1::ReadingBatch b;
  b.set_idempotency_key(absl::StrCat(Db(), "-drift"));
  for (int i = 1; i <= 10; ++i) *b.add_readings() = MakeReading("drift", base_us_ + i * 1'000'000LL, i);
  for (int i = 1; i <= 8; ++i) {
    *b.add_readings() = MakeReading("drift", base_us_ + kHourUs + i * 1'000'000LL, i);
  }
  Write(b);
  v1::DriftWindowsRequest req;
  req.set_sensor_id("drift");
  query::SetFromMicros(base_us_, req.mutable_reference_start());
  query::SetFromMicros(base_us_ + kHourUs, req.mutable_reference_end());
  query::SetFromMicros(base_us_ + kHourUs, req.mutable_current_start());
  query::SetFromMicros(base_us_ + 2 * kHourUs, req.mutable_current_end());
  req.set_bins(2);
  grpc::ClientContext ctx;
  v1::DriftWindowsResponse resp;
  ASSERT_TRUE(query_->DriftWindows(&ctx, req, &resp).ok());
  EXPECT_EQ(resp.reference().count(), 10);
  EXPECT_DOUBLE_EQ(resp.reference().mean(), 5.5);
  EXPECT_NEAR(resp.reference().stddev(), 3.0276503540974917, 1e-12);
  EXPECT_EQ(resp.current().count(), 8);
  EXPECT_DOUBLE_EQ(resp.current().mean(), 4.5);
  // KS: at x = 8, F_ref = 0.8 and F_cur = 1.0.
  EXPECT_DOUBLE_EQ(resp.ks_statistic(), 0.2);
  // PSI over two bins split at 5.5: reference 0.5/0.5, current 0.625/0.375.
  EXPECT_NEAR(resp.psi(), 0.125 * std::log(1.25) - 0.125 * std::log(0.75), 1e-12);
  EXPECT_FALSE(resp.reference().truncated());

  req.set_max_points(5);
  grpc::ClientContext ctx2;
  ASSERT_TRUE(query_->DriftWindows(&ctx2, req, &resp).ok());
  EXPECT_EQ(resp.reference().count(), 5);
  EXPECT_TRUE(resp.reference().truncated());
  EXPECT_EQ(resp.reference().min(), 6) << "the newest points are kept";

  // An empty window, and an unknown sensor, are not "no drift": both get
  // the same FAILED_PRECONDITION naming the empty window.
  for (const std::string& sensor : {std::string("drift"), std::string("no-such-sensor")}) {
    v1::DriftWindowsRequest empty = req;
    empty.set_sensor_id(sensor);
    if (sensor == "drift") {
      query::SetFromMicros(base_us_ + 3 * kHourUs, empty.mutable_current_start());
      query::SetFromMicros(base_us_ + 4 * kHourUs, empty.mutable_current_end());
    }
    grpc::ClientContext c;
    v1::DriftWindowsResponse r;
    grpc::Status st = query_->DriftWindows(&c, empty, &r);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << sensor;
    EXPECT_NE(st.error_message().find(sensor == "drift" ? "the current window holds no readings"
                                                        : "the reference window holds no"),
              std::string::npos)
        << st.error_message();
  }
}

TEST_F(ReadServiceTest, GatewayWorksWithTheWriterRoleAlone) {
  // New days (partition creation) and a re-send under a new key (the staging
  // path's temporary table and ON CONFLICT), all as telemetry_writer.
  v1::ReadingBatch b;
  b.set_idempotency_key(absl::StrCat(Db(), "-old-day"));
  *b.add_readings() = MakeReading("s0", base_us_ - 50 * kHourUs, 1);
  for (int i = 0; i < 10; ++i) *b.add_readings() = MakeReading("s0", base_us_ + i * 10'000'000LL, 0);
  grpc::ClientContext ctx;
  v1::BatchAck ack;
  ASSERT_TRUE(ingest_->WriteBatch(&ctx, b, &ack).ok());
  EXPECT_EQ(ack.accepted(), 1u);
  EXPECT_EQ(ack.duplicates(), 10u);
  EXPECT_EQ(Q("SELECT count(*) FROM sensor_readings_default"), "0");
}

TEST_F(ReadServiceTest, SensorRegistryGetListUpsert) {
  grpc::ClientContext c1;
  v1::GetSensorRequest get;
  get.set_sensor_id("s1");
  v1::Sensor s;
  ASSERT_TRUE(query_->GetSensor(&c1, get, &s).ok());
  EXPECT_EQ(s.status(), "active");
  v1::UpsertSensorRequest up;
  up.mutable_sensor()->set_sensor_id("s1");
  up.mutable_sensor()->set_location("hall 3");
  grpc::ClientContext c2;
  ASSERT_TRUE(query_->UpsertSensor(&c2, up, &s).ok());
  EXPECT_EQ(s.location(), "hall 3");
  EXPECT_EQ(s.status(), "active");
  up.mutable_sensor()->set_status("broken");
  grpc::ClientContext c3;
  EXPECT_EQ(query_->UpsertSensor(&c3, up, &s).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  // Paging: 3 sensors, pages of 2.
  v1::ListSensorsRequest list;
  list.set_page_size(2);
  v1::ListSensorsResponse page;
  grpc::ClientContext c4;
  ASSERT_TRUE(query_->ListSensors(&c4, list, &page).ok());
  ASSERT_EQ(page.sensors_size(), 2);
  ASSERT_FALSE(page.next_page_token().empty());
  list.set_page_token(page.next_page_token());
  grpc::ClientContext c5;
  ASSERT_TRUE(query_->ListSensors(&c5, list, &page).ok());
  EXPECT_EQ(page.sensors_size(), 1);
  EXPECT_EQ(page.sensors(0).sensor_id(), "s2");
  EXPECT_TRUE(page.next_page_token().empty());
  get.set_sensor_id("nope");
  grpc::ClientContext c6;
  EXPECT_EQ(query_->GetSensor(&c6, get, &s).error_code(), grpc::StatusCode::NOT_FOUND);
}

}  // namespace
}  // namespace telemetry::testing
