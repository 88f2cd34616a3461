// The system beyond one machine, on the engines operators run: PostgreSQL
// managed by Patroni (a 3-member etcd, a primary and a synchronous
// standby), Redis with a replica and 3 Sentinels, and three ingest-gateway
// processes that a fleet of devices reaches through one round_robin
// channel (client::OpenChannel with the three addresses).
//
// Each scenario streams a fleet of devices with retries, breaks something
// mid-stream, and ends with: every device's client finished, every sent
// reading acknowledged, and the database holding exactly the readings sent
// (none lost, none twice). Scenarios run in one binary, in order, on one
// cluster; each leaves it healthy for the next.
#include <gtest/gtest.h>

#include <grpcpp/grpcpp.h>
#include <signal.h>

#include <algorithm>
#include <cstdio>
#include <deque>
#include <fstream>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "telemetry/v1/ingest.grpc.pb.h"
#include "client/channel.h"
#include "client/telemetry_client.h"
#include "storage/local/http_get.h"
#include "storage/local/local_servers.h"
#include "storage/local/patroni_cluster.h"
#include "storage/pg/connection.h"
#include "storage/util/mutex.h"
#include "tests/support/health_check.h"
#include "tests/support/reading_builders.h"

namespace telemetry {
namespace {

using local::PollUntil;
using telemetry::testing::IndexedBatch;

constexpr int kGateways = 3;
constexpr int kDevices = 6;
constexpr int kBatchesPerDevice = 30;
constexpr int kPerBatch = 250;
constexpr int kSentPerScenario = kDevices * kBatchesPerDevice * kPerBatch;
const char kMasterName[] = "telemetry-dedupe";

// The first column of the first row ("" for none or NULL), or nullopt when
// the query failed: during a failover that is an answer, not a test failure.
std::optional<std::string> TryQuery(const std::string& conninfo, const std::string& sql) {
  auto conn = pg::Connection::Open(conninfo);
  if (!conn.ok()) return std::nullopt;
  auto r = (*conn)->Query(sql);
  if (!r.ok()) return std::nullopt;
  if (r->rows() == 0 || r->IsNull(0, 0)) return std::string();
  return std::string(r->Get(0, 0));
}

// The whole cluster, started once for the binary.
class Cluster {
 public:
  static Cluster& Get() {
    static Cluster* cluster = new Cluster();  // lives until exit, stopped by the environment
    return *cluster;
  }

  absl::Status Start() {
    auto etcd = local::EtcdCluster::Start(3);
    if (!etcd.ok()) return etcd.status();
    etcd_ = std::move(*etcd);
    auto pg = local::PatroniCluster::Start(*etcd_, {.members = 2, .synchronous = true});
    if (!pg.ok()) return pg.status();
    pg_ = std::move(*pg);
    auto redis = local::RedisServer::Start();
    if (!redis.ok()) return redis.status();
    redis_primary_ = std::move(*redis);
    auto replica = local::RedisServer::Start({.replica_of_port = redis_primary_->port()});
    if (!replica.ok()) return replica.status();
    redis_replica_ = std::move(*replica);
    std::vector<std::string> sentinels;
    for (int i = 0; i < 3; ++i) {
      auto s = local::RedisSentinel::Start(kMasterName, redis_primary_->port(), /*quorum=*/2);
      if (!s.ok()) return s.status();
      sentinels.push_back(absl::StrCat("127.0.0.1:", (*s)->port()));
      sentinels_.push_back(std::move(*s));
    }
    sentinel_list_ = absl::StrJoin(sentinels, ",");
    // The schema, through the leader.
    const int leader = pg_->Leader();
    if (leader < 0) return absl::UnavailableError("no leader");
    if (!TryQuery(pg_->ConnInfo(leader), "CREATE DATABASE telemetry").has_value()) {
      return absl::InternalError("CREATE DATABASE failed");
    }
    const absl::Status migrated = local::MigrateDatabase(pg_->ConnInfo(leader, "telemetry"));
    if (!migrated.ok()) return migrated;
    log_dir_ = ::testing::TempDir();
    for (int i = 0; i < kGateways; ++i) {
      ports_.push_back(local::FreeLoopbackPort());
      metrics_ports_.push_back(local::FreeLoopbackPort());
      pids_.push_back(-1);
      if (absl::Status st = StartGateway(i); !st.ok()) return st;
    }
    return absl::OkStatus();
  }

  void Stop() {
    for (pid_t& pid : pids_) (void)local::StopProcess(&pid, SIGTERM, absl::Seconds(20));
    sentinels_.clear();
    redis_replica_.reset();
    redis_primary_.reset();
    pg_.reset();
    etcd_.reset();
  }

