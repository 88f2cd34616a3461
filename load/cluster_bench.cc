// cluster_bench: what the cluster costs and where it ends. A Patroni
// cluster (primary + standby on a 3-member etcd), Redis, and 1, 2 and 3
// ingest-gateway processes against the same database, a loadgen fleet
// spreading its streams over them (round_robin), with the standby
// synchronous and then asynchronous, alternating by round. Per
// configuration: rows/s and ack p50/p99 (medians over the rounds), the
// synchronous/asynchronous ratio side by side, and the figures of the
// capacity model in docs/operations.md: readings per CPU-second of the
// gateways, of the primary's PostgreSQL and of the standby's, batches per
// CPU-second of Redis, and WAL bytes per reading.
//
// Everything shares this machine's cores (fleet included): the ratios
// travel, the absolute rates do not.
#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "load/bench_util.h"
#include "load/fleet_process.h"
#include "storage/local/local_servers.h"
#include "storage/local/patroni_cluster.h"
#include "storage/pg/connection.h"
#include "storage/util/mutex.h"

ABSL_FLAG(std::string, gateway_counts, "1,2,3", "gateway processes per configuration");
ABSL_FLAG(int, devices, 30, "devices (one stream each)");
ABSL_FLAG(int, batch, 500, "readings per batch");
ABSL_FLAG(int, window, 8, "unacknowledged batches per stream");
ABSL_FLAG(absl::Duration, duration, absl::Seconds(10), "per measured run");
ABSL_FLAG(int, rounds, 3, "rounds (medians); each runs every configuration once");
ABSL_FLAG(double, paced_rate, 30000,
          "readings/s of the whole fleet in the paced runs (latency below saturation); "
          "0: no paced runs");

namespace {

using telemetry::load::DieUnlessOk;
using telemetry::load::JsonNumber;
using telemetry::load::Median;

struct Sample {
  double rows_per_second = 0, p50_ms = 0, p99_ms = 0;
  double paced_p50_ms = 0, paced_p99_ms = 0;  // the paced run's
  double per_gateway_cpu = 0;  // readings per CPU-second of all gateways
  double per_primary_cpu = 0;  // readings per CPU-second of the primary's PostgreSQL
  double per_standby_cpu = 0;  // the same of the standby's
  double batches_per_redis_cpu = 0;
  double wal_bytes_per_reading = 0, wal_mib_per_second = 0;
};

std::unique_ptr<telemetry::pg::Connection> Connect(const std::string& conninfo) {
  auto conn = telemetry::pg::Connection::Open(conninfo);
  DieUnlessOk(conn.status(), "connect");
  return *std::move(conn);
}

double WalPosition(telemetry::pg::Connection& conn) {
  auto r = conn.Query("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::float8");
  DieUnlessOk(r.status(), "WAL position");
  return std::stod(std::string(r->Get(0, 0)));
}

}  // namespace

