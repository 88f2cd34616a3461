// The read service on a streaming standby (real servers on loopback): its
// answers say how stale they may be, its metrics say whether a standby
// answers and how far behind it is, and its writes and jobs go to the
// primary. The lag is made real by pausing the standby's replay (and by
// cutting it off from its primary), not simulated.
#include <gtest/gtest.h>

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "server/ingest/ingest_server.h"
#include "server/query/read_server.h"
#include "storage/local/http_get.h"
#include "storage/local/local_servers.h"
#include "telemetry/v1/ingest.grpc.pb.h"
#include "telemetry/v1/query.grpc.pb.h"
#include "tests/e2e/read_service_fixture.h"
#include "tests/support/loopback_gateway.h"
#include "tests/support/loopback_read_service.h"
#include "tests/support/servers_environment.h"

namespace telemetry {
namespace {

using local::MetricValue;
using local::PollUntil;
using local::PostgresServer;
using telemetry::testing::AsUser;
using telemetry::testing::kHourUs;
using telemetry::testing::MakeReading;
using telemetry::testing::QueryScalar;

absl::Duration LagOf(const v1::HourlySummaryResponse& r) {
  return absl::Seconds(r.replica_lag().seconds()) + absl::Nanoseconds(r.replica_lag().nanos());
}

class ReadReplicaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto primary = PostgresServer::Start();
    ASSERT_TRUE(primary.ok()) << primary.status();
    primary_ = *std::move(primary);
    auto db = local::CreateMigratedDatabase(*primary_);
    ASSERT_TRUE(db.ok()) << db.status();
    db_ = *db;
    telemetry::testing::EnsureLoginRoles(primary_->ConnInfo(db_));
    // The standby is a copy taken after the schema and roles exist.
    PostgresServer::Options standby_options;
    standby_options.standby_of_port = primary_->port();
    auto standby = PostgresServer::Start(standby_options);
    ASSERT_TRUE(standby.ok()) << standby.status();
    standby_ = *std::move(standby);
    ASSERT_TRUE(PollUntil([&] {
      return QueryScalar(primary_->ConnInfo(), "SELECT state FROM pg_stat_replication") ==
             "streaming";
    })) << "the standby never streamed";

    auto gw = ingest::IngestServer::Start(
        telemetry::testing::LoopbackGateway(AsUser(primary_->ConnInfo(db_), "gw_svc")));
    ASSERT_TRUE(gw.ok()) << gw.status();
    gateway_ = *std::move(gw);
    ingest_ = v1::IngestService::NewStub(grpc::CreateChannel(
        absl::StrCat("127.0.0.1:", gateway_->port()), grpc::InsecureChannelCredentials()));
    hour0_ = (absl::ToUnixMicros(absl::Now()) / kHourUs - 3) * kHourUs;
  }

  // The read service: queries as read_svc on `query_server`, writes and
  // jobs as maint_svc on the primary.
  void StartReadService(PostgresServer& query_server) {
    auto rs = query::ReadServer::Start(telemetry::testing::LoopbackReadService(
        AsUser(query_server.ConnInfo(db_), "read_svc"),
        AsUser(primary_->ConnInfo(db_), "maint_svc")));
    ASSERT_TRUE(rs.ok()) << rs.status();
    reader_ = *std::move(rs);
    auto channel = grpc::CreateChannel(absl::StrCat("127.0.0.1:", reader_->port()),
                                       grpc::InsecureChannelCredentials());
    query_ = v1::QueryService::NewStub(channel);
    admin_ = v1::AdminService::NewStub(channel);
  }

  // 360 readings of sensor r0 in hour `h` (after hour0_), acked by the
  // gateway (so committed on the primary).
  void WriteHour(int h) {
    v1::ReadingBatch b;
    // Unique across this binary's tests: their Redis is shared.
    b.set_idempotency_key(absl::StrCat(primary_->port(), "-", db_, "-", hour0_, "-", h));
    for (int i = 0; i < 360; ++i) {
      *b.add_readings() = MakeReading("r0", hour0_ + h * kHourUs + i * 10'000'000LL, h + i);
    }
    grpc::ClientContext ctx;
    v1::BatchAck ack;
    grpc::Status s = ingest_->WriteBatch(&ctx, b, &ack);
    ASSERT_TRUE(s.ok()) << s.error_message();
    ASSERT_EQ(ack.accepted(), 360u);
  }

