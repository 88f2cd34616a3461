// End to end through the real gateway (gRPC on loopback), real PostgreSQL and
// real Redis: exactly-once under concurrency, retries, Redis loss and a
// PostgreSQL restart; every validation rule with its exact reason; metrics.
#include <grpcpp/generic/generic_stub.h>
#include <hiredis/hiredis.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <fstream>
#include <signal.h>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "client/telemetry_client.h"
#include "server/ingest/ingest_server.h"
#include "storage/pg/connection.h"
#include "storage/local/http_get.h"
#include "tests/support/health_check.h"
#include "tests/support/reading_builders.h"
#include "tests/support/servers_environment.h"

namespace telemetry {
namespace {

using telemetry::testing::HealthStatus;

using telemetry::local::HttpGet;
using telemetry::local::MetricValue;
using telemetry::testing::MigratedDatabase;
using telemetry::testing::Pg;
using telemetry::local::PollUntil;
using telemetry::testing::QueryScalar;
using telemetry::testing::Redis;
using telemetry::v1::BatchAck;
using telemetry::testing::IndexedBatch;
using telemetry::testing::IndexedReading;
using telemetry::v1::Reading;
using telemetry::v1::ReadingBatch;

class IngestE2ETest : public ::testing::Test {
 protected:
  void SetUp() override {
    conninfo_ = MigratedDatabase();
    // Redis is shared by every test of this binary: keys are made unique per
    // test database.
    key_prefix_ = absl::StrCat(conninfo_.substr(conninfo_.find("dbname=") + 7, 16), "/");
    StartServer();
  }
  void TearDown() override {
    if (server_) server_->Shutdown(absl::Seconds(5));
  }

  void StartServer(ingest::IngestServerOptions o = {}) {
    if (o.transport.cert_file.empty()) o.transport.plaintext = true;  // loopback
    o.require_device_auth = false;  // security_test covers authentication
    o.listen_address = "127.0.0.1:0";
    o.metrics_address = "127.0.0.1:0";
    o.database_url = conninfo_;
    o.redis_url = Redis().Url();
    auto s = ingest::IngestServer::Start(o);
    ASSERT_TRUE(s.ok()) << s.status();
    server_ = *std::move(s);
    channel_ = grpc::CreateChannel(absl::StrCat("127.0.0.1:", server_->port()),
                                   grpc::InsecureChannelCredentials());
    stub_ = telemetry::v1::IngestService::NewStub(channel_);
  }

  std::string Key(const std::string& k) { return key_prefix_ + k; }
  std::string Q(const std::string& sql) { return QueryScalar(conninfo_, sql); }
  int64_t RowCount() { return std::stoll(Q("SELECT count(*) FROM sensor_readings")); }
  double Metric(const std::string& series) {
    auto body = HttpGet(server_->metrics_port(), "/metrics");
    EXPECT_TRUE(body.ok()) << body.status();
    return body.ok() ? MetricValue(*body, series) : -1;
  }

  grpc::Status Write(const ReadingBatch& batch, BatchAck* ack) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    return stub_->WriteBatch(&ctx, batch, ack);
  }

