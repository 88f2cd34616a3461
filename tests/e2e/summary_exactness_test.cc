// HourlySummary must equal a raw GROUP BY over sensor_readings for any
// range, whatever the aggregate holds: back-filled history no refresh ever
// covered, a refresh policy that is stopped, late rows into hours already
// materialised, and (TimescaleDB) late rows into compressed chunks. Runs in
// both storage modes; the timescale half wherever the extension is
// installed (skipped otherwise).
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "server/ingest/ingest_server.h"
#include "server/query/read_server.h"
#include "server/query/sql_values.h"
#include "storage/pg/connection.h"
#include "telemetry/v1/query.grpc.pb.h"
#include "tests/support/loopback_gateway.h"
#include "tests/support/loopback_read_service.h"
#include "tests/support/servers_environment.h"

namespace telemetry {
namespace {

using telemetry::testing::Pg;
using telemetry::testing::QueryScalar;
using telemetry::testing::Redis;
namespace v1 = telemetry::v1;

constexpr int64_t kHourUs = 3'600'000'000LL;
constexpr int kSensors = 5;

struct Bucket {
  int64_t count;
  double avg, min, max;
};
using Summary = std::map<std::pair<std::string, int64_t>, Bucket>;

class SummaryExactnessTest : public ::testing::TestWithParam<pg::StorageMode> {
 protected:
  void SetUp() override {
    timescale_ = GetParam() == pg::StorageMode::kTimescale;
    if (timescale_ && !telemetry::local::PostgresServer::TimescaleInstalled()) {
      GTEST_SKIP() << "TimescaleDB is not installed for this PostgreSQL";
    }
    auto db = Pg().CreateDatabase();
    ASSERT_TRUE(db.ok()) << db.status();
    db_ = *db;
    owner_ = Pg().ConnInfo(db_);
    ingest::IngestServerOptions io = telemetry::testing::LoopbackGateway(owner_);
    io.migrate_on_start = true;
    io.migrator.mode = GetParam();
    auto gw = ingest::IngestServer::Start(io);
    ASSERT_TRUE(gw.ok()) << gw.status();
    gateway_ = *std::move(gw);
    ingest_ = v1::IngestService::NewStub(grpc::CreateChannel(
        absl::StrCat("127.0.0.1:", gateway_->port()), grpc::InsecureChannelCredentials()));
    if (timescale_) {
      // "A stopped policy": nothing refreshes but this test.
      ASSERT_EQ(Q("SELECT count(*) FROM (SELECT alter_job(job_id, scheduled => false) FROM "
                  "timescaledb_information.jobs WHERE proc_name = "
                  "'policy_refresh_continuous_aggregate') stopped"),
                "1");
    }
    auto rs = query::ReadServer::Start(telemetry::testing::LoopbackReadService(owner_));  // the test refreshes
    ASSERT_TRUE(rs.ok()) << rs.status();
    reader_ = *std::move(rs);
    auto channel = grpc::CreateChannel(absl::StrCat("127.0.0.1:", reader_->port()),
                                       grpc::InsecureChannelCredentials());
    query_ = v1::QueryService::NewStub(channel);
    admin_ = v1::AdminService::NewStub(channel);
    now_hour_ = absl::ToUnixMicros(absl::Now()) / kHourUs * kHourUs;
  }
  void TearDown() override {
    if (reader_) reader_->Shutdown(absl::Seconds(2));
    if (gateway_) gateway_->Shutdown(absl::Seconds(2));
  }

  std::string Q(const std::string& sql) { return QueryScalar(owner_, sql); }