  local::PatroniCluster& pg() { return *pg_; }
  std::string Database() const { return pg_->WritableConnInfo("telemetry"); }
  std::string Targets() const {
    std::vector<std::string> t;
    for (int port : ports_) t.push_back(absl::StrCat("127.0.0.1:", port));
    return absl::StrJoin(t, ",");
  }
  std::unique_ptr<local::RedisServer>& redis_primary() { return redis_primary_; }
  std::unique_ptr<local::RedisServer>& redis_replica() { return redis_replica_; }

  absl::Status StartGateway(int i) {
    pids_[i] = local::SpawnProcess(
        {INGEST_GATEWAY_PATH, "--plaintext", "--device_auth=false",
         absl::StrCat("--database_url=", Database()),
         absl::StrCat("--redis_sentinels=", sentinel_list_),
         absl::StrCat("--redis_master_name=", kMasterName),
         absl::StrCat("--listen=127.0.0.1:", ports_[i]),
         absl::StrCat("--metrics_listen=127.0.0.1:", metrics_ports_[i]), "--shutdown_grace=5s"},
        absl::StrCat(log_dir_, "/gateway-", i, ".log"));
    if (pids_[i] < 0) return absl::InternalError("fork failed");
    if (!PollUntil([&] { return Ready(i); }, absl::Seconds(60), absl::Milliseconds(100))) {
      return absl::UnavailableError(absl::StrCat("gateway ", i, " never became ready"));
    }
    return absl::OkStatus();
  }
  // SIGKILL: a crash; nothing drains.
  void KillGateway(int i) { (void)local::StopProcess(&pids_[i], SIGKILL, absl::Seconds(10)); }
  // SIGTERM: a drain, as a rolling restart does.
  void StopGateway(int i) { (void)local::StopProcess(&pids_[i], SIGTERM, absl::Seconds(30)); }

  bool Ready(int i) const {
    auto channel = grpc::CreateChannel(absl::StrCat("127.0.0.1:", ports_[i]),
                                       grpc::InsecureChannelCredentials());
    return telemetry::testing::HealthStatus(channel, "telemetry.v1.IngestService") ==
           telemetry::testing::kHealthServing;
  }
  // Whether gateway i's last dedupe operation reached Redis: one probe
  // batch of its own (sensor "<tag>-probe"), then telemetry_redis_up.
  bool RedisUpAfterProbe(int i, const std::string& tag) {
    auto stub = v1::IngestService::NewStub(grpc::CreateChannel(
        absl::StrCat("127.0.0.1:", ports_[i]), grpc::InsecureChannelCredentials()));
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    v1::BatchAck ack;
    const int n = probes_++;
    if (!stub->WriteBatch(&ctx, IndexedBatch(absl::StrCat(tag, "-probe-", n),
                                             absl::StrCat(tag, "-probe"), n, 1),
                          &ack)
             .ok()) {
      return false;
    }
    absl::StatusOr<std::string> metrics = local::HttpGet(metrics_ports_[i], "/metrics");
    return metrics.ok() && local::MetricValue(*metrics, "telemetry_redis_up") == 1;
  }
  // Streams open on gateway i now (telemetry_ingest_active_streams), or -1.
  double ActiveStreams(int i) const {
    absl::StatusOr<std::string> metrics = local::HttpGet(metrics_ports_[i], "/metrics");
    return metrics.ok() ? local::MetricValue(*metrics, "telemetry_ingest_active_streams") : -1;
  }
  // The Redis primary's port as the first Sentinel names it, or -1.
  int SentinelsPrimaryPort() const {
    absl::StatusOr<int> port = sentinels_[0]->MasterPort(kMasterName);
    return port.ok() ? *port : -1;
  }

 private:
  Cluster() = default;