  std::string conninfo_;
  std::string key_prefix_;
  std::unique_ptr<ingest::IngestServer> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<telemetry::v1::IngestService::Stub> stub_;
};

TEST_F(IngestE2ETest, HundredThousandReadingsOverConcurrentStreamsLandExactly) {
  constexpr int kStreams = 4, kBatches = 25, kPerBatch = 1000;
  std::atomic<uint64_t> accepted{0};
  std::atomic<int> failures{0};
  absl::Time start = absl::Now();
  std::vector<std::thread> devices;
  for (int d = 0; d < kStreams; ++d) {
    devices.emplace_back([&, d] {
      client::BatchStream stream(channel_, {});
      for (int b = 0; b < kBatches; ++b) {
        std::string sensor = absl::StrCat("dev", d, "-s", b % 5);
        if (!stream.Send(IndexedBatch(Key(absl::StrCat("d", d, "b", b)), sensor,
                                   b * kPerBatch, kPerBatch))
                 .ok()) {
          ++failures;
        }
      }
      auto stats = stream.Close(absl::Seconds(120));
      if (!stats.ok() || !stats->failed.empty()) {
        ++failures;
        return;
      }
      accepted += stats->accepted;
    });
  }
  for (auto& t : devices) t.join();
  double seconds = absl::ToDoubleSeconds(absl::Now() - start);
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(accepted.load(), 100'000u);
  EXPECT_EQ(RowCount(), 100'000);
  EXPECT_EQ(Q("SELECT count(*) FROM sensors"), "20");
  std::printf("[ figures  ] 100000 readings over %d streams in %.2f s: %.0f rows/s\n",
              kStreams, seconds, 100000 / seconds);
}

TEST_F(IngestE2ETest, RetriedBatchIsStoredOnceAndTheSecondAckSaysDuplicate) {
  ReadingBatch batch = IndexedBatch(Key("retry"), "s", 0, 50);
  BatchAck first, second;
  ASSERT_TRUE(Write(batch, &first).ok());
  EXPECT_EQ(first.accepted(), 50u);
  EXPECT_EQ(first.duplicates(), 0u);
  EXPECT_EQ(first.idempotency_key(), Key("retry"));
  ASSERT_TRUE(Write(batch, &second).ok());
  EXPECT_EQ(second.accepted(), 0u);
  EXPECT_EQ(second.duplicates(), 50u);
  EXPECT_EQ(RowCount(), 50);
}

TEST_F(IngestE2ETest, ConcurrentDeliveriesOfOneBatchStoreItOnce) {
  ReadingBatch batch = IndexedBatch(Key("concurrent"), "s", 0, 200);
  std::atomic<uint32_t> accepted{0}, duplicates{0};
  std::atomic<int> errors{0};
  std::vector<std::thread> senders;
  for (int i = 0; i < 4; ++i) {
    senders.emplace_back([&] {
      BatchAck ack;
      if (!Write(batch, &ack).ok()) {
        ++errors;
        return;
      }
      accepted += ack.accepted();
      duplicates += ack.duplicates();
    });
  }
  for (auto& t : senders) t.join();
  EXPECT_EQ(errors.load(), 0);
  EXPECT_EQ(accepted.load(), 200u);
  EXPECT_EQ(duplicates.load(), 600u);
  EXPECT_EQ(RowCount(), 200);
}

TEST_F(IngestE2ETest, RedisStoppedMidStreamIngestionContinuesExactlyOnce) {
  client::BatchStream stream(channel_, {});
  for (int b = 0; b < 10; ++b) {
    ASSERT_TRUE(stream.Send(IndexedBatch(Key(absl::StrCat("r", b)), "s", b * 100, 100)).ok());
  }
  ASSERT_TRUE(PollUntil([&] {
    return Metric("telemetry_ingest_readings_total{outcome=\"accepted\"}") == 1000;
  }));
  ASSERT_TRUE(Redis().Stop().ok());
  // Same stream: new batches, interleaved with retries of stored ones.
  for (int b = 10; b < 20; ++b) {
    ASSERT_TRUE(stream.Send(IndexedBatch(Key(absl::StrCat("r", b)), "s", b * 100, 100)).ok());
    if (b % 2 == 0) {
      int old = b - 10;
      ASSERT_TRUE(stream.Send(IndexedBatch(Key(absl::StrCat("r", old)), "s", old * 100, 100)).ok());
    }
  }
  auto stats = stream.Close(absl::Seconds(60));
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_TRUE(stats->failed.empty());
  EXPECT_EQ(stats->accepted, 2000u);
  EXPECT_EQ(stats->duplicates, 500u);
  EXPECT_EQ(RowCount(), 2000);
  EXPECT_GT(Metric("telemetry_redis_errors_total"), 0);
  EXPECT_GE(Metric("telemetry_dedupe_db_fallback_batches_total"), 15);
  EXPECT_EQ(Metric("telemetry_redis_up"), 0);
  ASSERT_TRUE(Redis().Restart().ok());
  // Back to Redis once it returns (the store retries its connection).
  BatchAck ack;
  ASSERT_TRUE(PollUntil([&] {
    return Write(IndexedBatch(Key("after-redis"), "s", 5000, 10), &ack).ok() &&
           Metric("telemetry_redis_up") == 1;
  }));
}

TEST_F(IngestE2ETest, RedisFlushedAndFlappingMidStreamStillExactlyOnce) {
  client::BatchStream stream(channel_, {});
  auto send = [&](int b) {
    ASSERT_TRUE(stream.Send(IndexedBatch(Key(absl::StrCat("f", b)), "f", b * 100, 100)).ok());
  };
  // Every batch sent so far is acknowledged (so re-sending a key is legal).
  auto settled = [&](double accepted, double duplicates) {
    return PollUntil([&] {
      return Metric("telemetry_ingest_readings_total{outcome=\"accepted\"}") == accepted &&
             Metric("telemetry_ingest_readings_total{outcome=\"duplicate\"}") == duplicates;
    });
  };
  for (int b = 0; b < 10; ++b) send(b);
  ASSERT_TRUE(settled(1000, 0));
  // Redis forgets every key: re-sends look new to it, the primary key
  // catches them (COPY hits 23505, the group is rewritten via staging).
  {
    timeval tv{2, 0};
    redisContext* rc = redisConnectWithTimeout("127.0.0.1", Redis().port(), tv);
    ASSERT_TRUE(rc != nullptr && rc->err == 0);
    auto* reply = static_cast<redisReply*>(redisCommand(rc, "FLUSHALL"));
    ASSERT_NE(reply, nullptr);
    freeReplyObject(reply);
    redisFree(rc);
  }
  for (int b = 0; b < 5; ++b) send(b);
  for (int b = 10; b < 12; ++b) send(b);
  ASSERT_TRUE(settled(1200, 500));
  EXPECT_GE(Metric("telemetry_ingest_duplicate_fallbacks_total"), 1);
  // Flapping: down, up, down, up, with new batches and re-sends each time.
  for (int round = 0; round < 2; ++round) {
    ASSERT_TRUE(Redis().Stop().ok());
    int base = 12 + round * 4;
    send(base);
    send(base + 1);
    send(round);  // a re-send while Redis is down
    ASSERT_TRUE(settled(1200 + (round * 4 + 2) * 100, 500 + (round * 2 + 1) * 100));
    ASSERT_TRUE(Redis().Restart().ok());
    send(base + 2);
    send(base + 3);
    send(round + 5);  // a re-send once it is back (its key was flushed)
    ASSERT_TRUE(settled(1200 + (round * 4 + 4) * 100, 500 + (round * 2 + 2) * 100));
  }
  auto stats = stream.Close(absl::Seconds(60));
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_TRUE(stats->failed.empty());
  EXPECT_EQ(stats->accepted, 2000u);
  EXPECT_EQ(stats->duplicates, 900u);
  EXPECT_EQ(RowCount(), 2000);
}

TEST_F(IngestE2ETest, PostgresRestartMidStreamLosesAndDuplicatesNothing) {
  constexpr int kBatches = 60, kPerBatch = 500;
  client::StreamOptions options;
  options.retry.max_backoff = absl::Milliseconds(500);
  client::BatchStream stream(channel_, options);
  std::thread producer([&] {
    for (int b = 0; b < kBatches; ++b) {
      (void)stream.Send(IndexedBatch(Key(absl::StrCat("pg", b)),
                                  absl::StrCat("s", b % 7), b * kPerBatch, kPerBatch));
    }
  });
  // Stop PostgreSQL once part of the data is in, restart it once the gateway
  // has noticed.
  // No ASSERT while the producer runs: it must be joined whatever happens,
  // and PostgreSQL must be up again for it to finish.
  EXPECT_TRUE(PollUntil([&] {
    return Metric("telemetry_ingest_readings_total{outcome=\"accepted\"}") >= 5000;
  }));
  EXPECT_TRUE(Pg().Stop().ok());
  EXPECT_TRUE(PollUntil([&] { return Metric("telemetry_postgres_errors_total") > 0; }));
  absl::Status restarted = Pg().running() ? absl::OkStatus() : Pg().Restart();
  EXPECT_TRUE(restarted.ok()) << restarted;
  producer.join();
  ASSERT_TRUE(restarted.ok());
  auto stats = stream.Close(absl::Seconds(120));
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_TRUE(stats->failed.empty());
  EXPECT_EQ(stats->accepted + stats->duplicates,
            static_cast<uint64_t>(kBatches * kPerBatch));
  EXPECT_EQ(RowCount(), kBatches * kPerBatch);
  EXPECT_GT(stats->resends, 0u) << "the restart should have forced retries";
}

TEST_F(IngestE2ETest, EveryValidationRuleRejectsOnlyItsReading) {
  ReadingBatch batch;
  batch.set_idempotency_key(Key("validation"));
  struct Case {
    std::function<void(Reading*)> spoil;
    std::string field, reason;
  };
  std::vector<Case> cases = {
      {[](Reading* r) { r->set_sensor_id(""); }, "sensor_id", "sensor_id is empty"},
      {[](Reading* r) { r->set_sensor_id(std::string(256, 'x')); }, "sensor_id",
       "sensor_id is 256 bytes long; the limit is 255"},
      {[](Reading* r) { r->set_unit(std::string(51, 'u')); }, "unit",
       "unit is 51 bytes long; the limit is 50"},
      {[](Reading* r) { r->set_value(std::nan("")); }, "value",
       "value is not a finite number"},
      {[](Reading* r) { r->set_value(-INFINITY); }, "value",
       "value is not a finite number"},
      {[](Reading* r) { r->set_quality(1.5); }, "quality",
       "quality must be between 0 and 1"},
      {[](Reading* r) { r->clear_timestamp(); }, "timestamp", "timestamp is missing"},
      {[](Reading* r) {
         r->mutable_timestamp()->set_seconds(absl::ToUnixSeconds(absl::Now()) + 3600);
       },
       "timestamp", "timestamp is more than 5m in the future"},
      {[](Reading* r) {
         r->mutable_timestamp()->set_seconds(absl::ToUnixSeconds(absl::Now()) -
                                             200 * 86400);
       },
       "timestamp", "timestamp is older than the retention period (4320h)"},
      {[](Reading* r) { *r = IndexedReading("good", 0); }, "timestamp",
       "duplicate of reading 0 in this batch (same sensor_id and timestamp)"},
  };
  *batch.add_readings() = IndexedReading("good", 0);
  for (size_t i = 0; i < cases.size(); ++i) {
    Reading r = IndexedReading("bad", static_cast<int>(i) + 1);
    cases[i].spoil(&r);
    *batch.add_readings() = r;
    *batch.add_readings() = IndexedReading("good", static_cast<int>(i) + 1);
  }
  BatchAck ack;
  grpc::Status status = Write(batch, &ack);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(ack.accepted(), cases.size() + 1);
  EXPECT_EQ(ack.rejected(), cases.size());
  ASSERT_EQ(ack.rejections_size(), static_cast<int>(cases.size()));
  for (size_t i = 0; i < cases.size(); ++i) {
    const auto& rej = ack.rejections(static_cast<int>(i));
    EXPECT_EQ(rej.index(), 2 * i + 1);
    EXPECT_EQ(rej.field(), cases[i].field) << i;
    EXPECT_EQ(rej.reason(), cases[i].reason) << i;
  }
  EXPECT_EQ(RowCount(), static_cast<int64_t>(cases.size() + 1));
  EXPECT_EQ(Q("SELECT count(*) FROM sensor_readings WHERE sensor_id <> 'good'"), "0");
  EXPECT_EQ(Metric("telemetry_ingest_readings_total{outcome=\"rejected\"}"),
            static_cast<double>(cases.size()));
  // A resend of the same batch is answered with the same rejections, but
  // they are the same readings: not counted again.
  BatchAck resent;
  ASSERT_TRUE(Write(batch, &resent).ok());
  EXPECT_EQ(resent.duplicates(), cases.size() + 1);
  EXPECT_EQ(resent.rejected(), cases.size());
  EXPECT_EQ(Metric("telemetry_ingest_readings_total{outcome=\"rejected\"}"),
            static_cast<double>(cases.size()));
}

TEST_F(IngestE2ETest, BatchLevelErrorsAreInvalidArgumentWithTheLimit) {
  BatchAck ack;
  ReadingBatch no_key = IndexedBatch("", "s", 0, 1);
  grpc::Status s = Write(no_key, &ack);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_TRUE(absl::StartsWith(s.error_message(), "idempotency_key is required [request_id="))
      << s.error_message();

  ReadingBatch too_many = IndexedBatch(Key("big"), "s", 0, 10001);
  s = Write(too_many, &ack);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_TRUE(absl::StartsWith(s.error_message(), "batch has 10001 readings; the limit is 10000"))
      << s.error_message();

  // Over the 8 MiB message limit: not retryable, and the message says so.
  ReadingBatch oversized = IndexedBatch(Key("huge"), "s", 0, 1);
  (*oversized.mutable_readings(0)->mutable_metadata()->mutable_fields())["blob"]
      .set_string_value(std::string(9 << 20, 'x'));
  s = Write(oversized, &ack);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << s.error_message();
  EXPECT_NE(s.error_message().find("the limit is 8388608 bytes"), std::string::npos)
      << s.error_message();
  // Beyond twice the limit gRPC itself refuses the message.
  (*oversized.mutable_readings(0)->mutable_metadata()->mutable_fields())["blob"]
      .set_string_value(std::string(17 << 20, 'x'));
  s = Write(oversized, &ack);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << s.error_message();
  EXPECT_EQ(RowCount(), 0);
}

TEST_F(IngestE2ETest, StreamReportsABadBatchInItsAckAndKeepsGoing) {
  grpc::ClientContext ctx;
  auto stream = stub_->StreamReadings(&ctx);
  ASSERT_TRUE(stream->Write(IndexedBatch("", "s", 0, 3)));
  BatchAck ack;
  ASSERT_TRUE(stream->Read(&ack));
  EXPECT_EQ(ack.status_code(), static_cast<int>(grpc::StatusCode::INVALID_ARGUMENT));
  EXPECT_EQ(ack.status_message(), "idempotency_key is required");
  // Each ack names its batch as "<call id>.<n>"; the call id is in the
  // response header.
  auto header = ctx.GetServerInitialMetadata().find("x-request-id");
  ASSERT_NE(header, ctx.GetServerInitialMetadata().end());
  const std::string call_id(header->second.data(), header->second.size());
  EXPECT_EQ(call_id.size(), 16u);
  EXPECT_EQ(ack.correlation_id(), call_id + ".1");
  ASSERT_TRUE(stream->Write(IndexedBatch(Key("after"), "s", 0, 3)));
  ASSERT_TRUE(stream->Read(&ack));
  EXPECT_EQ(ack.status_code(), 0);
  EXPECT_EQ(ack.accepted(), 3u);
  EXPECT_EQ(ack.correlation_id(), call_id + ".2");
  stream->WritesDone();
  EXPECT_TRUE(stream->Finish().ok());
  EXPECT_EQ(RowCount(), 3);
}

TEST_F(IngestE2ETest, ClientRequestIdsCarryIntoErrorRepliesAndLogs) {
  // A usable client id is kept; it shows in the error message and the ack.
  grpc::ClientContext ctx;
  ctx.AddMetadata("x-request-id", "edge-42:boot-7.req-1");
  BatchAck ack;
  grpc::Status s = stub_->WriteBatch(&ctx, IndexedBatch("", "s", 0, 1), &ack);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(s.error_message(), "idempotency_key is required [request_id=edge-42:boot-7.req-1]");
  // An unusable one (here with a space and a quote) is replaced, not echoed.
  grpc::ClientContext hostile;
  hostile.AddMetadata("x-request-id", "x\" injected");
  s = stub_->WriteBatch(&hostile, IndexedBatch("", "s", 0, 1), &ack);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(s.error_message().find("injected"), std::string::npos) << s.error_message();
  auto header = hostile.GetServerInitialMetadata().find("x-request-id");
  ASSERT_NE(header, hostile.GetServerInitialMetadata().end());
  EXPECT_EQ(header->second.size(), 16u);
  grpc::ClientContext ok_ctx;
  ok_ctx.AddMetadata("x-request-id", "dev-1");
  ASSERT_TRUE(stub_->WriteBatch(&ok_ctx, IndexedBatch(Key("cid"), "s", 0, 1), &ack).ok());
  EXPECT_EQ(ack.correlation_id(), "dev-1");
}

TEST_F(IngestE2ETest, MetricsCountOutcomesAndLatency) {
  BatchAck ack;
  ReadingBatch batch = IndexedBatch(Key("m"), "s", 0, 10);
  ASSERT_TRUE(Write(batch, &ack).ok());
  ASSERT_TRUE(Write(batch, &ack).ok());
  EXPECT_EQ(Metric("telemetry_ingest_readings_total{outcome=\"accepted\"}"), 10);
  EXPECT_EQ(Metric("telemetry_ingest_readings_total{outcome=\"duplicate\"}"), 10);
  EXPECT_EQ(Metric("telemetry_ingest_batches_total{outcome=\"committed\"}"), 1);
  EXPECT_EQ(Metric("telemetry_ingest_batches_total{outcome=\"duplicate\"}"), 1);
  EXPECT_EQ(Metric("telemetry_ingest_ack_latency_seconds_count"), 2);
  EXPECT_EQ(Metric("telemetry_ingest_queue_readings"), 0);
  EXPECT_EQ(Metric("telemetry_redis_up"), 1);
}

TEST_F(IngestE2ETest, TelemetryctlSendsACsvFile) {
  std::string path = absl::StrCat(::testing::TempDir(), "/readings.csv");
  {
    std::ofstream csv(path);
    csv << "sensor_id,timestamp,value,unit,quality,metadata\n";
    int64_t now = absl::ToUnixSeconds(absl::Now());
    for (int i = 0; i < 2500; ++i) {
      csv << "cli-" << (i % 3) << "," << (now - 600 + i / 3) << "." << (i % 3)
          << "," << i * 0.1 << ",bar," << (i % 2 ? "0.5" : "") << ","
          << (i == 7 ? "\"{\"\"fw\"\": \"\"1.2\"\"}\"" : "") << "\n";
    }
  }
  std::string cmd = absl::StrCat(
      "INGEST_ADDRESS=127.0.0.1:", server_->port(), " ", TELEMETRYCTL_PATH,
      " send --plaintext --file=", path, " --batch_size=1000 > ", path, ".out 2>&1");
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  std::ifstream out(path + ".out");
  std::string summary((std::istreambuf_iterator<char>(out)), {});
  EXPECT_NE(summary.find("sent 2500 readings: 2500 accepted, 0 duplicates"),
            std::string::npos)
      << summary;
  EXPECT_EQ(RowCount(), 2500);
  EXPECT_EQ(Q("SELECT sensor_metadata->>'fw' FROM sensor_readings "
              "WHERE sensor_metadata IS NOT NULL"),
            "1.2");
  // Sending the same file again stores nothing new.
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  EXPECT_EQ(RowCount(), 2500);
}

TEST_F(IngestE2ETest, HealthCheckSaysServing) {
  EXPECT_EQ(HealthStatus(channel_, ""), 1);
  EXPECT_EQ(HealthStatus(channel_, "telemetry.v1.IngestService"), 1);
}

TEST_F(IngestE2ETest, ReadinessFollowsTheDatabaseAndLivenessStaysServing) {
  using telemetry::testing::kHealthNotServing, telemetry::testing::kHealthServing;
  constexpr int kServing = kHealthServing, kNotServing = kHealthNotServing;
  const std::string service = "telemetry.v1.IngestService";
  ASSERT_EQ(HealthStatus(channel_, service), kServing);
  ASSERT_TRUE(Pg().Stop().ok());
  // No ASSERT until PostgreSQL is back: later tests need it.
  EXPECT_TRUE(PollUntil([&] { return HealthStatus(channel_, service) == kNotServing; }))
      << "still ready with the database stopped";
  EXPECT_EQ(HealthStatus(channel_, ""), kServing) << "liveness must not follow the database";
  absl::Status restarted = Pg().Restart();
  ASSERT_TRUE(restarted.ok()) << restarted;
  EXPECT_TRUE(PollUntil([&] { return HealthStatus(channel_, service) == kServing; }))
      << "not ready again after the database came back";
}

TEST_F(IngestE2ETest, SeparateHealthPortServesOnlyHealthForProbes) {
  // Kubernetes' gRPC probes cannot speak TLS: a plaintext port answers
  // grpc.health.v1 and nothing else.
  server_->Shutdown(absl::Seconds(5));
  ingest::IngestServerOptions o;
  o.transport.plaintext = true;  // loopback
  o.require_device_auth = false;
  o.health_address = "127.0.0.1:0";
  StartServer(o);
  ASSERT_GT(server_->health_port(), 0);
  auto health = grpc::CreateChannel(absl::StrCat("127.0.0.1:", server_->health_port()),
                                    grpc::InsecureChannelCredentials());
  EXPECT_EQ(HealthStatus(health, ""), 1);
  EXPECT_EQ(HealthStatus(health, "telemetry.v1.IngestService"), 1);
  auto stub = telemetry::v1::IngestService::NewStub(health);
  grpc::ClientContext ctx;
  BatchAck ack;
  EXPECT_EQ(stub->WriteBatch(&ctx, IndexedBatch(Key("h"), "s", 0, 1), &ack).error_code(),
            grpc::StatusCode::UNIMPLEMENTED);
  EXPECT_EQ(RowCount(), 0);
}

TEST_F(IngestE2ETest, SlowDatabasePushesBackAndLosesNothing) {
  server_->Shutdown(absl::Seconds(5));
  ingest::IngestServerOptions o;
  o.transport.plaintext = true;  // loopback
  o.require_device_auth = false;
  o.pipeline.max_queued_readings = 3000;
  StartServer(o);
  // Hold the table so every write waits, as behind a long lock or a stall.
  auto locker = pg::Connection::Open(conninfo_);
  ASSERT_TRUE(locker.ok());
  ASSERT_TRUE((*locker)->Exec("BEGIN; LOCK TABLE sensor_readings IN ACCESS EXCLUSIVE MODE").ok());

  std::vector<std::thread> unary;
  std::atomic<int> unary_ok{0};
  for (int i = 0; i < 3; ++i) {
    unary.emplace_back([&, i] {
      BatchAck ack;
      if (Write(IndexedBatch(Key(absl::StrCat("u", i)), "u", i * 1000, 1000), &ack).ok() &&
          ack.accepted() == 1000) {
        ++unary_ok;
      }
    });
  }
  // No ASSERT until the lock is released and the callers joined.
  EXPECT_TRUE(PollUntil([&] { return Metric("telemetry_ingest_queue_readings") == 3000; }));
  // The queue is full: a unary call is refused at once, retryably.
  BatchAck ack;
  grpc::Status refused = Write(IndexedBatch(Key("u3"), "u", 3000, 1000), &ack);
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  // A stream is not refused: it stops being read until space frees.
  client::BatchStream stream(channel_, {});
  for (int b = 0; b < 5; ++b) {
    EXPECT_TRUE(stream.Send(IndexedBatch(Key(absl::StrCat("st", b)), "st", b * 1000, 1000)).ok());
  }
  EXPECT_LE(Metric("telemetry_ingest_queue_readings"), 3000);
  EXPECT_TRUE((*locker)->Exec("COMMIT").ok());
  for (auto& t : unary) t.join();
  auto stats = stream.Close(absl::Seconds(60));
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(unary_ok.load(), 3);
  EXPECT_EQ(stats->accepted, 5000u);
  EXPECT_TRUE(stats->failed.empty());
  EXPECT_EQ(RowCount(), 8000);
  EXPECT_GE(Metric("telemetry_ingest_batches_total{outcome=\"overloaded\"}"), 1);
}

TEST_F(IngestE2ETest, ShutdownAcknowledgesEverythingItAccepted) {
  grpc::ClientContext ctx;
  auto stream = stub_->StreamReadings(&ctx);
  for (int b = 0; b < 10; ++b) {
    ASSERT_TRUE(stream->Write(IndexedBatch(Key(absl::StrCat("sd", b)), "sd", b * 100, 100)));
  }
  stream->WritesDone();
  std::thread stopper([&] { server_->Shutdown(absl::Seconds(10)); });
  BatchAck ack;
  uint32_t accepted = 0;
  int acks = 0;
  while (stream->Read(&ack)) {
    ++acks;
    EXPECT_EQ(ack.status_code(), 0) << ack.status_message();
    accepted += ack.accepted();
  }
  grpc::Status st = stream->Finish();
  stopper.join();
  // Batches the gateway had read when the shutdown began are acknowledged;
  // the rest it no longer reads, and ends the stream UNAVAILABLE. When the
  // client's unread messages are still in flight, gRPC may report that
  // finish as CANCELLED instead (seen once in five clean runs); either way
  // the client resends what was not acknowledged.
  if (acks < 10) {
    EXPECT_TRUE(st.error_code() == grpc::StatusCode::UNAVAILABLE ||
                st.error_code() == grpc::StatusCode::CANCELLED)
        << st.error_code() << " " << st.error_message();
  } else {
    EXPECT_TRUE(st.ok() || st.error_code() == grpc::StatusCode::UNAVAILABLE)
        << st.error_message();
  }
  EXPECT_EQ(accepted, static_cast<uint32_t>(acks) * 100u);
  EXPECT_EQ(RowCount(), static_cast<int64_t>(accepted));
}

TEST_F(IngestE2ETest, ShutdownEndsOpenStreamsAtOnceWithARetryableStatus) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(90));
  auto stream = stub_->StreamReadings(&ctx);
  BatchAck ack;
  for (int b = 0; b < 3; ++b) {
    ASSERT_TRUE(stream->Write(IndexedBatch(Key(absl::StrCat("open", b)), "open", b * 100, 100)));
    ASSERT_TRUE(stream->Read(&ack));
    ASSERT_EQ(ack.status_code(), 0) << ack.status_message();
  }
  // The device keeps its stream open. A long grace must not be waited out:
  // the gateway ends the stream as soon as it has nothing left to ack.
  std::thread stopper([&] { server_->Shutdown(absl::Minutes(2)); });
  while (stream->Read(&ack)) {
  }
  grpc::Status st = stream->Finish();
  stopper.join();
  EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAVAILABLE) << st.error_message();
  EXPECT_NE(st.error_message().find("shutting down"), std::string::npos) << st.error_message();
  EXPECT_EQ(RowCount(), 300);
}

