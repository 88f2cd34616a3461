// latest_bench: LatestReadings(100) at 7 and at 180 days of stored data, in
// one run, in native mode and (where TimescaleDB is installed) timescale
// mode, on a private PostgreSQL on loopback.
//
// Each size is its own database: --sensors sensors, one reading every 10
// minutes, ending now (daily partitions or chunks; in timescale mode the
// chunks older than 7 days compressed, as the compression policy leaves
// them). For each database it measures, at concurrency 1:
//   service  LatestReadings through the read service (gRPC, in-process)
//   bounded  pgbench -M prepared on the service's first-window statement
//   unbounded pgbench -M prepared on the statement without a time bound
//            (what the service ran before it bounded the window)
// and prints medians of --rounds, interleaved, and the 180-day / 7-day
// ratio of each.
#include <grpcpp/grpcpp.h>

#include <cstdio>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/str_replace.h"
#include "absl/time/clock.h"
#include "load/bench_util.h"
#include "load/latency_recorder.h"
#include "server/query/query_service.h"
#include "server/query/read_server.h"
#include "storage/local/local_servers.h"
#include "storage/pg/connection.h"
#include "telemetry/v1/query.grpc.pb.h"
#include "storage/util/mutex.h"

ABSL_FLAG(int, sensors, 100, "sensors with data");
ABSL_FLAG(std::string, days, "7,180", "sizes to build, in days of data");
ABSL_FLAG(absl::Duration, duration, absl::Seconds(5), "per measured run");
ABSL_FLAG(int, rounds, 5, "runs of each measurement (medians)");

namespace {

using telemetry::load::DieUnlessOk;
using telemetry::load::Median;
namespace v1 = telemetry::v1;

struct Size {
  telemetry::pg::StorageMode mode;
  int days;
  std::string db;
};

void Load(telemetry::local::PostgresServer& pg, Size& size, int sensors) {
  auto db = telemetry::local::CreateMigratedDatabase(pg, size.mode);
  DieUnlessOk(db.status(), "database");
  size.db = *db;
  auto c = telemetry::pg::Connection::Open(pg.ConnInfo(size.db));
  DieUnlessOk(c.status(), "connect");
  const std::string days = std::to_string(size.days);
  if (size.mode == telemetry::pg::StorageMode::kNative) {
    DieUnlessOk((*c)->Exec(absl::StrCat("SELECT telemetry_ensure_partitions(now() - interval '",
                                        days, " days', now() + interval '3 days')")),
                "partitions");
  }
  DieUnlessOk(
      (*c)->Exec(absl::StrCat(
          "INSERT INTO sensors (sensor_id, type) SELECT 'sensor-' || s, 'vibration' "
          "FROM generate_series(0, ", sensors - 1, ") s;"
          "INSERT INTO sensor_readings (\"timestamp\", sensor_id, sensor_type, value, unit, "
          "quality) SELECT date_trunc('minute', now()) - i * interval '10 min', 'sensor-' || s, "
          "'vibration', random(), 'mm/s', 0.99 FROM generate_series(0, ", size.days * 144 - 1,
          ") i, generate_series(0, ", sensors - 1, ") s;")),
      "load");
  if (size.mode == telemetry::pg::StorageMode::kTimescale) {
    DieUnlessOk((*c)->Exec("SELECT count(compress_chunk(c, true)) FROM "
                           "show_chunks('sensor_readings', older_than => interval '7 days') c"),
                "compress");
  }
  DieUnlessOk((*c)->Exec("VACUUM ANALYZE sensor_readings"), "analyze");
}

// LatestReadings(100) through the read service for `duration`; the
// latency median in ms.
double ThroughService(const std::string& conninfo, int sensors, absl::Duration duration) {
  telemetry::query::ReadServerOptions ro;
  ro.transport.plaintext = true;  // loopback
  ro.require_api_auth = false;
  ro.listen_address = "127.0.0.1:0";
  ro.metrics_address = "";
  ro.database_url = conninfo;
  ro.reader_connections = 1;
  ro.lifecycle.run_native_jobs = false;
  auto server = telemetry::query::ReadServer::Start(ro);
  DieUnlessOk(server.status(), "read service");
  auto stub = v1::QueryService::NewStub(grpc::CreateChannel(
      absl::StrCat("127.0.0.1:", (*server)->port()), grpc::InsecureChannelCredentials()));
  telemetry::load::LatencyRecorder rec;
  std::mt19937 rng(1);
  const absl::Time end = absl::Now() + duration;
  int failed = 0;
  while (absl::Now() < end) {
    v1::LatestReadingsRequest req;
    req.set_sensor_id(absl::StrCat("sensor-", rng() % static_cast<unsigned>(sensors)));
    req.set_limit(100);
    v1::LatestReadingsResponse resp;
    grpc::ClientContext ctx;
    absl::Time t0 = absl::Now();
    if (stub->LatestReadings(&ctx, req, &resp).ok() && resp.readings_size() == 100) {
      rec.Record(absl::Now() - t0);
    } else {
      ++failed;
    }
  }
  (*server)->Shutdown(absl::Seconds(2));
  if (failed > 0) std::fprintf(stderr, "  (%d failed calls)\n", failed);
  return rec.Total().p50_ms;
}

}  // namespace

