// The read service end to end: data written through the real gateway, read
// through the real read service (connected as least-privilege login roles),
// every result checked against a direct SQL computation on the same data.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "server/ingest/ingest_server.h"
#include "server/query/drift_stats.h"
#include "server/query/query_service.h"
#include "server/query/read_server.h"
#include "server/query/sql_values.h"
#include "storage/pg/connection.h"
#include "telemetry/v1/maintenance.grpc.pb.h"
#include "telemetry/v1/query.grpc.pb.h"
#include "storage/local/http_get.h"
#include "tests/support/servers_environment.h"

namespace telemetry {
namespace {

using telemetry::testing::MigratedDatabase;
using telemetry::testing::QueryScalar;
using telemetry::testing::Redis;
namespace v1 = telemetry::v1;

constexpr int64_t kHourUs = 3'600'000'000LL;

// Login roles for the services, members of the migration's group roles.
void EnsureLoginRoles(const std::string& conninfo) {
  auto c = pg::Connection::Open(conninfo);
  ASSERT_TRUE(c.ok());
  ASSERT_TRUE((*c)->Exec(
                      "DO $$ BEGIN "
                      "IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'gw_svc') "
                      "THEN CREATE ROLE gw_svc LOGIN IN ROLE telemetry_writer; END IF; "
                      "IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'read_svc') "
                      "THEN CREATE ROLE read_svc LOGIN IN ROLE telemetry_reader; END IF; "
                      "IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'maint_svc') "
                      "THEN CREATE ROLE maint_svc LOGIN IN ROLE telemetry_maintainer; END IF; "
                      "END $$")
                  .ok());
}

std::string AsUser(const std::string& conninfo, const std::string& user) {
  std::string out = conninfo;
  size_t at = out.find("user=postgres");
  return out.replace(at, 13, "user=" + user);
}

v1::Reading MakeReading(const std::string& sensor, int64_t us, double value) {
  v1::Reading r;
  r.set_sensor_id(sensor);
  query::SetFromMicros(us, r.mutable_timestamp());
  r.set_value(value);
  r.set_unit("bar");
  return r;
}

class ReadServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    conninfo_ = MigratedDatabase();
    EnsureLoginRoles(conninfo_);
    ingest::IngestServerOptions io;
    io.transport.plaintext = true;  // loopback
    io.require_device_auth = false;
    io.listen_address = "127.0.0.1:0";
    io.metrics_address = "";
    io.database_url = AsUser(conninfo_, "gw_svc");  // least privilege
    io.redis_url = Redis().Url();
    auto gw = ingest::IngestServer::Start(io);
    ASSERT_TRUE(gw.ok()) << gw.status();
    gateway_ = *std::move(gw);
    ingest_ = v1::IngestService::NewStub(grpc::CreateChannel(
        absl::StrCat("127.0.0.1:", gateway_->port()), grpc::InsecureChannelCredentials()));

    query::ReadServerOptions ro;

    ro.transport.plaintext = true;  // loopback

    ro.require_api_auth = false;
    ro.listen_address = "127.0.0.1:0";
    ro.metrics_address = "127.0.0.1:0";
    ro.database_url = AsUser(conninfo_, "read_svc");
    ro.writer_database_url = AsUser(conninfo_, "maint_svc");
    ro.lifecycle.run_native_jobs = false;  // the tests refresh explicitly
    ro.lifecycle.stats_interval = absl::Hours(1);
    auto rs = query::ReadServer::Start(ro);
    ASSERT_TRUE(rs.ok()) << rs.status();
    reader_ = *std::move(rs);
    auto channel = grpc::CreateChannel(absl::StrCat("127.0.0.1:", reader_->port()),
                                       grpc::InsecureChannelCredentials());
    query_ = v1::QueryService::NewStub(channel);
    alerts_ = v1::AlertService::NewStub(channel);
    maintenance_ = v1::MaintenanceService::NewStub(channel);
    admin_ = v1::AdminService::NewStub(channel);