TEST_F(IngestE2ETest, TimescaleModeIngestsExactlyOnce) {
  if (!telemetry::local::PostgresServer::TimescaleInstalled()) {
    GTEST_SKIP() << "TimescaleDB is not installed for this PostgreSQL; the "
                    "hypertable write path is not exercised here";
  }
  server_->Shutdown(absl::Seconds(5));
  auto db = Pg().CreateDatabase();
  ASSERT_TRUE(db.ok());
  conninfo_ = Pg().ConnInfo(*db);
  key_prefix_ = *db + "/";
  ingest::IngestServerOptions o;
  o.transport.plaintext = true;  // loopback
  o.require_device_auth = false;
  o.migrate_on_start = true;
  o.migrator.mode = pg::StorageMode::kTimescale;
  StartServer(o);
  ASSERT_EQ(server_->storage_mode(), pg::StorageMode::kTimescale);
  client::BatchStream stream(channel_, {});
  for (int b = 0; b < 20; ++b) {
    ASSERT_TRUE(stream.Send(IndexedBatch(Key(absl::StrCat("ts", b)), "ts", b * 500, 500)).ok());
  }
  auto stats = stream.Close(absl::Seconds(60));
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(stats->accepted, 10000u);
  // A retry (Redis answers) and a re-send under a new key (the hypertable's
  // primary key answers, through the staging path).
  BatchAck ack;
  ASSERT_TRUE(Write(IndexedBatch(Key("ts3"), "ts", 1500, 500), &ack).ok());
  EXPECT_EQ(ack.duplicates(), 500u);
  ASSERT_TRUE(Write(IndexedBatch(Key("ts-new-key"), "ts", 9800, 300), &ack).ok());
  EXPECT_EQ(ack.accepted(), 100u);
  EXPECT_EQ(ack.duplicates(), 200u);
  EXPECT_EQ(RowCount(), 10100);
  EXPECT_GE(std::stoi(Q("SELECT count(*) FROM timescaledb_information.chunks "
                        "WHERE hypertable_name = 'sensor_readings'")),
            1);
}