  // Readings of every sensor every `step_us` in [from, to), through the gateway.
  void Write(int64_t from, int64_t to, int64_t step_us, double offset) {
    v1::ReadingBatch b;
    auto flush = [&] {
      if (b.readings_size() == 0) return;
      b.set_idempotency_key(absl::StrCat(db_, "-", batches_++));
      grpc::ClientContext ctx;
      v1::BatchAck ack;
      grpc::Status st = ingest_->WriteBatch(&ctx, b, &ack);
      ASSERT_TRUE(st.ok()) << st.error_message();
      ASSERT_EQ(ack.accepted(), static_cast<uint32_t>(b.readings_size())) << ack.DebugString();
      b.clear_readings();
    };
    for (int64_t us = from; us < to; us += step_us) {
      for (int s = 0; s < kSensors; ++s) {
        v1::Reading* r = b.add_readings();
        r->set_sensor_id(absl::StrCat("x", s));
        query::SetFromMicros(us, r->mutable_timestamp());
        r->set_value(offset + s * 100 + std::sin(static_cast<double>(us / 1'000'000) / 977.0) * 40);
        r->set_unit("bar");
        if (b.readings_size() >= 5000) flush();
      }
    }
    flush();
  }

  void Refresh(int64_t from, int64_t to) {
    v1::RefreshAggregateRequest req;
    query::SetFromMicros(from, req.mutable_start());
    query::SetFromMicros(to, req.mutable_end());
    v1::RefreshAggregateResponse resp;
    grpc::ClientContext ctx;
    grpc::Status st = admin_->RefreshAggregate(&ctx, req, &resp);
    ASSERT_TRUE(st.ok()) << st.error_message();
  }

  // The service's answer for [from, to); counts materialised buckets.
  Summary Service(int64_t from, int64_t to, int* materialized) {
    v1::HourlySummaryRequest req;
    for (int s = 0; s < kSensors; ++s) req.add_sensor_ids(absl::StrCat("x", s));
    query::SetFromMicros(from, req.mutable_start());
    query::SetFromMicros(to, req.mutable_end());
    v1::HourlySummaryResponse resp;
    grpc::ClientContext ctx;
    grpc::Status st = query_->HourlySummary(&ctx, req, &resp);
    EXPECT_TRUE(st.ok()) << st.error_message();
    Summary out;
    *materialized = 0;
    for (const v1::HourlyBucket& b : resp.buckets()) {
      if (b.source() == v1::HourlyBucket::SOURCE_MATERIALIZED) ++*materialized;
      auto key = std::make_pair(b.sensor_id(), query::ToMicros(b.hour()));
      EXPECT_TRUE(out.count(key) == 0) << "bucket twice: " << b.sensor_id() << "@" << key.second;
      out[key] = {b.reading_count(), b.avg_value(), b.min_value(), b.max_value()};
    }
    return out;
  }

  // The same from the raw table: every hour that [from, to) touches, whole.
  Summary Raw(int64_t from, int64_t to) {
    from = from / kHourUs * kHourUs;
    to = (to + kHourUs - 1) / kHourUs * kHourUs;
    auto conn = pg::Connection::Open(owner_);
    EXPECT_TRUE(conn.ok());
    Summary out;
    if (!conn.ok()) return out;
    auto r = (*conn)->Query(absl::StrCat(
        "SELECT sensor_id, (extract(epoch FROM date_trunc('hour', \"timestamp\", 'UTC')) * "
        "1000000)::bigint, count(*), avg(value)::text, min(value)::text, max(value)::text "
        "FROM sensor_readings WHERE sensor_id LIKE 'x%' AND \"timestamp\" >= ",
        Ts(from), " AND \"timestamp\" < ", Ts(to), " GROUP BY 1, 2"));
    EXPECT_TRUE(r.ok()) << r.status();
    if (!r.ok()) return out;
    for (int i = 0; i < r->rows(); ++i) {
      out[{std::string(r->Get(i, 0)), std::stoll(std::string(r->Get(i, 1)))}] = {
          std::stoll(std::string(r->Get(i, 2))), std::stod(std::string(r->Get(i, 3))),
          std::stod(std::string(r->Get(i, 4))), std::stod(std::string(r->Get(i, 5)))};
    }
    return out;
  }