    // Five hours of data for three sensors, one reading every 10 s, in whole
    // hours starting five hours before the current hour.
    base_us_ = (absl::ToUnixMicros(absl::Now()) / kHourUs - 5) * kHourUs;
    for (int s = 0; s < 3; ++s) {
      for (int h = 0; h < 5; ++h) {
        v1::ReadingBatch b;
        b.set_idempotency_key(absl::StrCat(Db(), "-", s, "-", h));
        for (int i = 0; i < 360; ++i) {
          int64_t us = base_us_ + h * kHourUs + i * 10'000'000LL;
          *b.add_readings() = MakeReading(absl::StrCat("s", s), us,
                                          s * 100 + h * 10 + std::sin(i) * 3);
        }
        Write(b);
      }
    }
  }
  void TearDown() override {
    if (reader_) reader_->Shutdown(absl::Seconds(2));
    if (gateway_) gateway_->Shutdown(absl::Seconds(2));
  }
  void Write(const v1::ReadingBatch& b) {
    grpc::ClientContext ctx;
    v1::BatchAck ack;
    grpc::Status s = ingest_->WriteBatch(&ctx, b, &ack);
    ASSERT_TRUE(s.ok()) << s.error_message();
    ASSERT_EQ(ack.rejected(), 0u);
  }
  std::string Q(const std::string& sql) { return QueryScalar(conninfo_, sql); }
  // The test's database name: unique, so Redis keys never collide across tests.
  std::string Db() const { return conninfo_.substr(conninfo_.find("dbname=") + 7); }
  std::string Ts(int64_t us) {
    return absl::StrCat("('epoch'::timestamptz + ", us, " * interval '1 microsecond')");
  }

  std::string conninfo_;
  int64_t base_us_ = 0;
  std::unique_ptr<ingest::IngestServer> gateway_;
  std::unique_ptr<query::ReadServer> reader_;
  std::unique_ptr<v1::IngestService::Stub> ingest_;
  std::unique_ptr<v1::QueryService::Stub> query_;
  std::unique_ptr<v1::AlertService::Stub> alerts_;
  std::unique_ptr<v1::MaintenanceService::Stub> maintenance_;
  std::unique_ptr<v1::AdminService::Stub> admin_;
};

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