TEST_F(IngestE2ETest, ServerReflectionListsTheIngestService) {
  // grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo with
  // {list_services: ""} (field 7), read back as raw bytes.
  grpc::GenericStub stub(channel_);
  grpc::CompletionQueue cq;
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  auto call = stub.PrepareCall(
      &ctx, "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", &cq);
  void* tag;
  bool ok;
  auto step = [&](intptr_t want) {
    return cq.Next(&tag, &ok) && ok && reinterpret_cast<intptr_t>(tag) == want;
  };
  call->StartCall(reinterpret_cast<void*>(1));
  ASSERT_TRUE(step(1));
  std::string req("\x3a\x00", 2);
  grpc::Slice slice(req);
  grpc::ByteBuffer request(&slice, 1);
  call->Write(request, reinterpret_cast<void*>(2));
  ASSERT_TRUE(step(2));
  grpc::ByteBuffer response;
  call->Read(&response, reinterpret_cast<void*>(3));
  ASSERT_TRUE(step(3));
  std::vector<grpc::Slice> slices;
  (void)response.Dump(&slices);
  std::string bytes;
  for (const auto& s : slices) bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
  EXPECT_NE(bytes.find("telemetry.v1.IngestService"), std::string::npos);
  EXPECT_NE(bytes.find("grpc.health.v1.Health"), std::string::npos);
  ctx.TryCancel();
  grpc::Status status;
  call->Finish(&status, reinterpret_cast<void*>(4));
  while (cq.Next(&tag, &ok) && reinterpret_cast<intptr_t>(tag) != 4) {
  }
  cq.Shutdown();
  while (cq.Next(&tag, &ok)) {
  }
}