int main(int argc, char** argv) {
  telemetry::DisableMutexDeadlockDetection();  // measure what production runs
  absl::ParseCommandLine(argc, argv);
  const int sensors = absl::GetFlag(FLAGS_sensors);
  const absl::Duration duration = absl::GetFlag(FLAGS_duration);
  const bool timescale = telemetry::local::PostgresServer::TimescaleInstalled();
  auto pg = telemetry::local::PostgresServer::Start({.preload_timescale = timescale});
  DieUnlessOk(pg.status(), "postgres");
  const std::string bindir = telemetry::load::PostgresBindir();

  std::vector<int> day_sizes;
  for (absl::string_view d : absl::StrSplit(absl::GetFlag(FLAGS_days), ',')) {
    int v = 0;
    if (!absl::SimpleAtoi(d, &v) || v < 2) DieUnlessOk(absl::InvalidArgumentError("--days"), "flags");
    day_sizes.push_back(v);
  }
  std::vector<Size> sizes;
  for (auto mode : {telemetry::pg::StorageMode::kNative, telemetry::pg::StorageMode::kTimescale}) {
    if (mode == telemetry::pg::StorageMode::kTimescale && !timescale) continue;
    for (int days : day_sizes) sizes.push_back({mode, days, ""});
  }
  for (Size& s : sizes) {
    std::fprintf(stderr, "loading %s, %d days x %d sensors...\n",
                 std::string(telemetry::pg::StorageModeName(s.mode)).c_str(), s.days, sensors);
    Load(**pg, s, sensors);
  }

  // pgbench scripts: the service's statements with the sensor id inlined.
  auto script = [&](std::optional<absl::Time> since) {
    return absl::StrCat("\\set s random(0, ", sensors - 1, ")\n",
                        absl::StrReplaceAll(telemetry::query::LatestReadingsSql(100, since),
                                            {{"$1", "'sensor-' || :s"}}),
                        ";\n");
  };
  const std::string bounded = script(telemetry::query::LatestReadingsWindows(absl::Now())[0]);
  const std::string unbounded = script(std::nullopt);

  // (size index, measurement) -> samples (ms)
  std::map<std::pair<size_t, std::string>, std::vector<double>> ms;
  for (int round = 0; round < absl::GetFlag(FLAGS_rounds); ++round) {
    for (size_t i = 0; i < sizes.size(); ++i) {
      const Size& s = sizes[i];
      ms[{i, "service"}].push_back(ThroughService((*pg)->ConnInfo(s.db), sensors, duration));
      ms[{i, "bounded"}].push_back(
          telemetry::load::Pgbench(bindir, (*pg)->port(), s.db, bounded, "prepared", 1, duration)
              .latency_avg_ms);
      ms[{i, "unbounded"}].push_back(
          telemetry::load::Pgbench(bindir, (*pg)->port(), s.db, unbounded, "prepared", 1,
                                   duration)
              .latency_avg_ms);
      std::fprintf(stderr, "round %d %-9s %3d days: service p50 %.3f ms, bounded %.3f ms, "
                   "unbounded %.3f ms\n",
                   round + 1, std::string(telemetry::pg::StorageModeName(s.mode)).c_str(), s.days,
                   ms[{i, "service"}].back(), ms[{i, "bounded"}].back(),
                   ms[{i, "unbounded"}].back());
    }
  }

  std::printf("\nlatest_bench: LatestReadings(100), %d sensors, one reading per 10 min, "
              "concurrency 1, %s runs, %d rounds (medians, ms)\n",
              sensors, absl::FormatDuration(duration).c_str(), absl::GetFlag(FLAGS_rounds));
  std::printf("  %-9s %5s  %13s %13s %15s\n", "mode", "days", "service p50",
              "bounded avg", "unbounded avg");
  for (size_t i = 0; i < sizes.size(); ++i) {
    std::printf("  %-9s %5d  %13.3f %13.3f %15.3f\n",
                std::string(telemetry::pg::StorageModeName(sizes[i].mode)).c_str(), sizes[i].days,
                Median(ms[{i, "service"}]), Median(ms[{i, "bounded"}]),
                Median(ms[{i, "unbounded"}]));
  }
  // Ratios of the largest size to the smallest, per mode.
  for (size_t i = 0; i < sizes.size(); ++i) {
    for (size_t j = 0; j < sizes.size(); ++j) {
      if (sizes[i].mode != sizes[j].mode || sizes[i].days != day_sizes.front() ||
          sizes[j].days != day_sizes.back() || i == j) {
        continue;
      }
      auto ratio = [&](const char* m) { return Median(ms[{j, m}]) / Median(ms[{i, m}]); };
      std::printf("  %s %d days / %d days: service %.2fx, bounded %.2fx, unbounded %.2fx\n",
                  std::string(telemetry::pg::StorageModeName(sizes[i].mode)).c_str(),
                  sizes[j].days, sizes[i].days, ratio("service"), ratio("bounded"),
                  ratio("unbounded"));
    }
  }
  return 0;
}
