// AdminService end to end: jobs, chunks, retention and metrics, in native mode and, where
// TimescaleDB is installed, on the continuous aggregate path.
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

#include "tests/support/loopback_gateway.h"
#include "tests/support/loopback_read_service.h"
namespace telemetry::testing {
namespace {

TEST_F(ReadServiceTest, AdminJobsChunksRetentionAndMetrics) {
  grpc::ClientContext c1;
  v1::ListJobsResponse jobs;
  ASSERT_TRUE(admin_->ListJobs(&c1, {}, &jobs).ok());
  EXPECT_EQ(jobs.storage_mode(), "native");
  EXPECT_EQ(jobs.jobs_size(), 2);
  grpc::ClientContext c2;
  v1::ListChunksResponse chunks;
  ASSERT_TRUE(admin_->ListChunks(&c2, {}, &chunks).ok());
  EXPECT_GE(chunks.chunks_size(), 2);  // at least one day and the default
  EXPECT_GT(chunks.total_bytes(), 0);
  bool today_listed = false;
  for (const auto& c : chunks.chunks()) {
    if (query::ToMicros(c.range_start()) <= base_us_ &&
        base_us_ < query::ToMicros(c.range_end())) {
      today_listed = true;
      EXPECT_EQ(query::ToMicros(c.range_end()) - query::ToMicros(c.range_start()),
                24 * kHourUs);
    }
  }
  EXPECT_TRUE(today_listed) << "the day holding the data has a bounded partition";
  grpc::ClientContext c3;
  v1::RunLifecycleResponse summary;
  ASSERT_TRUE(admin_->RunRetention(&c3, {}, &summary).ok());
  EXPECT_NE(summary.summary().find("dropped 0 partitions"), std::string::npos) << summary.summary();
  grpc::ClientContext c4;
  EXPECT_EQ(admin_->RunCompression(&c4, {}, &summary).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);

  grpc::ClientContext c5;
  v1::RefreshAggregateResponse refreshed;
  ASSERT_TRUE(admin_->RefreshAggregate(&c5, {}, &refreshed).ok());
  EXPECT_GE(refreshed.hours_refreshed(), 5);
  reader_->jobs().CollectStats();
  auto body = telemetry::local::HttpGet(reader_->metrics_port(), "/metrics");
  ASSERT_TRUE(body.ok());
  using telemetry::local::MetricValue;
  EXPECT_GE(MetricValue(*body, "telemetry_storage_chunks"), 2);
  EXPECT_GT(MetricValue(*body, "telemetry_storage_bytes"), 0);
  EXPECT_GE(MetricValue(*body, "telemetry_aggregate_staleness_seconds"), 0);
  EXPECT_GT(MetricValue(*body, "telemetry_aggregate_watermark_timestamp_seconds"), 0);
  // Native mode compresses nothing: no ratio at all, rather than a 0 that
  // reads as one.
  EXPECT_EQ(body->find("telemetry_compression_ratio"), std::string::npos);
  EXPECT_EQ(MetricValue(*body, "telemetry_storage_compressed_chunks"), 0);
  EXPECT_GE(MetricValue(*body, "telemetry_read_rpc_duration_seconds_count{method=\"ListJobs\"}"), 1);
  EXPECT_GE(MetricValue(*body, "telemetry_read_rpc_errors_total{code=\"FAILED_PRECONDITION\",method=\"RunCompression\"}"), 1);
}

// The timescale read path, where TimescaleDB is installed: the continuous
// aggregate, on-demand refresh, job health from timescaledb_information and
// chunks with compression.
TEST(ReadServiceTimescaleTest, ContinuousAggregatePathEndToEnd) {
  if (!telemetry::local::PostgresServer::TimescaleInstalled()) {
    GTEST_SKIP() << "TimescaleDB is not installed for this PostgreSQL; the "
                    "timescale read path is not exercised here";
  }
  auto db = Pg().CreateDatabase();
  ASSERT_TRUE(db.ok());
  std::string conninfo = Pg().ConnInfo(*db);
  ingest::IngestServerOptions io = LoopbackGateway(conninfo);
  io.migrate_on_start = true;
  io.migrator.mode = pg::StorageMode::kTimescale;
  auto gateway = ingest::IngestServer::Start(io);
  ASSERT_TRUE(gateway.ok()) << gateway.status();
  auto ingest = v1::IngestService::NewStub(grpc::CreateChannel(
      absl::StrCat("127.0.0.1:", (*gateway)->port()), grpc::InsecureChannelCredentials()));
  const int64_t base = (absl::ToUnixMicros(absl::Now()) / kHourUs - 4) * kHourUs;
  for (int s = 0; s < 2; ++s) {
    v1::ReadingBatch b;
    b.set_idempotency_key(absl::StrCat(*db, "-ts-", s));
    for (int i = 0; i < 3 * 360; ++i) {
      *b.add_readings() = MakeReading(absl::StrCat("t", s), base + i * 10'000'000LL, s + i % 7);
    }
    grpc::ClientContext ctx;
    v1::BatchAck ack;
    ASSERT_TRUE(ingest->WriteBatch(&ctx, b, &ack).ok());
    ASSERT_EQ(ack.accepted(), 1080u);
  }

  // The owner: refresh_continuous_aggregate checks it.
  query::ReadServerOptions ro = LoopbackReadService(conninfo);
  auto reader = query::ReadServer::Start(ro);
  ASSERT_TRUE(reader.ok()) << reader.status();
  ASSERT_EQ((*reader)->storage_mode(), pg::StorageMode::kTimescale);
  auto channel = grpc::CreateChannel(absl::StrCat("127.0.0.1:", (*reader)->port()),
                                     grpc::InsecureChannelCredentials());
  auto query_stub = v1::QueryService::NewStub(channel);
  auto admin = v1::AdminService::NewStub(channel);

  v1::HourlySummaryRequest req;
  req.add_sensor_ids("t0");
  req.add_sensor_ids("t1");
  query::SetFromMicros(base, req.mutable_start());
  query::SetFromMicros(base + 3 * kHourUs, req.mutable_end());
  v1::HourlySummaryResponse before, after;
  grpc::ClientContext c1;
  ASSERT_TRUE(query_stub->HourlySummary(&c1, req, &before).ok());
  ASSERT_EQ(before.buckets_size(), 6);
  for (const auto& b : before.buckets()) EXPECT_EQ(b.source(), v1::HourlyBucket::SOURCE_RAW);

  v1::RefreshAggregateRequest refresh;
  query::SetFromMicros(base, refresh.mutable_start());
  query::SetFromMicros(base + 3 * kHourUs, refresh.mutable_end());
  v1::RefreshAggregateResponse refreshed;
  grpc::ClientContext c2;
  grpc::Status rs = admin->RefreshAggregate(&c2, refresh, &refreshed);
  ASSERT_TRUE(rs.ok()) << rs.error_message();
  grpc::ClientContext c3;
  ASSERT_TRUE(query_stub->HourlySummary(&c3, req, &after).ok());
  ASSERT_EQ(after.buckets_size(), 6);
  for (int i = 0; i < 6; ++i) {
    EXPECT_EQ(after.buckets(i).source(), v1::HourlyBucket::SOURCE_MATERIALIZED) << i;
    EXPECT_EQ(after.buckets(i).reading_count(), before.buckets(i).reading_count());
    EXPECT_NEAR(after.buckets(i).avg_value(), before.buckets(i).avg_value(), 1e-9);
  }

  grpc::ClientContext c4;
  v1::ListJobsResponse jobs;
  ASSERT_TRUE(admin->ListJobs(&c4, {}, &jobs).ok());
  EXPECT_EQ(jobs.storage_mode(), "timescale");
  std::string names;
  for (const auto& j : jobs.jobs()) absl::StrAppend(&names, j.name(), " ");
  EXPECT_NE(names.find("policy_refresh_continuous_aggregate"), std::string::npos) << names;
  EXPECT_NE(names.find("policy_compression"), std::string::npos) << names;
  EXPECT_NE(names.find("policy_retention"), std::string::npos) << names;
  grpc::ClientContext c5;
  v1::ListChunksResponse chunks;
  ASSERT_TRUE(admin->ListChunks(&c5, {}, &chunks).ok());
  EXPECT_GE(chunks.chunks_size(), 1);
  (*reader)->Shutdown(absl::Seconds(2));

  // Noon nine days ago: the 100 minutes below stay inside one daily chunk.
  const int64_t day_us = 24 * kHourUs;
  const int64_t old_day_start_us =
      (absl::ToUnixMicros(absl::Now() - absl::Hours(24 * 9)) / day_us) * day_us + 12 * kHourUs;
  // On-demand compression and retention with the least-privilege logins a
  // deployment uses (TimescaleDB lets only a policy's owner run_job() it;
  // migration 0009's SECURITY DEFINER functions do the same work). One
  // day of readings eight days back is due for compression (7 days).
  {
    v1::ReadingBatch old_day;
    old_day.set_idempotency_key(absl::StrCat(*db, "-ts-old"));
    const int64_t old_base = old_day_start_us;
    for (int i = 0; i < 100; ++i) {
      *old_day.add_readings() = MakeReading("t-old", old_base + i * 60'000'000LL, i);
    }
    grpc::ClientContext ctx;
    v1::BatchAck ack;
    ASSERT_TRUE(ingest->WriteBatch(&ctx, old_day, &ack).ok());
    ASSERT_EQ(ack.accepted(), 100u);
  }
  EnsureLoginRoles(conninfo);
  query::ReadServerOptions least = ro;
  least.lifecycle.on_demand_refresh_timeout = absl::Seconds(60);
  least.database_url = AsUser(conninfo, "read_svc");
  least.writer_database_url = AsUser(conninfo, "maint_svc");
  auto restricted = query::ReadServer::Start(least);
  ASSERT_TRUE(restricted.ok()) << restricted.status();
  auto restricted_admin = v1::AdminService::NewStub(grpc::CreateChannel(
      absl::StrCat("127.0.0.1:", (*restricted)->port()), grpc::InsecureChannelCredentials()));
  grpc::ClientContext c6;
  v1::RunLifecycleResponse ran;
  grpc::Status cs = restricted_admin->RunCompression(&c6, {}, &ran);
  ASSERT_TRUE(cs.ok()) << cs.error_message();
  EXPECT_TRUE(absl::StartsWith(ran.summary(), "compressed ")) << ran.summary();
  EXPECT_EQ(ran.summary().find("compressed 0 "), std::string::npos) << ran.summary();
  EXPECT_EQ(QueryScalar(conninfo, "SELECT count(*) FROM timescaledb_information.chunks "
                                  "WHERE hypertable_name = 'sensor_readings' AND is_compressed"),
            "1");
  // Compressed rows still read back, and are counted in the chunk listing
  // (their rows live in the compressed table, not the chunk).
  EXPECT_EQ(QueryScalar(conninfo, "SELECT count(*) FROM sensor_readings WHERE sensor_id = 't-old'"),
            "100");
  {
    grpc::ClientContext c;
    v1::ListChunksResponse listed;
    ASSERT_TRUE(restricted_admin->ListChunks(&c, {}, &listed).ok());
    int64_t compressed_rows = 0;
    for (const auto& chunk : listed.chunks()) {
      if (chunk.compressed()) compressed_rows += chunk.estimated_rows();
    }
    EXPECT_EQ(compressed_rows, 100);
  }
  // On-demand refresh under the maintainer login, which does not own the
  // aggregate: the owner's one-shot job does it (migration 0011).
  {
    v1::RefreshAggregateRequest window;
    query::SetFromMicros(old_day_start_us, window.mutable_start());
    query::SetFromMicros(old_day_start_us + 3 * kHourUs, window.mutable_end());
    v1::RefreshAggregateResponse refreshed_by_job;
    grpc::ClientContext c;
    grpc::Status st = restricted_admin->RefreshAggregate(&c, window, &refreshed_by_job);
    ASSERT_TRUE(st.ok()) << st.error_message();
    EXPECT_EQ(QueryScalar(conninfo, absl::StrCat("SELECT sum(reading_count) FROM "
                                                 "sensor_readings_summary_hourly WHERE "
                                                 "sensor_id = 't-old'")),
              "100");
    // It went through the owner's one-shot job, which unscheduled itself.
    EXPECT_EQ(QueryScalar(conninfo, "SELECT count(*) FILTER (WHERE NOT scheduled) || '/' || "
                                    "count(*) FROM timescaledb_information.jobs WHERE "
                                    "proc_name = 'telemetry_refresh_window'"),
              "1/1");
  }
  grpc::ClientContext c7;
  cs = restricted_admin->RunRetention(&c7, {}, &ran);
  ASSERT_TRUE(cs.ok()) << cs.error_message();
  EXPECT_EQ(ran.summary(), "dropped 0 chunks past the retention policy's drop_after");
  (*restricted)->Shutdown(absl::Seconds(2));
  (*gateway)->Shutdown(absl::Seconds(2));
}

}  // namespace
}  // namespace telemetry::testing