  // Every bucket equal to the raw GROUP BY over [from, to); returns how many
  // came from the aggregate.
  int ExpectExact(int64_t from, int64_t to) {
    int materialized = 0;
    Summary got = Service(from, to, &materialized);
    Summary want = Raw(from, to);
    EXPECT_EQ(got.size(), want.size());
    int wrong = 0;
    for (const auto& [key, w] : want) {
      auto it = got.find(key);
      if (it == got.end()) {
        if (++wrong <= 5) ADD_FAILURE() << "missing " << key.first << "@" << key.second;
        continue;
      }
      const Bucket& g = it->second;
      if (g.count != w.count || g.min != w.min || g.max != w.max ||
          std::abs(g.avg - w.avg) > 1e-9 * std::max(1.0, std::abs(w.avg))) {
        if (++wrong <= 5) {
          ADD_FAILURE() << key.first << "@" << key.second << ": count " << g.count << " vs "
                        << w.count << ", avg " << g.avg << " vs " << w.avg;
        }
      }
    }
    EXPECT_EQ(wrong, 0);
    return materialized;
  }

  static std::string Ts(int64_t us) {
    return absl::StrCat("('epoch'::timestamptz + ", us, " * interval '1 microsecond')");
  }

  bool timescale_ = false;
  std::string db_, owner_;
  int batches_ = 0;
  int64_t now_hour_ = 0;
  std::unique_ptr<ingest::IngestServer> gateway_;
  std::unique_ptr<query::ReadServer> reader_;
  std::unique_ptr<v1::IngestService::Stub> ingest_;
  std::unique_ptr<v1::QueryService::Stub> query_;
  std::unique_ptr<v1::AdminService::Stub> admin_;
};

TEST_P(SummaryExactnessTest, ExactForAnyRangeThroughBackfillRefreshesLateRowsAndCompression) {
  const int64_t day = 24 * kHourUs;
  const int64_t lo = now_hour_ - 10 * day, hi = now_hour_ + kHourUs;
  // Ten days of back-filled history, one reading per sensor every 10 min.
  Write(lo, now_hour_, 600'000'000LL, 0);
  EXPECT_EQ(ExpectExact(lo, hi), 0);  // nothing materialised yet

  // What the refresh policy would cover: the last few hours only. The
  // back-filled days below it were never materialised.
  Refresh(now_hour_ - 3 * kHourUs, now_hour_ - kHourUs);
  EXPECT_GT(ExpectExact(lo, hi), 0);
  ExpectExact(lo + 5 * kHourUs + 1'000'000, now_hour_ - 2 * kHourUs - 7);  // unaligned ends

  // Everything materialised, then late rows into three materialised hours.
  Refresh(lo, now_hour_);
  const int materialized = ExpectExact(lo, hi);
  EXPECT_GT(materialized, kSensors * 200);
  for (int64_t at : {lo + 30 * kHourUs + 7'000'000, lo + 30 * kHourUs + 9'000'000,
                     lo + 100 * kHourUs + 1'000'000, now_hour_ - 5 * kHourUs + 11'000'000,
                     now_hour_ - 5 * kHourUs + 13'000'000}) {
    Write(at, at + 1, 1, 5000);
  }
  EXPECT_LT(ExpectExact(lo, hi), materialized);  // those hours now come raw
  ExpectExact(lo + 30 * kHourUs, lo + 31 * kHourUs);

  if (timescale_) {
    // Late rows into compressed chunks.
    ASSERT_NE(Q("SELECT count(compress_chunk(c, if_not_compressed => true)) FROM "
                "show_chunks('sensor_readings', older_than => now() - interval '3 days') c"),
              "0");
    Refresh(lo, now_hour_);
    for (int64_t at : {lo + 50 * kHourUs + 3'000'000, lo + 51 * kHourUs + 5'000'000}) {
      Write(at, at + 1, 1, -7000);
    }
    ExpectExact(lo, hi);
    ExpectExact(lo + 50 * kHourUs, lo + 52 * kHourUs);
  }
  // And once more after a refresh has folded everything in.
  Refresh(lo, now_hour_);
  ExpectExact(lo, hi);
}

INSTANTIATE_TEST_SUITE_P(Modes, SummaryExactnessTest,
                         ::testing::Values(pg::StorageMode::kNative, pg::StorageMode::kTimescale),
                         [](const ::testing::TestParamInfo<pg::StorageMode>& mode) {
                           return mode.param == pg::StorageMode::kNative ? "native"
                                                                         : "timescale";
                         });

}  // namespace
}  // namespace telemetry
