// read_bench: the read path against its limit, side by side in one run.
//
//   1. LatestReadings(n=100) and HourlySummary(24 h, 10 sensors) at a fixed
//      concurrency through the read service (gRPC), vs pgbench running the
//      same SQL at the same concurrency and in the same protocol mode as the
//      service runs it (LatestReadings prepared once per connection,
//      HourlySummary parsed and planned per call: see query_service.cc).
//   2. HourlySummary for 24 h x 100 sensors from the aggregate vs the same
//      statistics computed from raw rows: time and rows scanned
//      (EXPLAIN ANALYZE), as in the seed's own comparison.
//
// Starts a private PostgreSQL on loopback, loads --sensors x 24 h of
// readings (one every --interval) by binary COPY, materialises the
// aggregate, starts the read service in-process, and prints medians.
//
// The service's clients run in their own process (this binary again, in
// --client_mode), so the figures do not charge the service for its
// clients' CPU. With --pin (the default on a machine of two or more CPUs)
// that process and pgbench run on CPU 0, and the service and PostgreSQL on
// CPU 1: both sides of the ratio then get one core for the client and one
// for everything behind it, and the ratio says what the service costs.
#include <grpcpp/grpcpp.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <functional>
#include <cstdio>
#include <fstream>
#include <random>
#include <regex>
#include <optional>
#include <thread>

#include "absl/flags/flag.h"
#include "load/bench_util.h"
#include "absl/flags/parse.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_replace.h"
#include "absl/time/clock.h"
#include "load/latency_recorder.h"
#include "server/query/query_service.h"
#include "server/query/read_server.h"
#include "server/query/sql_values.h"
#include "storage/pg/connection.h"
#include "storage/pg/copy_encoding.h"
#include "storage/pg/migrator.h"
#include "telemetry/v1/query.grpc.pb.h"
#include "storage/local/local_servers.h"
#include "storage/util/mutex.h"

ABSL_FLAG(int, sensors, 100, "sensors with data");
ABSL_FLAG(absl::Duration, interval, absl::Seconds(10), "one reading per sensor per interval");
ABSL_FLAG(int, concurrency, 8, "concurrent clients (service) = pgbench clients");
ABSL_FLAG(absl::Duration, duration, absl::Seconds(10), "per measured run");
ABSL_FLAG(int, rounds, 3, "runs of each variant (medians)");
ABSL_FLAG(int, summary_sensors, 10, "sensors per HourlySummary call in the QPS runs");
ABSL_FLAG(std::string, sides, "service,pgbench",
          "which sides to run (for profiling one side alone)");
ABSL_FLAG(bool, pin, true,
          "clients (ours and pgbench) on one CPU, the service and PostgreSQL on another "
          "(the first two this process may use)");
// Internal: the client process.
ABSL_FLAG(std::string, client_mode, "", "internal: run as the client (latest|summary)");
ABSL_FLAG(std::string, target, "", "internal: the read service's address");
ABSL_FLAG(int64_t, start_us, 0, "internal: the summary range");
ABSL_FLAG(int64_t, end_us, 0, "internal: the summary range");

