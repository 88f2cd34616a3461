// PostgreSQL failover under a streaming device: a primary and a streaming
// standby (real servers on loopback), the gateway connected with a
// multi-host connection string (target_session_attrs=read-write). The
// primary is killed with SIGKILL mid-stream and the standby promoted; the
// gateway must go not-ready while no server takes writes, find the new
// primary by itself, and the client library's retries must end with every
// reading stored exactly once.
//
// With synchronous replication an acknowledged batch is on both servers,
// so nothing acked may be missing after the failover. With asynchronous
// replication an acked batch can be lost with the primary (the client does
// not resend what was acknowledged): that run reports the count it lost,
// which is why the cluster default is synchronous.
#include <gtest/gtest.h>

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "client/telemetry_client.h"
#include "server/ingest/ingest_server.h"
#include "storage/local/local_servers.h"
#include "storage/util/mutex.h"
#include "tests/support/fast_reconnect_channel.h"
#include "tests/support/health_check.h"
#include "tests/support/loopback_gateway.h"
#include "tests/support/reading_builders.h"
#include "tests/support/servers_environment.h"

namespace telemetry {
namespace {

using local::PollUntil;
using local::PostgresServer;
using telemetry::testing::IndexedBatch;
using telemetry::testing::QueryScalar;

constexpr int kBatches = 80, kPerBatch = 500;

using telemetry::testing::FastReconnectChannel;

struct FailoverResult {
  int64_t stored = 0;        // rows on the new primary
  uint64_t acknowledged = 0;  // readings the client saw acked (accepted + duplicates)
  bool client_finished = false;
};

// Primary + standby (synchronous or not), the gateway on both, a stream of
// kBatches batches, the primary killed once 5,000 rows are in, the standby
// promoted.
FailoverResult RunFailover(bool synchronous) {
  FailoverResult result;
  PostgresServer::Options durable;
  durable.durable = true;  // a crash here is a crash: the WAL must be real
  auto primary = PostgresServer::Start(durable);
  EXPECT_TRUE(primary.ok()) << primary.status();
  if (!primary.ok()) return result;
  auto dbname = local::CreateMigratedDatabase(**primary);
  EXPECT_TRUE(dbname.ok()) << dbname.status();
  if (!dbname.ok()) return result;
  PostgresServer::Options standby_options = durable;
  standby_options.standby_of_port = (*primary)->port();
  auto standby = PostgresServer::Start(standby_options);
  EXPECT_TRUE(standby.ok()) << standby.status();
  if (!standby.ok()) return result;
  const std::string primary_db = (*primary)->ConnInfo(*dbname);
  if (synchronous) {
    QueryScalar((*primary)->ConnInfo(), "ALTER SYSTEM SET synchronous_standby_names = '*'");
    QueryScalar((*primary)->ConnInfo(), "SELECT pg_reload_conf()");
  }
  const std::string want_state = synchronous ? "sync" : "async";
  EXPECT_TRUE(PollUntil([&] {
    return QueryScalar((*primary)->ConnInfo(),
                       "SELECT string_agg(sync_state, ',') FROM pg_stat_replication") ==
           want_state;
  })) << "the standby never streamed as " << want_state;

  // Both servers; libpq picks the one that takes writes.
  const std::string both = absl::StrCat(
      "host=127.0.0.1,127.0.0.1 port=", (*primary)->port(), ",", (*standby)->port(),
      " user=postgres dbname=", *dbname, " connect_timeout=2 target_session_attrs=read-write");
  ingest::IngestServerOptions o = telemetry::testing::LoopbackGateway(both);
  o.readiness_interval = absl::Milliseconds(100);
  auto server = ingest::IngestServer::Start(o);
  EXPECT_TRUE(server.ok()) << server.status();
  if (!server.ok()) return result;

  client::StreamOptions so;
  so.retry.max_backoff = absl::Milliseconds(500);
  so.ack_timeout = absl::Seconds(10);
  client::BatchStream stream(FastReconnectChannel((*server)->port()), so);
  // Keys of this run only (the binary's Redis remembers committed keys).
  const std::string tag = absl::StrCat(synchronous ? "sync-" : "async-",
                                       absl::ToUnixMicros(absl::Now()));
  // The second half is sent only once the primary is dead, so that the
  // failover happens mid-stream whatever the speed of the machine.
  Notification killed;
  std::thread producer([&] {
    for (int b = 0; b < kBatches; ++b) {
      if (b == kBatches / 2) (void)killed.WaitForNotificationWithTimeout(absl::Seconds(120));
      (void)stream.Send(IndexedBatch(absl::StrCat("failover-", tag, "-", b),
                                     absl::StrCat("s", b % 5), b * kPerBatch, kPerBatch));
    }
  });
  // No ASSERT while the producer runs: it is joined whatever happens.
  auto count_on = [](const std::string& conninfo) {
    const std::string n = QueryScalar(conninfo, "SELECT count(*) FROM sensor_readings");
    return n.empty() ? int64_t{0} : std::stoll(n);
  };
  EXPECT_TRUE(PollUntil([&] { return count_on(primary_db) >= 5'000; }, absl::Seconds(60)));
  EXPECT_TRUE((*primary)->Kill().ok());
  killed.Notify();
  // No server takes writes (the standby is still one): not ready.
  auto health_channel = grpc::CreateChannel(absl::StrCat("127.0.0.1:", (*server)->port()),
                                            grpc::InsecureChannelCredentials());
  auto readiness = [&] {
    return telemetry::testing::HealthStatus(health_channel, "telemetry.v1.IngestService");
  };
  EXPECT_TRUE(PollUntil([&] { return readiness() == telemetry::testing::kHealthNotServing; },
                        absl::Seconds(30)));
  const absl::Status promoted = (*standby)->Promote();
  EXPECT_TRUE(PollUntil([&] { return readiness() == telemetry::testing::kHealthServing; },
                        absl::Seconds(30)))
      << "not ready again after the promotion";
  EXPECT_TRUE(promoted.ok()) << promoted;
  producer.join();
  auto stats = stream.Close(absl::Seconds(120));
  EXPECT_TRUE(stats.ok()) << stats.status();
  if (stats.ok()) {
    result.client_finished = stats->failed.empty();
    result.acknowledged = stats->accepted + stats->duplicates;
  }
  const std::string new_primary = (*standby)->ConnInfo(*dbname);
  result.stored = count_on(new_primary);
  (*server)->Shutdown(absl::Seconds(5));
  return result;
}

TEST(PostgresFailoverTest, SynchronousStandbyPromotedAfterKillLosesNoAckedReading) {
  const FailoverResult r = RunFailover(/*synchronous=*/true);
  EXPECT_TRUE(r.client_finished);
  EXPECT_EQ(r.acknowledged, static_cast<uint64_t>(kBatches * kPerBatch));
  EXPECT_EQ(r.stored, kBatches * kPerBatch);  // every acked reading is on the new primary
  std::printf("failover, synchronous standby: sent %d, acked %llu, stored %lld, lost 0 expected\n",
              kBatches * kPerBatch, static_cast<unsigned long long>(r.acknowledged),
              static_cast<long long>(r.stored));
}

TEST(PostgresFailoverTest, AsynchronousStandbyReportsWhatAFailoverLost) {
  const FailoverResult r = RunFailover(/*synchronous=*/false);
  // A measurement: whatever was lost, the client finished and every
  // batch was answered.
  EXPECT_TRUE(r.client_finished);
  EXPECT_EQ(r.acknowledged, static_cast<uint64_t>(kBatches * kPerBatch));
  const int64_t acked = static_cast<int64_t>(r.acknowledged);
  std::printf("failover, asynchronous standby: sent %d, acked %lld, stored %lld, "
              "acked but lost %lld\n",
              kBatches * kPerBatch, static_cast<long long>(acked),
              static_cast<long long>(r.stored),
              static_cast<long long>(std::max<int64_t>(0, acked - r.stored)));
}

}  // namespace
}  // namespace telemetry