// The real binary: configuration from the environment, SIGTERM drains.
TEST(IngestGatewayBinaryTest, ServesFromEnvironmentAndExitsCleanlyOnSigterm) {
  std::string conninfo = MigratedDatabase();
  int port = telemetry::local::FreeLoopbackPort();
  int metrics_port = telemetry::local::FreeLoopbackPort();
  std::string log = absl::StrCat(::testing::TempDir(), "/gateway.log");
  pid_t pid = telemetry::local::SpawnProcess(
      {"/usr/bin/env", absl::StrCat("DATABASE_URL=", conninfo),
       absl::StrCat("REDIS_URL=", Redis().Url()),
       absl::StrCat("INGEST_LISTEN_ADDRESS=127.0.0.1:", port),
       absl::StrCat("INGEST_METRICS_ADDRESS=127.0.0.1:", metrics_port), "PLAINTEXT=1",
       INGEST_GATEWAY_PATH, "--device_auth=false"},
      log);
  ASSERT_GT(pid, 0);
  // A fresh channel per probe: a channel that saw "connection refused" backs
  // off its reconnects for seconds.
  ASSERT_TRUE(PollUntil([&] {
    return HealthStatus(grpc::CreateChannel(absl::StrCat("127.0.0.1:", port),
                                            grpc::InsecureChannelCredentials()),
                        "") == 1;
  }));
  auto channel = grpc::CreateChannel(absl::StrCat("127.0.0.1:", port),
                                     grpc::InsecureChannelCredentials());
  // The metrics port opens last in Start(), a moment after gRPC serves.
  EXPECT_TRUE(PollUntil([&] { return HttpGet(metrics_port, "/metrics").ok(); }));
  client::BatchStream stream(channel, {});
  for (int b = 0; b < 5; ++b) {
    ASSERT_TRUE(stream.Send(IndexedBatch(absl::StrCat(conninfo.size(), "bin", b, getpid()),
                                      "bin", b * 100, 100))
                    .ok());
  }
  auto stats = stream.Close(absl::Seconds(30));
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(stats->accepted, 500u);
  kill(pid, SIGTERM);
  EXPECT_EQ(telemetry::local::WaitForExit(pid, absl::Seconds(30)), 0);
  EXPECT_EQ(QueryScalar(conninfo, "SELECT count(*) FROM sensor_readings"), "500");
  std::ifstream in(log);
  std::string text((std::istreambuf_iterator<char>(in)), {});
  EXPECT_NE(text.find("\"msg\":\"ingest gateway stopped\""), std::string::npos) << text;
  EXPECT_EQ(text.find("password"), std::string::npos);
}