namespace {

using telemetry::load::DieUnlessOk;
using telemetry::load::Median;

namespace v1 = telemetry::v1;
using telemetry::load::LatencyRecorder;
using telemetry::load::Percentiles;

struct Run {
  double qps;
  Percentiles lat;
};

// Drives `call` from `concurrency` threads for `duration`.
Run Drive(int concurrency, absl::Duration duration,
          const std::function<bool(std::mt19937&)>& call) {
  LatencyRecorder rec;
  std::atomic<int64_t> ok{0}, failed{0};
  absl::Time end = absl::Now() + duration;
  std::vector<std::thread> threads;
  for (int t = 0; t < concurrency; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 rng(static_cast<unsigned>(t + 1));
      while (absl::Now() < end) {
        absl::Time s = absl::Now();
        if (call(rng)) {
          rec.Record(absl::Now() - s);
          ++ok;
        } else {
          ++failed;
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  if (failed > 0) std::fprintf(stderr, "  (%lld failed calls)\n", static_cast<long long>(failed.load()));
  return {static_cast<double>(ok.load()) / absl::ToDoubleSeconds(duration), rec.Total()};
}

// pgbench's figures as a Run (its latency average in p50_ms).
Run Pgbench(const std::string& bindir, int port, const std::string& db,
            const std::string& script, const std::string& protocol, int concurrency,
            absl::Duration duration, const std::vector<std::string>& prefix) {
  telemetry::load::PgbenchResult r = telemetry::load::Pgbench(
      bindir, port, db, script, protocol, concurrency, duration, prefix);
  Run run{};
  run.qps = r.tps;
  run.lat.p50_ms = r.latency_avg_ms;  // average, reported as such
  return run;
}

// "rows=N" of the plan's top node and execution time, from EXPLAIN ANALYZE.
struct Explained {
  double ms = 0;
  int64_t rows_scanned = 0;
};
Explained Explain(telemetry::pg::Connection& c, const std::string& sql) {
  auto r = c.Query("EXPLAIN (ANALYZE, FORMAT TEXT) " + sql);
  DieUnlessOk(r.status(), "explain");
  Explained e;
  std::regex scan(R"((Seq Scan|Index Scan|Index Only Scan|Bitmap Heap Scan).*actual time=[0-9.]+\.\.[0-9.]+ rows=([0-9]+) loops=([0-9]+))");
  for (int i = 0; i < r->rows(); ++i) {
    std::string line(r->Get(i, 0));
    std::smatch m;
    // A bitmap index scan feeds its heap scan; count the heap scan only.
    if (line.find("Bitmap Index Scan") == std::string::npos &&
        std::regex_search(line, m, scan)) {
      e.rows_scanned += std::stoll(m[2].str()) * std::stoll(m[3].str());
    }
    if (std::regex_search(line, m, std::regex(R"(Execution Time: ([0-9.]+) ms)"))) {
      (void)absl::SimpleAtod(m[1].str(), &e.ms);
    }
  }
  return e;
}

// The first two CPUs this process may run on, or nullopt when it has fewer
// (containers may allow other CPUs than 0 and 1).
std::optional<std::pair<int, int>> TwoAllowedCpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) != 0) return std::nullopt;
  std::vector<int> cpus;
  for (int c = 0; c < CPU_SETSIZE && cpus.size() < 2; ++c) {
    if (CPU_ISSET(c, &set)) cpus.push_back(c);
  }
  if (cpus.size() < 2) return std::nullopt;
  return std::make_pair(cpus[0], cpus[1]);
}

// Pins the calling thread (and every thread it starts later: the service's,
// and PostgreSQL's postmaster and backends, started from it) to `cpu`.
void PinThisThread(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  if (sched_setaffinity(0, sizeof(set), &set) != 0) std::perror("sched_setaffinity");
}

// The client process: drives one call from --concurrency threads for
// --duration and prints {"qps":…,"p50_ms":…,"p99_ms":…}.
int ClientMain() {
  const int sensors = absl::GetFlag(FLAGS_sensors);
  const int summary_sensors = absl::GetFlag(FLAGS_summary_sensors);
  const int64_t start_us = absl::GetFlag(FLAGS_start_us), end_us = absl::GetFlag(FLAGS_end_us);
  auto channel = grpc::CreateChannel(absl::GetFlag(FLAGS_target), grpc::InsecureChannelCredentials());
  auto stub = v1::QueryService::NewStub(channel);
  std::function<bool(std::mt19937&)> call;
  if (absl::GetFlag(FLAGS_client_mode) == "latest") {
    call = [&](std::mt19937& r) {
      v1::LatestReadingsRequest req;
      req.set_sensor_id(absl::StrCat("sensor-", r() % static_cast<unsigned>(sensors)));
      req.set_limit(100);
      v1::LatestReadingsResponse resp;
      grpc::ClientContext ctx;
      ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
      return stub->LatestReadings(&ctx, req, &resp).ok() && resp.readings_size() == 100;
    };
  } else {
    call = [&](std::mt19937& r) {
      v1::HourlySummaryRequest req;
      int first = static_cast<int>(r() % static_cast<unsigned>(sensors));
      for (int i = 0; i < summary_sensors; ++i) {
        req.add_sensor_ids(absl::StrCat("sensor-", (first + i) % sensors));
      }
      telemetry::query::SetFromMicros(start_us, req.mutable_start());
      telemetry::query::SetFromMicros(end_us, req.mutable_end());
      v1::HourlySummaryResponse resp;
      grpc::ClientContext ctx;
      ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
      return stub->HourlySummary(&ctx, req, &resp).ok() &&
             resp.buckets_size() == 24 * summary_sensors;
    };
  }
  // Warm the channel (and the service's statement caches) first.
  std::mt19937 warm(99);
  for (int i = 0; i < 50; ++i) (void)call(warm);
  Run run = Drive(absl::GetFlag(FLAGS_concurrency), absl::GetFlag(FLAGS_duration), call);
  std::printf("{\"qps\":%.1f,\"p50_ms\":%.3f,\"p99_ms\":%.3f}\n", run.qps, run.lat.p50_ms,
              run.lat.p99_ms);
  return 0;
}

// Runs ClientMain in a child process of this binary (under `prefix`, say
// taskset) and returns its figures.
Run RunClientProcess(const std::string& mode, int port, const std::vector<std::string>& prefix,
                     int64_t start_us, int64_t end_us) {
  std::vector<std::string> argv = prefix;
  argv.push_back(std::filesystem::read_symlink("/proc/self/exe").string());
  for (std::string arg :
       {absl::StrCat("--client_mode=", mode), absl::StrCat("--target=127.0.0.1:", port),
        absl::StrCat("--sensors=", absl::GetFlag(FLAGS_sensors)),
        absl::StrCat("--summary_sensors=", absl::GetFlag(FLAGS_summary_sensors)),
        absl::StrCat("--concurrency=", absl::GetFlag(FLAGS_concurrency)),
        absl::StrCat("--duration=", absl::FormatDuration(absl::GetFlag(FLAGS_duration))),
        absl::StrCat("--start_us=", start_us), absl::StrCat("--end_us=", end_us)}) {
    argv.push_back(std::move(arg));
  }
  const std::string out = absl::StrCat("/tmp/tg-read-bench-client-", getpid(), ".txt");
  std::filesystem::remove(out);  // the helper appends
  auto rc = telemetry::local::RunCommand(argv, "", out);
  DieUnlessOk(rc.status(), "client process");
  std::ifstream in(out);
  std::string line, json;
  while (std::getline(in, line)) {
    if (!line.empty() && line[0] == '{') json = line;
  }
  std::smatch m;
  Run run{};
  auto number = [&](const char* key) {
    double v = 0;
    if (std::regex_search(json, m, std::regex(absl::StrCat("\"", key, "\":([0-9.]+)")))) {
      (void)absl::SimpleAtod(m[1].str(), &v);
    }
    return v;
  };
  run.qps = number("qps");
  run.lat.p50_ms = number("p50_ms");
  run.lat.p99_ms = number("p99_ms");
  if (*rc != 0 || json.empty()) {
    DieUnlessOk(absl::InternalError(absl::StrCat("client exited ", *rc, "; see ", out)), "client");
  }
  std::filesystem::remove(out);
  return run;
}

}  // namespace