TEST_F(ReadServiceTest, LatestReadingsPlanUsesTheIndexWithoutASort) {
  auto c = pg::Connection::Open(conninfo_);
  ASSERT_TRUE(c.ok());
  ASSERT_TRUE((*c)->Exec("ANALYZE sensor_readings").ok());
  // EXPLAIN EXECUTE plans with the argument values, as the service's
  // one-shot parameterised execution does.
  ASSERT_TRUE((*c)->Exec(absl::StrCat("PREPARE latest(text, int) AS ",
                                      query::kLatestReadingsSql)).ok());
  auto plan = (*c)->Query("EXPLAIN EXECUTE latest('s1', 100)");
  ASSERT_TRUE(plan.ok()) << plan.status();
  std::string text;
  for (int i = 0; i < plan->rows(); ++i) absl::StrAppend(&text, plan->Get(i, 0), "\n");
  EXPECT_NE(text.find("sensor_id_timestamp_idx"), std::string::npos) << text;
  // Merge Append keeps the index order ("Sort Key:"); a Sort node would not.
  EXPECT_EQ(text.find("Sort  ("), std::string::npos) << "an explicit sort:\n" << text;
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

TEST_F(ReadServiceTest, AlertLifecycleAndErrors) {
  v1::CreateAlertRequest create;
  v1::Alert* a = create.mutable_alert();
  a->set_sensor_id("ghost");
  a->set_anomaly_type("vibration_spike");
  a->set_severity(4);
  a->set_confidence(0.93);
  (*a->mutable_evidence()->mutable_fields())["zscore"].set_number_value(5.2);
  a->add_recommended_actions("inspect bearing");
  a->add_recommended_actions("check \"mounts\", bolts");
  v1::Alert out;
  grpc::ClientContext c1;
  grpc::Status s = alerts_->CreateAlert(&c1, create, &out);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_TRUE(absl::StartsWith(s.error_message(), "sensor 'ghost' is not registered [request_id="))
      << s.error_message();
  a->set_sensor_id("s1");
  a->set_severity(9);
  grpc::ClientContext c2;
  EXPECT_EQ(alerts_->CreateAlert(&c2, create, &out).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  a->set_severity(4);
  grpc::ClientContext c3;
  ASSERT_TRUE(alerts_->CreateAlert(&c3, create, &out).ok());
  EXPECT_EQ(out.status(), "open");
  EXPECT_EQ(out.recommended_actions(1), "check \"mounts\", bolts");
  EXPECT_EQ(out.evidence().fields().at("zscore").number_value(), 5.2);

  v1::AlertTransitionRequest t;
  t.set_id(out.id());
  grpc::ClientContext c4;
  ASSERT_TRUE(alerts_->AcknowledgeAlert(&c4, t, &out).ok());
  EXPECT_EQ(out.status(), "acknowledged");
  grpc::ClientContext c5;
  EXPECT_TRUE(alerts_->AcknowledgeAlert(&c5, t, &out).ok()) << "a retried ack is idempotent";
  grpc::ClientContext c6;
  ASSERT_TRUE(alerts_->ResolveAlert(&c6, t, &out).ok());
  EXPECT_EQ(out.status(), "resolved");
  grpc::ClientContext c6b;
  s = alerts_->AcknowledgeAlert(&c6b, t, &out);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_TRUE(absl::StartsWith(s.error_message(), "illegal alert status transition: resolved -> acknowledged [request_id="))
      << s.error_message();

  v1::ListAlertsRequest list;
  list.set_sensor_id("s1");
  list.set_status("resolved");
  v1::ListAlertsResponse listed;
  grpc::ClientContext c7;
  ASSERT_TRUE(alerts_->ListAlerts(&c7, list, &listed).ok());
  ASSERT_EQ(listed.alerts_size(), 1);
  EXPECT_EQ(listed.alerts(0).id(), out.id());

  t.set_id("not-a-uuid");
  grpc::ClientContext c8;
  EXPECT_EQ(alerts_->ResolveAlert(&c8, t, &out).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  t.set_id("00000000-0000-0000-0000-000000000000");
  grpc::ClientContext c9;
  EXPECT_EQ(alerts_->ResolveAlert(&c9, t, &out).error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST_F(ReadServiceTest, AlertAndTaskListingsPageNewestFirst) {
  std::vector<std::string> ids;
  for (int i = 0; i < 3; ++i) {
    v1::CreateAlertRequest create;
    create.mutable_alert()->set_sensor_id("s0");
    create.mutable_alert()->set_anomaly_type(absl::StrCat("type", i));
    create.mutable_alert()->set_severity(2);
    create.mutable_alert()->set_confidence(0.5);
    v1::Alert a;
    grpc::ClientContext c;
    ASSERT_TRUE(alerts_->CreateAlert(&c, create, &a).ok());
    ids.push_back(a.id());
    v1::CreateTaskRequest task;
    task.mutable_task()->set_equipment_id("pump-9");
    task.mutable_task()->set_task_type(absl::StrCat("t", i));
    v1::MaintenanceTask t;
    grpc::ClientContext c2;
    ASSERT_TRUE(maintenance_->CreateTask(&c2, task, &t).ok());
  }
  v1::ListAlertsRequest list;
  list.set_sensor_id("s0");
  list.set_page_size(2);
  v1::ListAlertsResponse page1, page2;
  grpc::ClientContext c1;
  ASSERT_TRUE(alerts_->ListAlerts(&c1, list, &page1).ok());
  ASSERT_EQ(page1.alerts_size(), 2);
  EXPECT_EQ(page1.alerts(0).id(), ids[2]);  // newest first
  ASSERT_FALSE(page1.next_page_token().empty());
  list.set_page_token(page1.next_page_token());
  grpc::ClientContext c2;
  ASSERT_TRUE(alerts_->ListAlerts(&c2, list, &page2).ok());
  ASSERT_EQ(page2.alerts_size(), 1);
  EXPECT_EQ(page2.alerts(0).id(), ids[0]);
  EXPECT_TRUE(page2.next_page_token().empty());

  v1::ListTasksRequest tasks;
  tasks.set_equipment_id("pump-9");
  tasks.set_page_size(2);
  v1::ListTasksResponse t1, t2;
  grpc::ClientContext c3;
  ASSERT_TRUE(maintenance_->ListTasks(&c3, tasks, &t1).ok());
  ASSERT_EQ(t1.tasks_size(), 2);
  tasks.set_page_token(t1.next_page_token());
  grpc::ClientContext c4;
  ASSERT_TRUE(maintenance_->ListTasks(&c4, tasks, &t2).ok());
  EXPECT_EQ(t2.tasks_size(), 1);
  EXPECT_TRUE(t2.next_page_token().empty());
  tasks.set_page_token("not a token");
  grpc::ClientContext c5;
  EXPECT_EQ(maintenance_->ListTasks(&c5, tasks, &t2).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(ReadServiceTest, MaintenanceTasksFollowTheirLifecycleAndLogWork) {
  v1::CreateTaskRequest create;
  create.mutable_task()->set_equipment_id("pump-7");
  create.mutable_task()->set_sensor_id("s2");
  create.mutable_task()->set_task_type("bearing_replacement");
  create.mutable_task()->add_parts_needed("bearing 6204");
  v1::MaintenanceTask task;
  grpc::ClientContext c1;
  ASSERT_TRUE(maintenance_->CreateTask(&c1, create, &task).ok());
  EXPECT_EQ(task.status(), "pending");
  EXPECT_EQ(task.priority(), 3);

  v1::UpdateTaskStatusRequest move;
  move.set_id(task.id());
  move.set_status("completed");
  grpc::ClientContext c2;
  grpc::Status s = maintenance_->UpdateTaskStatus(&c2, move, &task);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_TRUE(absl::StartsWith(s.error_message(), "illegal task status transition: pending -> completed [request_id="))
      << s.error_message();
  for (const char* next : {"scheduled", "in_progress", "completed"}) {
    move.set_status(next);
    grpc::ClientContext c;
    ASSERT_TRUE(maintenance_->UpdateTaskStatus(&c, move, &task).ok()) << next;
  }
  EXPECT_EQ(task.status(), "completed");

  v1::LogWorkRequest log;
  log.mutable_log()->set_task_id(task.id());
  log.mutable_log()->set_technician_id("tech-42");
  query::SetFromMicros(base_us_, log.mutable_log()->mutable_completion_date());
  log.mutable_log()->set_actual_duration_hours(1.5);
  v1::MaintenanceLog logged;
  grpc::ClientContext c3;
  ASSERT_TRUE(maintenance_->LogWork(&c3, log, &logged).ok());
  EXPECT_EQ(logged.equipment_id(), "pump-7");
  EXPECT_EQ(logged.status(), "completed");
  log.mutable_log()->set_task_id("00000000-0000-0000-0000-000000000000");
  grpc::ClientContext c4;
  EXPECT_EQ(maintenance_->LogWork(&c4, log, &logged).error_code(), grpc::StatusCode::NOT_FOUND);

  v1::ListLogsRequest list;
  list.set_task_id(task.id());
  v1::ListLogsResponse logs;
  grpc::ClientContext c5;
  ASSERT_TRUE(maintenance_->ListLogs(&c5, list, &logs).ok());
  ASSERT_EQ(logs.logs_size(), 1);
  EXPECT_EQ(logs.logs(0).actual_duration_hours(), 1.5);

  create.mutable_task()->set_sensor_id("ghost");
  grpc::ClientContext c6;
  EXPECT_EQ(maintenance_->CreateTask(&c6, create, &task).error_code(), grpc::StatusCode::NOT_FOUND);
}

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
  EXPECT_GE(MetricValue(*body, "telemetry_read_rpc_duration_seconds_count{method=\"ListJobs\"}"), 1);
  EXPECT_GE(MetricValue(*body, "telemetry_read_rpc_errors_total{code=\"9\",method=\"RunCompression\"}"), 1);
}

// The timescale read path, where TimescaleDB is installed: the continuous
// aggregate, on-demand refresh, job health from timescaledb_information and
// chunks with compression.
TEST(ReadServiceTimescaleTest, ContinuousAggregatePathEndToEnd) {
  if (!telemetry::local::PostgresServer::TimescaleInstalled()) {
    GTEST_SKIP() << "TimescaleDB is not installed for this PostgreSQL; the "
                    "timescale read path is not exercised here";
  }
  auto db = telemetry::testing::Pg().CreateDatabase();
  ASSERT_TRUE(db.ok());
  std::string conninfo = telemetry::testing::Pg().ConnInfo(*db);
  ingest::IngestServerOptions io;
  io.transport.plaintext = true;  // loopback
  io.require_device_auth = false;
  io.listen_address = "127.0.0.1:0";
  io.metrics_address = "";
  io.database_url = conninfo;
  io.redis_url = Redis().Url();
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

  query::ReadServerOptions ro;

  ro.transport.plaintext = true;  // loopback

  ro.require_api_auth = false;
  ro.listen_address = "127.0.0.1:0";
  ro.metrics_address = "";
  ro.database_url = conninfo;  // the owner: refresh_continuous_aggregate checks it
  ro.lifecycle.stats_interval = absl::Hours(1);
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

std::string RunCli(const std::string& args, int* rc) {
  std::string out = absl::StrCat(::testing::TempDir(), "/cli.out");
  std::string cmd = absl::StrCat("TELEMETRY_PLAINTEXT=1 ", TELEMETRYCTL_PATH, " ", args, " > ", out, " 2>&1");
  *rc = std::system(cmd.c_str());
  std::ifstream in(out);
  return std::string((std::istreambuf_iterator<char>(in)), {});
}

TEST_F(ReadServiceTest, TelemetryctlReadCommandsAndExportRoundTrip) {
  std::string read = absl::StrCat("--read_target=127.0.0.1:", reader_->port());
  int rc;
  std::string latest = RunCli(absl::StrCat("latest --sensor=s0 --limit=3 ", read), &rc);
  EXPECT_EQ(rc, 0) << latest;
  EXPECT_EQ(std::count(latest.begin(), latest.end(), '\n'), 4) << latest;  // header + 3
  std::string refresh = RunCli(absl::StrCat("refresh --all ", read), &rc);
  EXPECT_EQ(rc, 0) << refresh;
  EXPECT_NE(refresh.find("refreshed "), std::string::npos) << refresh;
  std::string summary = RunCli(
      absl::StrCat("summary --sensors=s0,s1 --start=-6h --end=now ", read), &rc);
  EXPECT_EQ(rc, 0) << summary;
  EXPECT_NE(summary.find(",360,"), std::string::npos) << summary;
  EXPECT_NE(summary.find(",aggregate"), std::string::npos) << summary;
  std::string jobs = RunCli(absl::StrCat("jobs ", read), &rc);
  EXPECT_EQ(rc, 0) << jobs;
  EXPECT_NE(jobs.find("storage mode: native"), std::string::npos) << jobs;
  std::string retention = RunCli(absl::StrCat("retention ", read), &rc);
  EXPECT_EQ(rc, 0) << retention;
  EXPECT_NE(retention.find("dropped"), std::string::npos) << retention;
  std::string drift = RunCli(
      absl::StrCat("drift --sensor=s1 --reference_start=-6h --reference_end=-3h "
                   "--current_start=-3h --current_end=now ", read),
      &rc);
  EXPECT_EQ(rc, 0) << drift;
  EXPECT_NE(drift.find("ks_statistic"), std::string::npos) << drift;

  // Export one sensor's range and send it back: every reading is a duplicate.
  std::string csv = absl::StrCat(::testing::TempDir(), "/export.csv");
  std::string exported = RunCli(
      absl::StrCat("range --sensor=s2 --start=-6h --end=now --output=", csv, " ", read), &rc);
  EXPECT_EQ(rc, 0) << exported;
  EXPECT_NE(exported.find("exported 1800 readings"), std::string::npos) << exported;
  std::string sent = RunCli(
      absl::StrCat("send --file=", csv, " --target=127.0.0.1:", gateway_->port()), &rc);
  EXPECT_EQ(rc, 0) << sent;
  EXPECT_NE(sent.find("sent 1800 readings: 0 accepted, 1800 duplicates"), std::string::npos)
      << sent;
}

}  // namespace
}  // namespace telemetry