int main(int argc, char** argv) {
  telemetry::DisableMutexDeadlockDetection();  // measure what production runs
  absl::ParseCommandLine(argc, argv);
  const std::vector<int> counts =
      telemetry::load::PositiveInts(absl::GetFlag(FLAGS_gateway_counts), "--gateway_counts");
  std::fprintf(stderr, "starting etcd, Patroni (primary + standby) and Redis on loopback...\n");
  auto etcd = telemetry::local::EtcdCluster::Start(3);
  DieUnlessOk(etcd.status(), "etcd");
  auto pg = telemetry::local::PatroniCluster::Start(**etcd, {.members = 2, .synchronous = true});
  DieUnlessOk(pg.status(), "patroni");
  auto redis = telemetry::local::RedisServer::Start();
  DieUnlessOk(redis.status(), "redis");
  {
    const int leader = (*pg)->Leader();
    DieUnlessOk(Connect((*pg)->ConnInfo(leader))->Exec("CREATE DATABASE telemetry"), "create");
    DieUnlessOk(telemetry::local::MigrateDatabase((*pg)->ConnInfo(leader, "telemetry")),
                "migrate");
  }
  const std::string database = (*pg)->WritableConnInfo("telemetry");

  const int devices = absl::GetFlag(FLAGS_devices);
  const absl::Duration duration = absl::GetFlag(FLAGS_duration);
  std::map<std::tuple<bool, int>, std::vector<Sample>> samples;  // (synchronous, gateways)
  int seed = 1;
  for (int round = 0; round < absl::GetFlag(FLAGS_rounds); ++round) {
    // Alternate which mode goes first, so neither always runs warmer.
    for (bool synchronous : {round % 2 == 0, round % 2 != 0}) {
      DieUnlessOk((*pg)->SetSynchronous(synchronous), "synchronous_mode");
      for (int n : counts) {
        const int primary = (*pg)->Leader();
        const int standby = 1 - primary;
        auto conn = Connect((*pg)->ConnInfo(primary, "telemetry"));
        DieUnlessOk(conn->Exec("TRUNCATE sensor_readings; CHECKPOINT"), "truncate");
        std::vector<std::unique_ptr<telemetry::load::GatewayProcess>> gateways;
        std::vector<std::string> targets;
        for (int g = 0; g < n; ++g) {
          gateways.push_back(std::make_unique<telemetry::load::GatewayProcess>(
              INGEST_GATEWAY_PATH, database, (*redis)->Url()));
          gateways.back()->Start();
          targets.push_back(absl::StrCat("127.0.0.1:", gateways.back()->port()));
        }
        auto gateway_cpu = [&] {
          double total = 0;
          for (const auto& gw : gateways) total += telemetry::load::ProcessCpuSeconds(gw->pid());
          return total;
        };
        const double gw0 = gateway_cpu();
        const double primary0 = telemetry::load::CpuSecondsOfProcessesIn((*pg)->data_dir(primary));
        const double standby0 = telemetry::load::CpuSecondsOfProcessesIn((*pg)->data_dir(standby));
        const double redis0 = telemetry::load::ProcessCpuSeconds((*redis)->pid());
        const double wal0 = WalPosition(*conn);
        const std::string json = telemetry::load::RunLoadgenAt(
            absl::StrJoin(targets, ","),
            {absl::StrCat("--devices=", devices), "--sensors=10",
             absl::StrCat("--batch=", absl::GetFlag(FLAGS_batch)),
             absl::StrCat("--window=", absl::GetFlag(FLAGS_window)),
             absl::StrCat("--duration=", absl::FormatDuration(duration)),
             absl::StrCat("--seed=", seed++)},
            duration + absl::Minutes(3));
        const double readings = JsonNumber(json, "accepted");
        const double seconds = JsonNumber(json, "seconds");
        Sample s;
        s.rows_per_second = JsonNumber(json, "rows_per_second");
        s.p50_ms = JsonNumber(json, "ack_p50_ms");
        s.p99_ms = JsonNumber(json, "ack_p99_ms");
        s.per_gateway_cpu = readings / (gateway_cpu() - gw0);
        s.per_primary_cpu =
            readings /
            (telemetry::load::CpuSecondsOfProcessesIn((*pg)->data_dir(primary)) - primary0);
        s.per_standby_cpu =
            readings /
            (telemetry::load::CpuSecondsOfProcessesIn((*pg)->data_dir(standby)) - standby0);
        s.batches_per_redis_cpu = JsonNumber(json, "batches") /
                                  (telemetry::load::ProcessCpuSeconds((*redis)->pid()) - redis0);
        const double wal = WalPosition(*conn) - wal0;
        s.wal_bytes_per_reading = wal / readings;
        s.wal_mib_per_second = wal / seconds / (1 << 20);
        const double paced = absl::GetFlag(FLAGS_paced_rate);
        if (paced > 0) {
          DieUnlessOk(conn->Exec("TRUNCATE sensor_readings"), "truncate");
          const std::string paced_json = telemetry::load::RunLoadgenAt(
              absl::StrJoin(targets, ","),
              {absl::StrCat("--devices=", devices), "--sensors=10",
               absl::StrCat("--batch=", absl::GetFlag(FLAGS_batch)),
               absl::StrCat("--window=", absl::GetFlag(FLAGS_window)),
               absl::StrCat("--rate=", paced / devices),
               absl::StrCat("--duration=", absl::FormatDuration(duration)),
               absl::StrCat("--seed=", seed++)},
              duration + absl::Minutes(3));
          s.paced_p50_ms = JsonNumber(paced_json, "ack_p50_ms");
          s.paced_p99_ms = JsonNumber(paced_json, "ack_p99_ms");
        }
        gateways.clear();  // stops them
        samples[{synchronous, n}].push_back(s);
        std::fprintf(stderr,
                     "round %d %s, %d gateway(s): %8.0f rows/s, ack p50 %.1f ms p99 %.1f ms; "
                     "paced: p50 %.1f ms p99 %.1f ms; WAL %.0f B/reading\n",
                     round + 1, synchronous ? "synchronous " : "asynchronous", n,
                     s.rows_per_second, s.p50_ms, s.p99_ms, s.paced_p50_ms, s.paced_p99_ms,
                     s.wal_bytes_per_reading);
      }
    }
  }

  auto median = [&](bool synchronous, int n, double Sample::*field) {
    std::vector<double> v;
    for (const Sample& s : samples[{synchronous, n}]) v.push_back(s.*field);
    return Median(v);
  };
  std::printf("\ncluster_bench: Patroni primary + standby, Redis, %d devices, batches of %d, "
              "window %d, %s per run, %d rounds (medians)\n",
              devices, absl::GetFlag(FLAGS_batch), absl::GetFlag(FLAGS_window),
              absl::FormatDuration(duration).c_str(), absl::GetFlag(FLAGS_rounds));
  std::printf("  unpaced: rows/s and ack latency at saturation; paced at %.0f readings/s: "
              "ack latency\n",
              absl::GetFlag(FLAGS_paced_rate));
  std::printf("  %-12s %8s %10s %9s %9s %14s %12s %12s\n", "standby", "gateways", "rows/s",
              "p50 ms", "p99 ms", "vs 1 gateway", "paced p50", "paced p99");
  for (bool synchronous : {true, false}) {
    const double one = median(synchronous, counts.front(), &Sample::rows_per_second);
    for (int n : counts) {
      std::printf("  %-12s %8d %10.0f %9.1f %9.1f %14.2f %12.1f %12.1f\n",
                  synchronous ? "synchronous" : "asynchronous", n,
                  median(synchronous, n, &Sample::rows_per_second),
                  median(synchronous, n, &Sample::p50_ms), median(synchronous, n, &Sample::p99_ms),
                  median(synchronous, n, &Sample::rows_per_second) / one,
                  median(synchronous, n, &Sample::paced_p50_ms),
                  median(synchronous, n, &Sample::paced_p99_ms));
    }
  }
  std::printf("  the cost of synchronous replication, synchronous/asynchronous:\n");
  std::printf("  %8s %10s %14s %14s\n", "gateways", "rows/s", "paced p50", "paced p99");
  for (int n : counts) {
    std::printf("  %8d %10.2f %14.2f %14.2f\n", n,
                median(true, n, &Sample::rows_per_second) /
                    median(false, n, &Sample::rows_per_second),
                median(true, n, &Sample::paced_p50_ms) / median(false, n, &Sample::paced_p50_ms),
                median(true, n, &Sample::paced_p99_ms) / median(false, n, &Sample::paced_p99_ms));
  }
  std::printf("  capacity figures (synchronous, medians over every gateway count):\n");
  std::vector<double> gw, primary, standby, redis_b, wal_b, wal_rate;
  for (int n : counts) {
    for (const Sample& s : samples[{true, n}]) {
      gw.push_back(s.per_gateway_cpu);
      primary.push_back(s.per_primary_cpu);
      standby.push_back(s.per_standby_cpu);
      redis_b.push_back(s.batches_per_redis_cpu);
      wal_b.push_back(s.wal_bytes_per_reading);
      wal_rate.push_back(s.wal_mib_per_second);
    }
  }
  std::printf("    readings per CPU-second: gateways %.0f, primary PostgreSQL %.0f, standby "
              "PostgreSQL %.0f\n",
              Median(gw), Median(primary), Median(standby));
  std::printf("    batches (claims) per CPU-second of Redis: %.0f\n", Median(redis_b));
  std::printf("    WAL: %.0f bytes per reading; %.1f MiB/s at the rates above\n", Median(wal_b),
              Median(wal_rate));
  return 0;
}