int main(int argc, char** argv) {
  telemetry::DisableMutexDeadlockDetection();  // measure what production runs
  absl::ParseCommandLine(argc, argv);
  if (!absl::GetFlag(FLAGS_client_mode).empty()) return ClientMain();
  const std::optional<std::pair<int, int>> cpus =
      absl::GetFlag(FLAGS_pin) ? TwoAllowedCpus() : std::nullopt;
  const bool pin = cpus.has_value();
  // Before any thread starts (flag parsing starts none; gRPC's first come
  // with the server), so that every thread of the service, and PostgreSQL
  // started below, inherit it.
  std::vector<std::string> on_client_cpu;
  std::string pin_note;
  if (pin) {
    const auto [client_cpu, server_cpu] = *cpus;
    PinThisThread(server_cpu);
    on_client_cpu = {"/usr/bin/taskset", "-c", std::to_string(client_cpu)};
    pin_note = absl::StrCat(", on CPU ", client_cpu, " (pgbench too); service and PostgreSQL on CPU ",
                            server_cpu);
  }
  const int sensors = absl::GetFlag(FLAGS_sensors);
  const int concurrency = absl::GetFlag(FLAGS_concurrency);
  const absl::Duration duration = absl::GetFlag(FLAGS_duration);

  std::fprintf(stderr, "starting a private PostgreSQL on loopback...\n");
  auto pg = telemetry::local::PostgresServer::Start();
  DieUnlessOk(pg.status(), "postgres");
  auto db = telemetry::local::CreateMigratedDatabase(**pg);
  DieUnlessOk(db.status(), "database");
  const std::string conninfo = (*pg)->ConnInfo(*db);
  auto conn = telemetry::pg::Connection::Open(conninfo);
  DieUnlessOk(conn.status(), "connect");

  // 24 whole hours ending at the last full hour, plus the current partial one.
  const int64_t hour_us = 3'600'000'000LL;
  const int64_t end_us = absl::ToUnixMicros(absl::Now()) / hour_us * hour_us;
  const int64_t start_us = end_us - 24 * hour_us;
  const int64_t step_us = absl::ToInt64Microseconds(absl::GetFlag(FLAGS_interval));
  DieUnlessOk((*conn)->Query("SELECT telemetry_ensure_partitions(to_timestamp($1::bigint / 1000000), "
                     "to_timestamp($2::bigint / 1000000))",
                     {std::to_string(start_us), std::to_string(end_us)})
          .status(),
      "partitions");
  std::fprintf(stderr, "loading %d sensors x 24 h...\n", sensors);
  std::mt19937_64 rng(7);
  std::normal_distribution<double> noise(0, 1);
  int64_t rows = 0;
  for (int s = 0; s < sensors; ++s) {
    telemetry::pg::CopyEncoder enc;
    for (int64_t t = start_us; t < end_us; t += step_us) {
      telemetry::ReadingRow r;
      r.sensor_id = absl::StrCat("sensor-", s);
      r.timestamp_us = t;
      r.value = 20 + s % 5 + noise(rng);
      r.unit = "mm/s";
      enc.AddReading(r);
      ++rows;
    }
    DieUnlessOk((*conn)->Exec(absl::StrCat("INSERT INTO sensors (sensor_id) VALUES ('sensor-", s, "')")),
        "sensor");
    DieUnlessOk((*conn)
            ->CopyIn(absl::StrCat("COPY sensor_readings (", telemetry::pg::kReadingCopyColumns,
                                  ") FROM STDIN (FORMAT binary)"),
                     enc.Finish())
            .status(),
        "copy");
  }
  DieUnlessOk((*conn)->Exec("VACUUM ANALYZE sensor_readings"), "analyze");
  auto refreshed = (*conn)->Query(
      "SELECT telemetry_refresh_hourly('epoch'::timestamptz + $1::bigint * interval '1 "
      "microsecond', 'epoch'::timestamptz + $2::bigint * interval '1 microsecond')",
      {std::to_string(start_us), std::to_string(end_us)});
  DieUnlessOk(refreshed.status(), "refresh");
  DieUnlessOk((*conn)->Exec("VACUUM ANALYZE sensor_readings_summary_hourly"), "analyze");
  std::fprintf(stderr, "%lld readings loaded, %s hours materialised\n",
               static_cast<long long>(rows), std::string(refreshed->Get(0, 0)).c_str());

  telemetry::query::ReadServerOptions ro;

  ro.transport.plaintext = true;  // loopback
  ro.require_api_auth = false;
  ro.listen_address = "127.0.0.1:0";
  ro.metrics_address = "";
  ro.database_url = conninfo;
  ro.reader_connections = concurrency;
  ro.lifecycle.run_native_jobs = false;
  auto server = telemetry::query::ReadServer::Start(ro);
  DieUnlessOk(server.status(), "read service");
  auto channel = grpc::CreateChannel(absl::StrCat("127.0.0.1:", (*server)->port()),
                                     grpc::InsecureChannelCredentials());
  auto stub = v1::QueryService::NewStub(channel);

  const int summary_sensors = absl::GetFlag(FLAGS_summary_sensors);
  // pgbench runs the service's own statements (text results: pgbench cannot
  // ask for binary ones).
  const std::string latest_sql = absl::StrCat(
      "\\set s random(0, ", sensors - 1, ")\n",
      absl::StrReplaceAll(
          telemetry::query::LatestReadingsSql(
              100, telemetry::query::LatestReadingsWindows(absl::Now())[0]),
          {{"$1", "'sensor-' || :s"}}),
      ";\n");
  const std::string summary_sql = absl::StrCat(
      "\\set s random(0, ", sensors - summary_sensors, ")\n",
      "WITH inv AS (SELECT DISTINCT hour FROM telemetry_aggregate_invalidations WHERE hour >= "
      "to_timestamp(", start_us / 1'000'000, ") AND hour < to_timestamp(", end_us / 1'000'000,
      ")) SELECT sensor_id, hour, avg_value, max_value, min_value, reading_count "
      "FROM sensor_readings_summary_hourly WHERE sensor_id = ANY (ARRAY(SELECT 'sensor-' || g "
      "FROM generate_series(:s, :s + ", summary_sensors - 1, ") g)) AND hour >= to_timestamp(",
      start_us / 1'000'000, ") AND hour < to_timestamp(", end_us / 1'000'000,
      ") AND hour NOT IN (SELECT hour FROM inv) "
      "UNION ALL SELECT NULL, hour, NULL, NULL, NULL, NULL FROM inv;\n");

  const std::string bindir = telemetry::load::PostgresBindir();
  std::vector<double> svc_latest, pgb_latest, svc_summary, pgb_summary;
  std::vector<double> svc_latest_p50, svc_latest_p99, svc_summary_p50, svc_summary_p99;
  std::vector<double> pgb_latest_avg, pgb_summary_avg;
  for (int round = 0; round < absl::GetFlag(FLAGS_rounds); ++round) {
    const std::string sides = absl::GetFlag(FLAGS_sides);
    const bool svc = sides.find("service") != std::string::npos;
    const bool pgb = sides.find("pgbench") != std::string::npos;
    Run none{1, {}};
    const int port = (*server)->port();
    Run a = svc ? RunClientProcess("latest", port, on_client_cpu, start_us, end_us) : none;
    Run b = pgb ? Pgbench(bindir, (*pg)->port(), *db, latest_sql, "prepared", concurrency,
                          duration, on_client_cpu)
                : none;
    Run c = svc ? RunClientProcess("summary", port, on_client_cpu, start_us, end_us) : none;
    Run d = pgb ? Pgbench(bindir, (*pg)->port(), *db, summary_sql, "extended", concurrency,
                          duration, on_client_cpu)
                : none;
    std::fprintf(stderr,
                 "round %d: latest svc %.0f qps (p50 %.2f ms) pgbench %.0f tps | summary svc "
                 "%.0f qps (p50 %.2f ms) pgbench %.0f tps\n",
                 round + 1, a.qps, a.lat.p50_ms, b.qps, c.qps, c.lat.p50_ms, d.qps);
    svc_latest.push_back(a.qps);
    svc_latest_p50.push_back(a.lat.p50_ms);
    svc_latest_p99.push_back(a.lat.p99_ms);
    pgb_latest.push_back(b.qps);
    pgb_latest_avg.push_back(b.lat.p50_ms);
    svc_summary.push_back(c.qps);
    svc_summary_p50.push_back(c.lat.p50_ms);
    svc_summary_p99.push_back(c.lat.p99_ms);
    pgb_summary.push_back(d.qps);
    pgb_summary_avg.push_back(d.lat.p50_ms);
  }

  // Aggregate vs raw for 24 h x all sensors.
  const std::string all_ids = absl::StrCat(
      "ARRAY(SELECT 'sensor-' || g FROM generate_series(0, ", sensors - 1, ") g)");
  const std::string range = absl::StrCat("to_timestamp(", start_us / 1'000'000,
                                         ") AND to_timestamp(", end_us / 1'000'000, ")");
  const std::string from_aggregate = absl::StrCat(
      "SELECT sensor_id, hour, avg_value, max_value, min_value, reading_count FROM "
      "sensor_readings_summary_hourly WHERE sensor_id = ANY (", all_ids, ") AND hour >= ",
      "to_timestamp(", start_us / 1'000'000, ") AND hour < to_timestamp(", end_us / 1'000'000,
      ")");
  const std::string from_raw = absl::StrCat(
      "SELECT sensor_id, date_trunc('hour', \"timestamp\", 'UTC') AS hour, avg(value), "
      "max(value), min(value), count(*) FROM sensor_readings WHERE sensor_id = ANY (", all_ids,
      ") AND \"timestamp\" >= to_timestamp(", start_us / 1'000'000,
      ") AND \"timestamp\" < to_timestamp(", end_us / 1'000'000, ") GROUP BY 1, 2");
  (void)range;
  std::vector<double> agg_ms, raw_ms;
  Explained agg{}, raw{};
  for (int i = 0; i < 5; ++i) {
    agg = Explain(**conn, from_aggregate);
    raw = Explain(**conn, from_raw);
    agg_ms.push_back(agg.ms);
    raw_ms.push_back(raw.ms);
  }
  // And through the service (real-time merge included), for the record.
  std::vector<double> svc_all_ms;
  for (int i = 0; i < 5; ++i) {
    v1::HourlySummaryRequest req;
    for (int s = 0; s < sensors; ++s) req.add_sensor_ids(absl::StrCat("sensor-", s));
    telemetry::query::SetFromMicros(start_us, req.mutable_start());
    telemetry::query::SetFromMicros(end_us, req.mutable_end());
    v1::HourlySummaryResponse resp;
    grpc::ClientContext ctx;
    absl::Time t0 = absl::Now();
    grpc::Status st = stub->HourlySummary(&ctx, req, &resp);
    svc_all_ms.push_back(absl::ToDoubleMilliseconds(absl::Now() - t0));
    if (!st.ok() || resp.buckets_size() != 24 * sensors) {
      std::fprintf(stderr, "HourlySummary returned %d buckets: %s\n", resp.buckets_size(),
                   st.error_message().c_str());
    }
  }
  (*server)->Shutdown(absl::Seconds(2));

  std::printf(
      "\nread_bench: %d sensors x 24 h (%lld readings, one per %s), concurrency %d, %s runs, "
      "%d rounds (medians); clients in their own process%s\n",
      sensors, static_cast<long long>(rows),
      absl::FormatDuration(absl::GetFlag(FLAGS_interval)).c_str(), concurrency,
      absl::FormatDuration(duration).c_str(), absl::GetFlag(FLAGS_rounds),
      pin_note.c_str());
  double sl = Median(svc_latest), pl = Median(pgb_latest);
  double ss = Median(svc_summary), ps = Median(pgb_summary);
  std::printf("  LatestReadings(100)   service %8.0f qps (p50 %.2f ms, p99 %.2f ms)   "
              "pgbench -M prepared %8.0f tps (avg %.2f ms)   service/pgbench = %.2f\n",
              sl, Median(svc_latest_p50), Median(svc_latest_p99), pl, Median(pgb_latest_avg),
              sl / pl);
  std::printf("  HourlySummary(%d x 24h) service %8.0f qps (p50 %.2f ms, p99 %.2f ms)   "
              "pgbench -M extended %8.0f tps (avg %.2f ms)   service/pgbench = %.2f\n",
              summary_sensors, ss, Median(svc_summary_p50), Median(svc_summary_p99), ps,
              Median(pgb_summary_avg), ss / ps);
  std::printf("  24h x %d sensors: aggregate %.2f ms scanning %lld rows; raw %.2f ms scanning "
              "%lld rows; aggregate is %.1fx faster and scans %.1f%% fewer rows; through the "
              "service %.2f ms\n",
              sensors, Median(agg_ms), static_cast<long long>(agg.rows_scanned), Median(raw_ms),
              static_cast<long long>(raw.rows_scanned), Median(raw_ms) / Median(agg_ms),
              100.0 * (1.0 - static_cast<double>(agg.rows_scanned) /
                                 static_cast<double>(std::max<int64_t>(1, raw.rows_scanned))),
              Median(svc_all_ms));
  return 0;
}