  v1::HourlySummaryResponse Summary() {
    v1::HourlySummaryRequest req;
    req.add_sensor_ids("r0");
    req.mutable_start()->set_seconds(hour0_ / 1'000'000);
    req.mutable_end()->set_seconds(hour0_ / 1'000'000 + 3 * 3600);
    grpc::ClientContext ctx;
    v1::HourlySummaryResponse resp;
    grpc::Status s = query_->HourlySummary(&ctx, req, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return resp;
  }

  // Polls until the standby's answer has `hours` buckets and a lag of zero
  // (it has replayed all it received and is streaming).
  bool CaughtUpWith(int hours) {
    return PollUntil([&] {
      v1::HourlySummaryResponse r = Summary();
      return r.buckets_size() == hours && r.has_replica_lag() &&
             LagOf(r) == absl::ZeroDuration();
    });
  }

  std::string Metrics() {
    reader_->jobs().CollectStats();
    auto body = local::HttpGet(reader_->metrics_port(), "/metrics");
    EXPECT_TRUE(body.ok()) << body.status();
    return body.ok() ? *body : std::string();
  }

  std::string OnStandby(const std::string& sql) {
    return QueryScalar(standby_->ConnInfo(db_), sql);
  }

  std::unique_ptr<PostgresServer> primary_, standby_;
  std::string db_;
  int64_t hour0_ = 0;
  std::unique_ptr<ingest::IngestServer> gateway_;
  std::unique_ptr<v1::IngestService::Stub> ingest_;
  std::unique_ptr<query::ReadServer> reader_;
  std::unique_ptr<v1::QueryService::Stub> query_;
  std::unique_ptr<v1::AdminService::Stub> admin_;
};

TEST_F(ReadReplicaTest, AStandbysAnswerSaysHowStaleItMayBe) {
  StartReadService(*standby_);
  ASSERT_NO_FATAL_FAILURE(WriteHour(0));
  // Caught up and streaming: the first hour is there, and the lag is zero.
  ASSERT_TRUE(CaughtUpWith(1)) << Summary().DebugString();
  // Polled: background WAL (a checkpoint, a running-transactions record)
  // can briefly put what was received ahead of what was replayed.
  std::string metrics;
  EXPECT_TRUE(PollUntil([&] {
    metrics = Metrics();
    return MetricValue(metrics, "telemetry_read_database_standby") == 1 &&
           MetricValue(metrics, "telemetry_read_replica_lag_seconds") == 0;
  }, absl::Seconds(30), absl::Milliseconds(100))) << metrics;

  // Replay paused: the standby receives the next hour's WAL but does not
  // apply it. The answer misses that acked write, and says so: its lag
  // covers at least the time since the write was acked.
  ASSERT_EQ(OnStandby("SELECT pg_wal_replay_pause()"), "");
  ASSERT_TRUE(PollUntil([&] { return OnStandby("SELECT pg_get_wal_replay_pause_state()") == "paused"; }));
  ASSERT_NO_FATAL_FAILURE(WriteHour(1));
  const absl::Time acked = absl::Now();
  ASSERT_TRUE(PollUntil([&] {
    return OnStandby("SELECT pg_last_wal_receive_lsn() > pg_last_wal_replay_lsn()") == "t";
  })) << "the standby never received the write";
  const absl::Time asked = absl::Now();
  v1::HourlySummaryResponse stale = Summary();
  EXPECT_EQ(stale.buckets_size(), 1) << stale.DebugString();
  ASSERT_TRUE(stale.has_replica_lag()) << stale.DebugString();
  EXPECT_FALSE(stale.replica_lag_unknown());
  EXPECT_GE(LagOf(stale), asked - acked) << stale.DebugString();
  metrics = Metrics();
  EXPECT_GT(MetricValue(metrics, "telemetry_read_replica_lag_seconds"), 0);

  // Replay resumed: the write appears and the lag returns to zero.
  ASSERT_EQ(OnStandby("SELECT pg_wal_replay_resume()"), "");
  EXPECT_TRUE(CaughtUpWith(2)) << Summary().DebugString();

  // A refresh is a write: it runs on the primary (the standby would refuse
  // it), and the standby then serves the materialised hours by its own
  // watermark.
  grpc::ClientContext ctx;
  v1::RefreshAggregateResponse refreshed;
  grpc::Status s = admin_->RefreshAggregate(&ctx, {}, &refreshed);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_GE(refreshed.hours_refreshed(), 2);
  EXPECT_TRUE(PollUntil([&] {
    v1::HourlySummaryResponse r = Summary();
    return r.buckets_size() == 2 &&
           r.buckets(0).source() == v1::HourlyBucket::SOURCE_MATERIALIZED &&
           r.buckets(1).source() == v1::HourlyBucket::SOURCE_MATERIALIZED;
  })) << Summary().DebugString();
}

TEST_F(ReadReplicaTest, AStandbyCutOffFromItsPrimaryIsNotCalledCurrent) {
  StartReadService(*standby_);
  ASSERT_NO_FATAL_FAILURE(WriteHour(0));
  ASSERT_TRUE(CaughtUpWith(1)) << Summary().DebugString();
  // All it received is replayed, but nothing more can arrive: the lag is
  // the time since the last replayed commit, and grows.
  ASSERT_TRUE(primary_->Kill().ok());
  EXPECT_TRUE(PollUntil([&] {
    v1::HourlySummaryResponse r = Summary();
    return r.has_replica_lag() && LagOf(r) > absl::ZeroDuration();
  }, absl::Seconds(30))) << Summary().DebugString();
}

TEST_F(ReadReplicaTest, ThePrimarysAnswerCarriesNoLag) {
  StartReadService(*primary_);
  ASSERT_NO_FATAL_FAILURE(WriteHour(0));
  v1::HourlySummaryResponse r = Summary();
  EXPECT_EQ(r.buckets_size(), 1);
  EXPECT_FALSE(r.has_replica_lag()) << r.DebugString();
  EXPECT_FALSE(r.replica_lag_unknown());
  const std::string metrics = Metrics();
  EXPECT_EQ(MetricValue(metrics, "telemetry_read_database_standby"), 0);
  EXPECT_EQ(MetricValue(metrics, "telemetry_read_replica_lag_seconds"), -1);  // absent
}

}  // namespace
}  // namespace telemetry
