// Faults with real processes on loopback (ctest label "fault"): PostgreSQL
// killed with SIGKILL mid-stream, the gateway binary killed with SIGKILL
// mid-stream and restarted, the database turned read-only under load. In
// each case the client library keeps retrying, and afterwards the table holds
// exactly the distinct readings sent: nothing lost, nothing twice.
#include <gtest/gtest.h>

#include <grpcpp/grpcpp.h>
#include <signal.h>

#include <thread>

#include "absl/strings/str_cat.h"
#include "client/channel.h"
#include "client/telemetry_client.h"
#include "server/ingest/ingest_server.h"
#include "telemetry/v1/ingest.grpc.pb.h"
#include "tests/support/http_get.h"
#include "tests/support/servers_environment.h"
#include "tests/support/test_servers.h"

// Designated initializers name only the ChannelOptions fields that matter.
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

namespace telemetry {
namespace {

using telemetry::testing::MigratedDatabase;
using telemetry::testing::Pg;
using telemetry::testing::PollUntil;
using telemetry::testing::QueryScalar;
using telemetry::testing::Redis;
namespace v1 = telemetry::v1;

v1::ReadingBatch MakeBatch(const std::string& key, const std::string& sensor, int first, int n) {
  static const int64_t base_ms = absl::ToUnixMillis(absl::Now()) - 3'600'000;
  v1::ReadingBatch b;
  b.set_idempotency_key(key);
  for (int i = first; i < first + n; ++i) {
    v1::Reading* r = b.add_readings();
    r->set_sensor_id(sensor);
    const int64_t ms = base_ms + i;
    r->mutable_timestamp()->set_seconds(ms / 1000);
    r->mutable_timestamp()->set_nanos(static_cast<int32_t>(ms % 1000) * 1'000'000);
    r->set_value(i * 0.5);
  }
  return b;
}

int64_t Count(const std::string& db) {
  return std::stoll(QueryScalar(db, "SELECT count(*) FROM sensor_readings"));
}

// A channel that retries a refused connection within half a second rather
// than after gRPC's default backoff of up to two minutes.
std::shared_ptr<grpc::Channel> FastReconnectChannel(int port) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 500);
  return grpc::CreateCustomChannel(absl::StrCat("127.0.0.1:", port),
                                   grpc::InsecureChannelCredentials(), args);
}

client::StreamOptions PatientStream() {
  client::StreamOptions o;
  o.retry.max_backoff = absl::Milliseconds(500);
  o.ack_timeout = absl::Seconds(10);
  return o;
}

// The load each fault test streams: 40,000 readings in 80 batches.
struct Load {
  static constexpr int kBatches = 80, kPerBatch = 500;
};

