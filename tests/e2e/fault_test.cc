// Faults with real processes on loopback (ctest label "fault"): PostgreSQL
// killed with SIGKILL mid-stream, the gateway binary killed with SIGKILL
// mid-stream and restarted, the database turned read-only under load. In
// each case the client library keeps retrying, and afterwards the table holds
// exactly the distinct readings sent: nothing lost, nothing twice.
#include <gtest/gtest.h>

#include <grpcpp/grpcpp.h>
#include <pwd.h>
#include <signal.h>
#include <sys/mount.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include <thread>

#include "absl/strings/str_cat.h"
#include "client/channel.h"
#include "client/telemetry_client.h"
#include "server/ingest/ingest_server.h"
#include "storage/pg/connection.h"
#include "telemetry/v1/ingest.grpc.pb.h"
#include "storage/local/http_get.h"
#include "tests/support/fast_reconnect_channel.h"
#include "tests/support/health_check.h"
#include "tests/support/loopback_gateway.h"
#include "tests/support/reading_builders.h"
#include "tests/support/servers_environment.h"
#include "storage/local/local_servers.h"

// Designated initializers name only the ChannelOptions fields that matter.
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

namespace telemetry {
namespace {

using telemetry::testing::MigratedDatabase;
using telemetry::testing::Pg;
using telemetry::local::PollUntil;
using telemetry::testing::QueryScalar;
using telemetry::testing::Redis;
using telemetry::testing::IndexedBatch;
namespace v1 = telemetry::v1;


int64_t Count(const std::string& db) {
  return std::stoll(QueryScalar(db, "SELECT count(*) FROM sensor_readings"));
}

using telemetry::testing::FastReconnectChannel;

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

using telemetry::testing::LoopbackGateway;

// `series` on the gateway's /metrics page; -1 when absent or unreachable.
double Metric(const ingest::IngestServer& server, const std::string& series) {
  auto body = telemetry::local::HttpGet(server.metrics_port(), "/metrics");
  return body.ok() ? telemetry::local::MetricValue(*body, series) : -1;
}

TEST(FaultTest, PostgresKilledWithSigkillMidStreamLosesAndDuplicatesNothing) {
  const std::string db = MigratedDatabase();
  ingest::IngestServerOptions o = LoopbackGateway(db);
  auto server = ingest::IngestServer::Start(o);
  ASSERT_TRUE(server.ok()) << server.status();
  auto metric = [&](const std::string& series) { return Metric(**server, series); };

  client::BatchStream stream(FastReconnectChannel((*server)->port()), PatientStream());
  std::thread producer([&] {
    for (int b = 0; b < Load::kBatches; ++b) {
      (void)stream.Send(IndexedBatch(absl::StrCat("k9pg-", b), absl::StrCat("s", b % 5),
                                  b * Load::kPerBatch, Load::kPerBatch));
    }
  });
  // No ASSERT while the producer runs: it must be joined whatever happens,
  // and PostgreSQL must be up again for it to finish.
  EXPECT_TRUE(PollUntil([&] { return Count(db) >= 5'000; }));
  EXPECT_TRUE(Pg().Kill().ok());  // no shutdown checkpoint: crash recovery on start
  EXPECT_TRUE(PollUntil([&] { return metric("telemetry_postgres_errors_total") > 0; }));
  absl::Status restarted = Pg().running() ? absl::OkStatus() : Pg().Restart();
  EXPECT_TRUE(restarted.ok()) << restarted;
  producer.join();
  ASSERT_TRUE(restarted.ok());
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
  return telemetry::local::SpawnProcess(
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

TEST(FaultTest, GatewayStartedWhileTheDatabaseIsDownServesNotReadyThenRecovers) {
  using telemetry::testing::HealthStatus;
  using telemetry::testing::kHealthNotServing;
  using telemetry::testing::kHealthServing;
  const std::string db = MigratedDatabase();
  const int port = telemetry::local::FreeLoopbackPort();
  const std::string log = absl::StrCat(::testing::TempDir(), "/gateway-nodb.log");
  ASSERT_TRUE(Pg().Stop().ok());
  // No ASSERT until PostgreSQL is back: later tests need it.
  pid_t gateway = StartGatewayBinary(db, port, log);
  EXPECT_GT(gateway, 0);
  auto channel = grpc::CreateChannel(absl::StrCat("127.0.0.1:", port),
                                     grpc::InsecureChannelCredentials());
  const std::string service = "telemetry.v1.IngestService";
  // It serves (a refused port would look like a crash to every device) but
  // is not ready, and refuses batches with a retryable status.
  EXPECT_TRUE(PollUntil([&] { return HealthStatus(channel, "") == kHealthServing; }))
      << "the gateway did not start without its database";
  EXPECT_EQ(HealthStatus(channel, service), kHealthNotServing);
  auto stub = v1::IngestService::NewStub(channel);
  {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    v1::BatchAck ack;
    grpc::Status st = stub->WriteBatch(&ctx, IndexedBatch("nodb-0", "nodb", 0, 10), &ack);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAVAILABLE) << st.error_message();
    EXPECT_EQ(st.error_message().find("127.0.0.1"), std::string::npos)
        << "internal detail in a device's error: " << st.error_message();
  }
  absl::Status restarted = Pg().Restart();
  ASSERT_TRUE(restarted.ok()) << restarted;
  EXPECT_TRUE(PollUntil([&] { return HealthStatus(channel, service) == kHealthServing; }))
      << "not ready after the database came up";
  grpc::Status stored;
  for (absl::Time deadline = absl::Now() + absl::Seconds(30); absl::Now() < deadline;) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    v1::BatchAck ack;
    stored = stub->WriteBatch(&ctx, IndexedBatch("nodb-0", "nodb", 0, 10), &ack);
    if (stored.ok()) break;
    absl::SleepFor(absl::Milliseconds(100));  // a device's retry pace
  }
  EXPECT_TRUE(stored.ok()) << stored.error_message();
  EXPECT_EQ(Count(db), 10);
  kill(gateway, SIGTERM);
  EXPECT_EQ(telemetry::local::WaitForExit(gateway, absl::Seconds(30)), 0);
}

TEST(FaultTest, GatewayKilledWithSigkillAndRestartedClientRetriesExactlyOnce) {
  const std::string db = MigratedDatabase();
  const int port = telemetry::local::FreeLoopbackPort();
  const std::string log = absl::StrCat(::testing::TempDir(), "/gateway-k9.log");
  pid_t gateway = StartGatewayBinary(db, port, log);
  ASSERT_GT(gateway, 0);
  ASSERT_TRUE(PollUntil([&] { return Serving(port); }));

  client::BatchStream stream(FastReconnectChannel(port), PatientStream());
  std::thread producer([&] {
    for (int b = 0; b < Load::kBatches; ++b) {
      (void)stream.Send(IndexedBatch(absl::StrCat("k9gw-", b), absl::StrCat("g", b % 5),
                                  b * Load::kPerBatch, Load::kPerBatch));
    }
  });
  // No ASSERT while the producer runs: it must be joined whatever happens.
  EXPECT_TRUE(PollUntil([&] { return Count(db) >= 5'000; }));
  EXPECT_EQ(kill(gateway, SIGKILL), 0);
  EXPECT_EQ(telemetry::local::WaitForExit(gateway, absl::Seconds(30)), 128 + SIGKILL);
  // Batches the dead gateway had claimed in Redis but not committed are
  // resent; the new gateway sees the stale claim and falls back to the
  // primary key.
  gateway = StartGatewayBinary(db, port, log);
  EXPECT_GT(gateway, 0);
  producer.join();
  ASSERT_GT(gateway, 0);
  auto stats = stream.Close(absl::Seconds(120));
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_TRUE(stats->failed.empty());
  EXPECT_GT(stats->reconnects, 0u);
  EXPECT_EQ(stats->accepted + stats->duplicates,
            static_cast<uint64_t>(Load::kBatches * Load::kPerBatch));
  EXPECT_EQ(Count(db), Load::kBatches * Load::kPerBatch);
  kill(gateway, SIGTERM);
  EXPECT_EQ(telemetry::local::WaitForExit(gateway, absl::Seconds(30)), 0);
}

TEST(FaultTest, ReadOnlyDatabaseGetsClearRetryableErrorsAndNothingFalselyAcked) {
  const std::string db = MigratedDatabase();
  const std::string dbname = db.substr(db.find("dbname=") + 7, db.find(' ', db.find("dbname=")) -
                                                                  db.find("dbname=") - 7);
  ingest::IngestServerOptions o = LoopbackGateway(db);
  auto server = ingest::IngestServer::Start(o);
  ASSERT_TRUE(server.ok()) << server.status();
  auto metric = [&](const std::string& series) { return Metric(**server, series); };
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
    status = stub->WriteBatch(&ctx, IndexedBatch("ro-1", "ro", 0, 100), &ack);
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
    ASSERT_TRUE(stream.Send(IndexedBatch(absl::StrCat("ro-s", b), "ro", 1000 + b * 100, 100)).ok());
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
  ASSERT_TRUE(stub->WriteBatch(&ctx, IndexedBatch("ro-1", "ro", 0, 100), &ack).ok());
  EXPECT_EQ(ack.accepted(), 100u);
  EXPECT_EQ(Count(db), 900);
  (*server)->Shutdown(absl::Seconds(5));
}

TEST(FaultTest, RedisUnreachableForTheWholeRunStillExactlyOnceWithTheFallbackVisible) {
  const std::string db = MigratedDatabase();
  ingest::IngestServerOptions o = LoopbackGateway(db);
  // A loopback port nothing listens on: Redis is down from the start.
  o.redis_url = absl::StrCat("redis://127.0.0.1:", telemetry::local::FreeLoopbackPort());
  auto server = ingest::IngestServer::Start(o);
  ASSERT_TRUE(server.ok()) << server.status();
  auto metric = [&](const std::string& series) { return Metric(**server, series); };
  client::BatchStream stream(FastReconnectChannel((*server)->port()), PatientStream());
  // Every batch once, and every third one again (a client retrying).
  for (int b = 0; b < 30; ++b) {
    ASSERT_TRUE(stream.Send(IndexedBatch(absl::StrCat("noredis-", b), "nr", b * 100, 100)).ok());
    if (b % 3 == 2) {
      // Resent once everything sent so far is stored: with Redis gone, only
      // the primary key can tell that it is a duplicate.
      ASSERT_TRUE(PollUntil([&] { return Count(db) >= (b + 1) * 100; }));
      client::RetryPolicy once;
      auto channel = FastReconnectChannel((*server)->port());
      auto stub = v1::IngestService::NewStub(channel);
      auto ack = client::WriteBatchWithRetry(*stub, IndexedBatch(absl::StrCat("noredis-", b - 2),
                                                              "nr", (b - 2) * 100, 100),
                                             once, absl::Now() + absl::Seconds(30));
      ASSERT_TRUE(ack.ok()) << ack.status();
      EXPECT_EQ(ack->accepted() + ack->duplicates(), 100u);
      EXPECT_EQ(ack->duplicates(), 100u);
    }
  }
  auto stats = stream.Close(absl::Seconds(60));
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_TRUE(stats->failed.empty());
  EXPECT_EQ(stats->accepted, 3000u);
  EXPECT_EQ(Count(db), 3000);
  EXPECT_EQ(metric("telemetry_redis_up"), 0);
  // Every distinct batch went through the fallback. (A resend can arrive
  // while its original is still being acknowledged: it then waits for that
  // outcome and never asks Redis, so the resends are not all counted.)
  EXPECT_GE(metric("telemetry_dedupe_db_fallback_batches_total"), 30);
  EXPECT_GT(metric("telemetry_redis_errors_total"), 0);
  (*server)->Shutdown(absl::Seconds(5));
}

// A tmpfs of `size` mounted at `dir` for the test's length (root only):
// a disk that really fills, and grows again on a remount.
class SmallDisk {
 public:
  static absl::StatusOr<std::unique_ptr<SmallDisk>> Mount(const std::string& dir,
                                                          const std::string& size) {
    if (geteuid() != 0) return absl::FailedPreconditionError("mounting needs root");
    std::filesystem::create_directories(dir);
    const std::string opts = "size=" + size + ",mode=0700";
    if (mount("tmpfs", dir.c_str(), "tmpfs", 0, opts.c_str()) != 0) {
      return absl::FailedPreconditionError(absl::StrCat("mount: ", std::strerror(errno)));
    }
    auto disk = std::unique_ptr<SmallDisk>(new SmallDisk(dir));
    struct passwd* pw = getpwnam("postgres");
    if (pw == nullptr || chown(dir.c_str(), pw->pw_uid, pw->pw_gid) != 0) {
      return absl::FailedPreconditionError("cannot give the mount to postgres");
    }
    return disk;
  }
  bool Grow(const std::string& size) {
    return mount("tmpfs", dir_.c_str(), "tmpfs", MS_REMOUNT, ("size=" + size).c_str()) == 0;
  }
  ~SmallDisk() { umount2(dir_.c_str(), MNT_DETACH); }
  const std::string& dir() const { return dir_; }

 private:
  explicit SmallDisk(std::string dir) : dir_(std::move(dir)) {}
  std::string dir_;
};

TEST(FaultTest, DiskFullGetsRetryableErrorsNothingFalselyAckedAndAllLandsOnceThereIsRoom) {
  auto disk = SmallDisk::Mount(absl::StrCat(::testing::TempDir(), "/tiny-disk-", getpid()),
                               "24m");
  if (!disk.ok()) GTEST_SKIP() << "no disk to fill here: " << disk.status();
  const std::string db = MigratedDatabase();
  const std::string dbname = db.substr(db.find("dbname=") + 7, db.find(' ', db.find("dbname=")) -
                                                                  db.find("dbname=") - 7);
  const std::string admin = Pg().ConnInfo("postgres");
  const std::string tablespace = absl::StrCat("tiny_", getpid());
  QueryScalar(admin, absl::StrCat("CREATE TABLESPACE ", tablespace, " LOCATION '",
                                  (*disk)->dir(), "'"));
  // The whole database (catalogs, readings, their indexes) moves onto the
  // small disk; WAL stays on the big one, as a DBA would lay it out.
  // ALTER DATABASE ... SET TABLESPACE needs the database to itself: the
  // migration session's backend may still be exiting. Poll.
  auto admin_conn = pg::Connection::Open(admin);
  ASSERT_TRUE(admin_conn.ok()) << admin_conn.status();
  absl::Status moved;
  ASSERT_TRUE(PollUntil([&] {
    (void)(*admin_conn)->Query(absl::StrCat(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = '",
        dbname, "'"));
    moved = (*admin_conn)->Exec(
        absl::StrCat("ALTER DATABASE ", dbname, " SET TABLESPACE ", tablespace));
    return moved.ok();
  })) << moved;
  struct DropOnExit {
    std::string admin, dbname, tablespace;
    ~DropOnExit() {
      QueryScalar(admin, absl::StrCat("DROP DATABASE IF EXISTS ", dbname, " WITH (FORCE)"));
      QueryScalar(admin, absl::StrCat("DROP TABLESPACE IF EXISTS ", tablespace));
    }
  } drop{admin, dbname, tablespace};

  ingest::IngestServerOptions o = LoopbackGateway(db);
  auto server = ingest::IngestServer::Start(o);
  ASSERT_TRUE(server.ok()) << server.status();
  auto metric = [&](const std::string& series) { return Metric(**server, series); };

  // Far more than fits: 240,000 readings (40 MiB or more with both indexes).
  constexpr int kBatches = 480, kPerBatch = 500;
  std::atomic<uint64_t> acked{0};
  client::BatchStream stream(FastReconnectChannel((*server)->port()), PatientStream(),
                             [&](const v1::BatchAck& ack) { acked += ack.accepted(); });
  std::thread producer([&] {
    for (int b = 0; b < kBatches; ++b) {
      if (!stream.Send(IndexedBatch(absl::StrCat("full-", b), absl::StrCat("f", b % 7),
                                 b * kPerBatch, kPerBatch))
               .ok()) {
        return;
      }
    }
  });
  // (No ASSERT while the producer runs: it must be joined whatever happens.)
  const bool filled = PollUntil(
      [&] { return metric("telemetry_ingest_batches_total{outcome=\"failed\"}") > 0; },
      absl::Seconds(120));
  EXPECT_TRUE(filled) << "the disk never filled";
  const uint64_t acked_when_full = acked.load();
  if (filled) {
    // Full: a clear, retryable error naming the cause...
    auto stub = v1::IngestService::NewStub(FastReconnectChannel((*server)->port()));
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    v1::BatchAck ack;
    grpc::Status st =
        stub->WriteBatch(&ctx, IndexedBatch("full-unary", "fu", 0, kPerBatch), &ack);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << st.error_message();
    EXPECT_NE(st.error_message().find("No space left on device"), std::string::npos)
        << st.error_message();
    // ...and every acknowledged reading is in the table.
    EXPECT_GE(static_cast<uint64_t>(Count(db)), acked_when_full);
    EXPECT_LT(acked_when_full, static_cast<uint64_t>(kBatches * kPerBatch));
  }

  EXPECT_TRUE((*disk)->Grow("512m"));
  producer.join();
  auto stats = stream.Close(absl::Seconds(180));
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_TRUE(stats->failed.empty());
  EXPECT_EQ(stats->accepted + stats->duplicates, static_cast<uint64_t>(kBatches * kPerBatch));
  EXPECT_EQ(Count(db), kBatches * kPerBatch);
  std::printf("disk full after %llu acknowledged readings; all %d stored once after growing\n",
              static_cast<unsigned long long>(acked_when_full), kBatches * kPerBatch);
  (*server)->Shutdown(absl::Seconds(5));
}

TEST(FaultTest, MaxConnectionAgeMovesStreamsToNewConnectionsWithoutLossOrDuplicates) {
  // What a scale-out relies on: the gateway ends old connections (GOAWAY),
  // the client library reconnects (through the balancer, to any replica)
  // and resends whatever was unacknowledged.
  const std::string db = MigratedDatabase();
  ingest::IngestServerOptions o = LoopbackGateway(db);
  o.max_connection_age = absl::Milliseconds(500);
  o.max_connection_age_grace = absl::Milliseconds(200);
  auto server = ingest::IngestServer::Start(o);
  ASSERT_TRUE(server.ok()) << server.status();
  client::BatchStream stream(FastReconnectChannel((*server)->port()), PatientStream());
  const absl::Time until = absl::Now() + absl::Seconds(3);
  int sent = 0;
  while (absl::Now() < until) {  // the load's length, bounded
    ASSERT_TRUE(stream.Send(IndexedBatch(absl::StrCat("age-", sent), "age", sent * 50, 50)).ok());
    ++sent;
    absl::SleepFor(absl::Milliseconds(10));  // pacing, not synchronisation
  }
  auto stats = stream.Close(absl::Seconds(60));
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_GT(stats->reconnects, 0u);
  EXPECT_TRUE(stats->failed.empty());
  EXPECT_EQ(stats->accepted + stats->duplicates, static_cast<uint64_t>(sent) * 50);
  EXPECT_EQ(Count(db), sent * 50);
  (*server)->Shutdown(absl::Seconds(5));
}

TEST(FaultTest, DeviceStartedBeforeTheGatewayDeliversOnceItComesUp) {
  // The way a device opens its channel (client::OpenChannel, gRPC's default
  // reconnect backoff), not a test-tuned one.
  const std::string db = MigratedDatabase();
  const int port = telemetry::local::FreeLoopbackPort();
  auto channel = client::OpenChannel(absl::StrCat("127.0.0.1:", port), {.plaintext = true});
  ASSERT_TRUE(channel.ok());
  client::BatchStream stream(*channel, {});
  for (int b = 0; b < 4; ++b) {
    ASSERT_TRUE(stream.Send(IndexedBatch(absl::StrCat("early-", b), "early", b * 10, 10)).ok());
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
  EXPECT_EQ(telemetry::local::WaitForExit(gateway, absl::Seconds(30)), 0);
}

}  // namespace
}  // namespace telemetry