  std::unique_ptr<local::EtcdCluster> etcd_;
  std::unique_ptr<local::PatroniCluster> pg_;
  std::unique_ptr<local::RedisServer> redis_primary_, redis_replica_;
  std::vector<std::unique_ptr<local::RedisSentinel>> sentinels_;
  std::string sentinel_list_;
  std::string log_dir_;
  std::vector<int> ports_, metrics_ports_;
  std::vector<pid_t> pids_;
  int probes_ = 0;
};

class ClusterEnvironment : public ::testing::Environment {
 public:
  void SetUp() override {
    const absl::Status started = Cluster::Get().Start();
    ASSERT_TRUE(started.ok()) << started;
  }
  void TearDown() override { Cluster::Get().Stop(); }
};
// Registered before main (integration_main) adds its own single servers.
::testing::Environment* const kClusterEnvironment =
    ::testing::AddGlobalTestEnvironment(new ClusterEnvironment());

struct FleetResult {
  bool clients_finished = true;
  uint64_t acknowledged = 0;  // accepted + duplicates, over every device
  uint64_t resends = 0;
  uint64_t reconnects = 0;  // new streams the devices had to open
  int64_t stored = -1;    // rows of this scenario in the database
  int64_t distinct = -1;  // distinct (sensor, time) among them
};

// kDevices devices, each a BatchStream on the shared round_robin channel,
// send kBatchesPerDevice batches. `fault` runs once the database holds a
// quarter of the fleet's readings; the devices send their second half only
// after it returned, so the fault always lands mid-stream.
FleetResult RunFleet(const std::string& tag, const std::function<void()>& fault) {
  FleetResult result;
  client::ChannelOptions plaintext;
  plaintext.plaintext = true;
  auto channel = client::OpenChannel(Cluster::Get().Targets(), plaintext);
  EXPECT_TRUE(channel.ok()) << channel.status();
  if (!channel.ok()) return result;
  client::StreamOptions so;
  so.retry.max_backoff = absl::Milliseconds(500);
  so.ack_timeout = absl::Seconds(10);
  std::vector<std::unique_ptr<client::BatchStream>> streams;
  for (int d = 0; d < kDevices; ++d) {
    streams.push_back(std::make_unique<client::BatchStream>(*channel, so));
  }
  Notification fault_done;
  std::vector<std::thread> devices;
  for (int d = 0; d < kDevices; ++d) {
    devices.emplace_back([&, d] {
      for (int b = 0; b < kBatchesPerDevice; ++b) {
        if (b == kBatchesPerDevice / 2) {
          (void)fault_done.WaitForNotificationWithTimeout(absl::Seconds(150));
        }
        (void)streams[d]->Send(IndexedBatch(absl::StrCat(tag, "-d", d, "-b", b),
                                            absl::StrCat(tag, "-dev", d), b * kPerBatch,
                                            kPerBatch));
      }
    });
  }
  // No ASSERT while the devices run: they are joined whatever happens.
  const std::string database = Cluster::Get().Database();
  const std::string count_sql = absl::StrCat(
      "SELECT count(*) FROM sensor_readings WHERE sensor_id LIKE '", tag, "-dev%'");
  auto stored = [&]() -> int64_t {
    const std::optional<std::string> n = TryQuery(database, count_sql);
    return n.has_value() && !n->empty() ? std::stoll(*n) : -1;
  };
  EXPECT_TRUE(PollUntil([&] { return stored() >= kSentPerScenario / 4; }, absl::Seconds(90),
                        absl::Milliseconds(100)))
      << "the fleet never got a quarter in";
  fault();
  fault_done.Notify();
  for (std::thread& t : devices) t.join();
  // One deadline for every device's last acks, not one each.
  const absl::Time close_by = absl::Now() + absl::Seconds(90);
  for (auto& stream : streams) {
    absl::StatusOr<client::StreamStats> stats =
        stream->Close(std::max(close_by - absl::Now(), absl::ZeroDuration()));
    EXPECT_TRUE(stats.ok()) << stats.status();
    if (!stats.ok()) {
      result.clients_finished = false;
      continue;
    }
    result.clients_finished = result.clients_finished && stats->failed.empty();
    result.acknowledged += stats->accepted + stats->duplicates;
    result.resends += stats->resends;
    result.reconnects += stats->reconnects;
  }
  // The database may still be settling after a fault: poll for an answer.
  EXPECT_TRUE(PollUntil([&] { return (result.stored = stored()) >= 0; }, absl::Seconds(60),
                        absl::Milliseconds(200)));
  const std::optional<std::string> distinct = TryQuery(
      database, absl::StrCat("SELECT count(DISTINCT (sensor_id, \"timestamp\")) "
                             "FROM sensor_readings WHERE sensor_id LIKE '", tag, "-dev%'"));
  result.distinct = distinct.has_value() && !distinct->empty() ? std::stoll(*distinct) : -1;
  return result;
}

// The last `lines` lines of a log file.
std::string Tail(const std::string& path, size_t lines) {
  std::ifstream in(path);
  std::deque<std::string> last;
  for (std::string line; std::getline(in, line);) {
    last.push_back(line);
    if (last.size() > lines) last.pop_front();
  }
  return absl::StrJoin(last, "\n");
}

void ExpectExactlyOnce(const FleetResult& r, const char* scenario) {
  EXPECT_TRUE(r.clients_finished) << scenario;
  EXPECT_EQ(r.acknowledged, static_cast<uint64_t>(kSentPerScenario)) << scenario;
  EXPECT_EQ(r.stored, kSentPerScenario) << scenario << ": lost or duplicated readings";
  EXPECT_EQ(r.distinct, r.stored) << scenario << ": duplicates";
  std::printf("%s: sent %d, acked %llu, stored %lld, distinct %lld, resent batches %llu, "
              "new streams %llu\n",
              scenario, kSentPerScenario, static_cast<unsigned long long>(r.acknowledged),
              static_cast<long long>(r.stored), static_cast<long long>(r.distinct),
              static_cast<unsigned long long>(r.resends),
              static_cast<unsigned long long>(r.reconnects));
}

TEST(ClusterTest, GatewayKilledStreamsMoveToTheOthers) {
  Cluster& c = Cluster::Get();
  int killed = -1;
  const FleetResult r = RunFleet("gwkill", [&] {
    // The gateway carrying the most streams, so that the kill hits some.
    double most = 0;
    for (int i = 0; i < kGateways; ++i) {
      if (const double n = c.ActiveStreams(i); n > most) {
        most = n;
        killed = i;
      }
    }
    EXPECT_GE(killed, 0) << "no gateway carries a stream";
    if (killed >= 0) c.KillGateway(killed);
  });
  ExpectExactlyOnce(r, "kill -9 of one gateway of three");
  EXPECT_GT(r.reconnects, 0u) << "the kill interrupted no stream";
  if (killed >= 0) {
    EXPECT_TRUE(c.StartGateway(killed).ok());
  }
}

TEST(ClusterTest, RedisPrimaryKilledSentinelPromotesAndGatewaysFollow) {
  Cluster& c = Cluster::Get();
  const int replica_port = c.redis_replica()->port();
  const FleetResult r = RunFleet("rediskill", [&] {
    EXPECT_TRUE(c.redis_primary()->Kill().ok());
    EXPECT_TRUE(PollUntil([&] { return c.SentinelsPrimaryPort() == replica_port; },
                          absl::Seconds(60)))
        << "Sentinel did not promote the replica";
  });
  ExpectExactlyOnce(r, "Redis primary killed, replica promoted by Sentinel");
  // Every gateway found the promoted replica by itself (its dedupe store
  // asks the sentinels again after losing its primary).
  for (int i = 0; i < kGateways; ++i) {
    EXPECT_TRUE(PollUntil([&] { return c.RedisUpAfterProbe(i, "rediskill"); },
                          absl::Seconds(30), absl::Milliseconds(200)))
        << "gateway " << i << " did not reach the promoted Redis";
  }
  // The old primary comes back; the sentinels make it the new primary's
  // replica, so the cluster has one again for what follows.
  EXPECT_TRUE(c.redis_primary()->Restart().ok());
}

TEST(ClusterTest, PostgresPrimaryKilledPatroniPromotesTheSynchronousStandby) {
  Cluster& c = Cluster::Get();
  const int old_leader = c.pg().Leader();
  ASSERT_GE(old_leader, 0);
  int new_leader = -1;
  const FleetResult r = RunFleet("pgkill", [&] {
    EXPECT_TRUE(c.pg().Kill(old_leader).ok());
    absl::StatusOr<int> leader = c.pg().AwaitHealthy(/*not_member=*/old_leader);
    EXPECT_TRUE(leader.ok()) << leader.status();
    new_leader = leader.ok() ? *leader : -1;
  });
  ExpectExactlyOnce(r, "PostgreSQL primary killed, synchronous standby promoted by Patroni");
  EXPECT_GE(new_leader, 0) << "no new leader";
  // The old primary rejoins as a standby (pg_rewind) for the next scenario.
  EXPECT_TRUE(c.pg().Restart(old_leader).ok());
  absl::StatusOr<int> healthy = c.pg().AwaitHealthy();
  EXPECT_TRUE(healthy.ok()) << healthy.status();
}

TEST(ClusterTest, SwitchoverAndRollingRestartUnderLoad) {
  Cluster& c = Cluster::Get();
  const int old_leader = c.pg().Leader();
  ASSERT_GE(old_leader, 0);
  const FleetResult r = RunFleet("switchover", [&] {
    const absl::Status switched = c.pg().Switchover(1 - old_leader);
    EXPECT_TRUE(switched.ok()) << switched;
    // Every gateway in turn: drained (SIGTERM), started again, ready.
    for (int i = 0; i < kGateways; ++i) {
      c.StopGateway(i);
      EXPECT_TRUE(c.StartGateway(i).ok()) << "gateway " << i;
    }
  });
  ExpectExactlyOnce(r, "patronictl switchover, then a rolling restart of the gateways");
  absl::StatusOr<int> healthy = c.pg().AwaitHealthy();
  EXPECT_TRUE(healthy.ok()) << healthy.status();
  if (healthy.ok()) {
    EXPECT_EQ(*healthy, 1 - old_leader);
  }
}

TEST(ClusterTest, FrozenPrimaryIsReplacedAndNeverActsAsASecondPrimary) {
  Cluster& c = Cluster::Get();
  const int old_leader = c.pg().Leader();
  ASSERT_GE(old_leader, 0);
  using WriteOutcome = local::PatroniCluster::WriteOutcome;
  WriteOutcome deposed_write = WriteOutcome::kNotConnected;
  const std::string marker = absl::StrCat("after-thaw-", absl::ToUnixMicros(absl::Now()));
  const FleetResult r = RunFleet("freeze", [&] {
    // Longer than the leader key's 10 s lifetime: the standby takes over
    // while the old primary's processes still exist, unable to run.
    const absl::Status frozen = c.pg().Freeze(old_leader);
    EXPECT_TRUE(frozen.ok()) << frozen;
    absl::StatusOr<int> leader = c.pg().AwaitHealthy(/*not_member=*/old_leader);
    EXPECT_TRUE(leader.ok()) << leader.status();
    EXPECT_TRUE(c.pg().Thaw(old_leader).ok());
    // Woken, it still believes it leads until its Patroni notices, and
    // takes a write sent straight to it. Its commit waits for the
    // synchronous standby, which is now the primary and streams from
    // nobody: it must never be acknowledged, unless it reached the new
    // primary all the same.
    deposed_write = c.pg().WriteDirectly(old_leader, marker, absl::Seconds(5));
  });
  ExpectExactlyOnce(r, "primary frozen (SIGSTOP) past the leader lifetime, then thawed");
  // Patroni demotes it and it rejoins as a standby.
  absl::StatusOr<int> healthy = c.pg().AwaitHealthy();
  ASSERT_TRUE(healthy.ok()) << healthy.status();
  EXPECT_NE(*healthy, old_leader);
  absl::StatusOr<bool> survived = c.pg().HasWrite(*healthy, marker);
  ASSERT_TRUE(survived.ok()) << survived.status();
  if (deposed_write == WriteOutcome::kAcknowledged) {
    EXPECT_TRUE(*survived) << "split brain: the deposed primary acknowledged a write the new "
                              "primary does not have; its log:\n"
                           << Tail(c.pg().log_path(old_leader), 60);
  }
  std::printf("deposed primary, a write straight to it after the thaw: %s; %s on the new "
              "primary\n",
              local::PatroniCluster::WriteOutcomeName(deposed_write),
              *survived ? "present" : "absent");
}

// Scenario 3 again with asynchronous replication, as a measurement: an
// acknowledged batch whose WAL had not reached the standby is lost with
// the primary (the device will not resend what was acknowledged). It is
// why the cluster runs synchronous_mode; the count is printed, not
// asserted, except that nothing is stored twice.
TEST(ClusterTest, AsynchronousReplicationReportsWhatAFailoverLost) {
  Cluster& c = Cluster::Get();
  ASSERT_TRUE(c.pg().SetSynchronous(false).ok());
  const int old_leader = c.pg().Leader();
  ASSERT_GE(old_leader, 0);
  const FleetResult r = RunFleet("asynckill", [&] {
    EXPECT_TRUE(c.pg().Kill(old_leader).ok());
    absl::StatusOr<int> leader = c.pg().AwaitHealthy(/*not_member=*/old_leader);
    EXPECT_TRUE(leader.ok()) << leader.status();
  });
  EXPECT_TRUE(r.clients_finished);
  EXPECT_EQ(r.acknowledged, static_cast<uint64_t>(kSentPerScenario));
  EXPECT_LE(r.stored, kSentPerScenario);
  EXPECT_EQ(r.distinct, r.stored) << "duplicates";
  std::printf("asynchronous standby, primary killed: sent %d, acked %llu, stored %lld, "
              "acked but lost %lld\n",
              kSentPerScenario, static_cast<unsigned long long>(r.acknowledged),
              static_cast<long long>(r.stored),
              static_cast<long long>(static_cast<int64_t>(r.acknowledged) - r.stored));
  // Back to the cluster's default, the old primary rewound into a standby.
  EXPECT_TRUE(c.pg().Restart(old_leader).ok());
  EXPECT_TRUE(c.pg().SetSynchronous(true).ok());
}

}  // namespace
}  // namespace telemetry