TEST(TelemetryctlMigrateTest, AppliesAndReportsStatus) {
  auto db = Pg().CreateDatabase();
  ASSERT_TRUE(db.ok());
  std::string url = Pg().ConnInfo(*db);
  std::string out = absl::StrCat(::testing::TempDir(), "/migrate.out");
  std::string apply = absl::StrCat("DATABASE_URL='", url, "' ", TELEMETRYCTL_PATH,
                                   " migrate apply > ", out, " 2>&1");
  ASSERT_EQ(std::system(apply.c_str()), 0);
  std::string status = absl::StrCat("DATABASE_URL='", url, "' ", TELEMETRYCTL_PATH,
                                    " migrate status > ", out, " 2>&1");
  ASSERT_EQ(std::system(status.c_str()), 0);
  std::ifstream in(out);
  std::string text((std::istreambuf_iterator<char>(in)), {});
  const char* mode = telemetry::local::PostgresServer::TimescaleInstalled()
                         ? "storage mode: timescale"
                         : "storage mode: native";
  EXPECT_NE(text.find(mode), std::string::npos) << text;
  EXPECT_NE(text.find("applied  2  sensor_readings"), std::string::npos) << text;
  EXPECT_EQ(text.find("pending"), std::string::npos) << text;
}

}  // namespace
}  // namespace telemetry