TEST(FaultTest, PostgresKilledWithSigkillMidStreamLosesAndDuplicatesNothing) {
  const std::string db = MigratedDatabase();
  ingest::IngestServerOptions o;
  o.listen_address = "127.0.0.1:0";
  o.metrics_address = "127.0.0.1:0";
  o.database_url = db;
  o.redis_url = Redis().Url();
  o.transport.plaintext = true;  // loopback
  o.require_device_auth = false;
  auto server = ingest::IngestServer::Start(o);
  ASSERT_TRUE(server.ok()) << server.status();
  auto metric = [&](const std::string& series) {
    auto body = telemetry::testing::HttpGet((*server)->metrics_port(), "/metrics");
    return body.ok() ? telemetry::testing::MetricValue(*body, series) : -1;
  };

  client::BatchStream stream(FastReconnectChannel((*server)->port()), PatientStream());
  std::thread producer([&] {
    for (int b = 0; b < Load::kBatches; ++b) {
      (void)stream.Send(MakeBatch(absl::StrCat("k9pg-", b), absl::StrCat("s", b % 5),
                                  b * Load::kPerBatch, Load::kPerBatch));
    }
  });
  ASSERT_TRUE(PollUntil([&] { return Count(db) >= 5'000; }));
  ASSERT_TRUE(Pg().Kill().ok());  // no shutdown checkpoint: crash recovery on start
  ASSERT_TRUE(PollUntil([&] { return metric("telemetry_postgres_errors_total") > 0; }));
  ASSERT_TRUE(Pg().Restart().ok());
  producer.join();
  auto stats = stream.Close(absl::Seconds(120));
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_TRUE(stats->failed.empty());
  EXPECT_EQ(stats->accepted + stats->duplicates,
            static_cast<uint64_t>(Load::kBatches * Load::kPerBatch));
  EXPECT_EQ(Count(db), Load::kBatches * Load::kPerBatch);
  EXPECT_EQ(QueryScalar(db, "SELECT count(*) FROM (SELECT DISTINCT sensor_id, \"timestamp\" "
                            "FROM sensor_readings) d"),
            std::to_string(Load::kBatches * Load::kPerBatch));
  (*server)->Shutdown(absl::Seconds(5));
}

pid_t StartGatewayBinary(const std::string& db, int port, const std::string& log) {
  return telemetry::testing::SpawnProcess(
      {INGEST_GATEWAY_PATH, "--plaintext", "--device_auth=false",
       absl::StrCat("--database_url=", db), absl::StrCat("--redis_url=", Redis().Url()),
       absl::StrCat("--listen=127.0.0.1:", port), "--metrics_listen=off"},
      log);
}

bool Serving(int port) {
  auto channel = grpc::CreateChannel(absl::StrCat("127.0.0.1:", port),
                                     grpc::InsecureChannelCredentials());
  return channel->WaitForConnected(std::chrono::system_clock::now() +
                                   std::chrono::milliseconds(200));
}

TEST(FaultTest, GatewayKilledWithSigkillAndRestartedClientRetriesExactlyOnce) {
  const std::string db = MigratedDatabase();
  const int port = telemetry::testing::FreeLoopbackPort();
  const std::string log = absl::StrCat(::testing::TempDir(), "/gateway-k9.log");
  pid_t gateway = StartGatewayBinary(db, port, log);
  ASSERT_GT(gateway, 0);
  ASSERT_TRUE(PollUntil([&] { return Serving(port); }));

  client::BatchStream stream(FastReconnectChannel(port), PatientStream());
  std::thread producer([&] {
    for (int b = 0; b < Load::kBatches; ++b) {
      (void)stream.Send(MakeBatch(absl::StrCat("k9gw-", b), absl::StrCat("g", b % 5),
                                  b * Load::kPerBatch, Load::kPerBatch));
    }
  });
  ASSERT_TRUE(PollUntil([&] { return Count(db) >= 5'000; }));
  ASSERT_EQ(kill(gateway, SIGKILL), 0);
  EXPECT_EQ(telemetry::testing::WaitForExit(gateway, absl::Seconds(30)), 128 + SIGKILL);
  // Batches the dead gateway had claimed in Redis but not committed are
  // resent; the new gateway sees the stale claim and falls back to the
  // primary key.
  gateway = StartGatewayBinary(db, port, log);
  ASSERT_GT(gateway, 0);
  producer.join();
  auto stats = stream.Close(absl::Seconds(120));
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_TRUE(stats->failed.empty());
  EXPECT_GT(stats->reconnects, 0u);
  EXPECT_EQ(stats->accepted + stats->duplicates,
            static_cast<uint64_t>(Load::kBatches * Load::kPerBatch));
  EXPECT_EQ(Count(db), Load::kBatches * Load::kPerBatch);
  kill(gateway, SIGTERM);
  EXPECT_EQ(telemetry::testing::WaitForExit(gateway, absl::Seconds(30)), 0);
}

TEST(FaultTest, ReadOnlyDatabaseGetsClearRetryableErrorsAndNothingFalselyAcked) {
  const std::string db = MigratedDatabase();
  const std::string dbname = db.substr(db.find("dbname=") + 7, db.find(' ', db.find("dbname=")) -
                                                                  db.find("dbname=") - 7);
  ingest::IngestServerOptions o;
  o.listen_address = "127.0.0.1:0";
  o.metrics_address = "127.0.0.1:0";
  o.database_url = db;
  o.redis_url = Redis().Url();
  o.transport.plaintext = true;  // loopback
  o.require_device_auth = false;
  auto server = ingest::IngestServer::Start(o);
  ASSERT_TRUE(server.ok()) << server.status();
  auto metric = [&](const std::string& series) {
    auto body = telemetry::testing::HttpGet((*server)->metrics_port(), "/metrics");
    return body.ok() ? telemetry::testing::MetricValue(*body, series) : -1;
  };
  auto channel = FastReconnectChannel((*server)->port());
  auto stub = v1::IngestService::NewStub(channel);

  // Read-only, as after a failover onto a standby or an operator's switch;
  // the gateway's sessions are dropped so they reconnect into it.
  const std::string admin = Pg().ConnInfo("postgres");
  QueryScalar(admin, absl::StrCat("ALTER DATABASE ", dbname,
                                  " SET default_transaction_read_only = on"));
  QueryScalar(admin, absl::StrCat("SELECT count(pg_terminate_backend(pid)) FROM "
                                  "pg_stat_activity WHERE datname = '", dbname, "'"));
  grpc::Status status;
  v1::BatchAck ack;
  ASSERT_TRUE(PollUntil([&] {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    ack.Clear();
    status = stub->WriteBatch(&ctx, MakeBatch("ro-1", "ro", 0, 100), &ack);
    return !status.ok() && status.error_message().find("read-only") != std::string::npos;
  })) << status.error_message();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE) << status.error_message();
  EXPECT_EQ(Count(db), 0);

  // The client library keeps the batches until the database takes writes.
  const double failed_before = metric("telemetry_ingest_batches_total{outcome=\"failed\"}");
  // As many batches as the stream keeps in flight (Send blocks beyond that
  // while nothing is acknowledged).
  client::BatchStream stream(channel, PatientStream());
  for (int b = 0; b < 8; ++b) {
    ASSERT_TRUE(stream.Send(MakeBatch(absl::StrCat("ro-s", b), "ro", 1000 + b * 100, 100)).ok());
  }
  // Every batch refused at least once (and retried) before writes return.
  ASSERT_TRUE(PollUntil([&] {
    return metric("telemetry_ingest_batches_total{outcome=\"failed\"}") >= failed_before + 8;
  }));
  EXPECT_EQ(Count(db), 0);
  QueryScalar(admin, absl::StrCat("ALTER DATABASE ", dbname,
                                  " SET default_transaction_read_only = off"));
  QueryScalar(admin, absl::StrCat("SELECT count(pg_terminate_backend(pid)) FROM "
                                  "pg_stat_activity WHERE datname = '", dbname,
                                  "' AND pid <> pg_backend_pid()"));
  auto stats = stream.Close(absl::Seconds(120));
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_TRUE(stats->failed.empty());
  EXPECT_EQ(stats->accepted, 800u);
  // The refused unary batch, resent, lands once.
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  ASSERT_TRUE(stub->WriteBatch(&ctx, MakeBatch("ro-1", "ro", 0, 100), &ack).ok());
  EXPECT_EQ(ack.accepted(), 100u);
  EXPECT_EQ(Count(db), 900);
  (*server)->Shutdown(absl::Seconds(5));
}

TEST(FaultTest, DeviceStartedBeforeTheGatewayDeliversOnceItComesUp) {
  // The way a device opens its channel (client::OpenChannel, gRPC's default
  // reconnect backoff), not a test-tuned one.
  const std::string db = MigratedDatabase();
  const int port = telemetry::testing::FreeLoopbackPort();
  auto channel = client::OpenChannel(absl::StrCat("127.0.0.1:", port), {.plaintext = true});
  ASSERT_TRUE(channel.ok());
  client::BatchStream stream(*channel, {});
  for (int b = 0; b < 4; ++b) {
    ASSERT_TRUE(stream.Send(MakeBatch(absl::StrCat("early-", b), "early", b * 10, 10)).ok());
  }
  // Nothing listens yet: let the stream fail a few times over.
  absl::SleepFor(absl::Seconds(3));  // the outage's length, not a synchronisation
  const std::string log = absl::StrCat(::testing::TempDir(), "/gateway-late.log");
  pid_t gateway = StartGatewayBinary(db, port, log);
  ASSERT_GT(gateway, 0);
  const absl::Time up = absl::Now();
  auto stats = stream.Close(absl::Seconds(60));
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(stats->accepted, 40u);
  EXPECT_EQ(Count(db), 40);
  std::printf("delivered %s after the gateway started\n",
              absl::FormatDuration(absl::Now() - up).c_str());
  kill(gateway, SIGTERM);
  EXPECT_EQ(telemetry::testing::WaitForExit(gateway, absl::Seconds(30)), 0);
}

}  // namespace
}  // namespace telemetry
