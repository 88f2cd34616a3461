// overload_bench: gateway memory while clients push far faster than
// PostgreSQL can absorb.
//
// Starts private PostgreSQL and Redis (loopback), the real ingest-gateway
// binary with a queue bound, and loadgen with many devices sending as fast as
// possible. A staller repeatedly holds an ACCESS EXCLUSIVE lock on
// sensor_readings (--stall of every --stall_period), so the database takes
// nothing for long stretches. Every --sample it reads the gateway's VmRSS and
// its queue gauge. At the end it prints the idle, peak (VmHWM) and
// first-half/second-half RSS (growth over the soak), the largest queue seen
// against its bound, and loadgen's own exactness verification.
//
//   overload_bench --duration=60s            # quick
//   overload_bench --duration=10m            # the soak
#include <signal.h>
#include <sys/types.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <fstream>
#include <thread>

#include "absl/flags/flag.h"
#include "load/bench_util.h"
#include "absl/flags/parse.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "storage/pg/connection.h"
#include "storage/pg/migrator.h"
#include "storage/local/http_get.h"
#include "storage/local/local_servers.h"
#include "storage/util/mutex.h"

ABSL_FLAG(absl::Duration, duration, absl::Seconds(60), "how long clients push");
ABSL_FLAG(int, devices, 32, "loadgen devices (streams)");
ABSL_FLAG(int, queue_readings, 200000, "the gateway's queue bound");
ABSL_FLAG(absl::Duration, stall, absl::Seconds(2), "lock held per stall");
ABSL_FLAG(absl::Duration, stall_period, absl::Seconds(3), "one stall per period");
ABSL_FLAG(absl::Duration, sample, absl::Milliseconds(250), "RSS sampling interval");

namespace {

using telemetry::load::DieUnlessOk;

using telemetry::local::HttpGet;
using telemetry::local::MetricValue;

// Reads a "Key:   123 kB" line of /proc/<pid>/status, in MiB.
double ProcStatusMiB(pid_t pid, const std::string& key) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(key + ":", 0) == 0) {
      std::string digits;
      for (char c : line) {
        if (c >= '0' && c <= '9') digits += c;
      }
      int64_t kb = 0;
      (void)absl::SimpleAtoi(digits, &kb);
      return static_cast<double>(kb) / 1024.0;
    }
  }
  return -1;
}

}  // namespace

int main(int argc, char** argv) {
  telemetry::DisableMutexDeadlockDetection();  // measure what production runs
  absl::ParseCommandLine(argc, argv);
  auto pg = telemetry::local::PostgresServer::Start();
  DieUnlessOk(pg.status(), "postgres");
  auto redis = telemetry::local::RedisServer::Start();
  DieUnlessOk(redis.status(), "redis");
  auto db = telemetry::local::CreateMigratedDatabase(**pg);
  DieUnlessOk(db.status(), "database");
  const std::string conninfo = (*pg)->ConnInfo(*db);

  int port = telemetry::local::FreeLoopbackPort();
  int metrics_port = telemetry::local::FreeLoopbackPort();
  std::string dir = ::getenv("TMPDIR") ? ::getenv("TMPDIR") : "/tmp";
  pid_t gateway = telemetry::local::SpawnProcess(
      {INGEST_GATEWAY_PATH, "--plaintext", absl::StrCat("--database_url=", conninfo),
       absl::StrCat("--redis_url=", (*redis)->Url()),
       absl::StrCat("--listen=127.0.0.1:", port),
       absl::StrCat("--metrics_listen=127.0.0.1:", metrics_port),
       absl::StrCat("--queue_readings=", absl::GetFlag(FLAGS_queue_readings))},
      dir + "/overload_gateway.log");
  if (!telemetry::local::PollUntil(
          [&] { return HttpGet(metrics_port, "/metrics").ok(); })) {
    std::fprintf(stderr, "gateway did not start; see %s/overload_gateway.log\n", dir.c_str());
    return 1;
  }
  absl::SleepFor(absl::Milliseconds(500));  // let it settle before the idle sample
  const double idle_rss = ProcStatusMiB(gateway, "VmRSS");

  const absl::Duration duration = absl::GetFlag(FLAGS_duration);
  std::string loadgen_out = dir + "/overload_loadgen.txt";
  pid_t loadgen = telemetry::local::SpawnProcess(
      {LOADGEN_PATH, "--plaintext", absl::StrCat("--target=127.0.0.1:", port),
       absl::StrCat("--devices=", absl::GetFlag(FLAGS_devices)), "--sensors=20",
       "--batch=1000", absl::StrCat("--duration=", absl::FormatDuration(duration)),
       "--retry_fraction=0.02", "--quiet", "--json",
       absl::StrCat("--verify_database_url=", conninfo)},
      loadgen_out);

  std::atomic<bool> stop{false};
  std::thread staller([&] {
    auto conn = telemetry::pg::Connection::Open(conninfo);
    if (!conn.ok()) return;
    while (!stop.load()) {
      if (!(*conn)->Exec("BEGIN; LOCK TABLE sensor_readings IN ACCESS EXCLUSIVE MODE").ok()) break;
      absl::SleepFor(absl::GetFlag(FLAGS_stall));  // the injected fault itself
      (void)(*conn)->Exec("COMMIT");
      absl::SleepFor(absl::GetFlag(FLAGS_stall_period) - absl::GetFlag(FLAGS_stall));
    }
  });

  struct Sample {
    double t, rss, queue;
  };
  std::vector<Sample> samples;
  absl::Time start = absl::Now();
  int loadgen_exit = -1;
  while (true) {
    int code = telemetry::local::WaitForExit(loadgen, absl::GetFlag(FLAGS_sample));
    double t = absl::ToDoubleSeconds(absl::Now() - start);
    double queue = -1;
    if (auto body = HttpGet(metrics_port, "/metrics"); body.ok()) {
      queue = MetricValue(*body, "telemetry_ingest_queue_readings");
    }
    samples.push_back({t, ProcStatusMiB(gateway, "VmRSS"), queue});
    if (code >= 0) {
      loadgen_exit = code;
      break;
    }
    if (absl::Now() - start > duration + absl::Minutes(5)) {
      kill(loadgen, SIGKILL);
      break;
    }
  }
  stop = true;
  staller.join();
  const double peak_rss = ProcStatusMiB(gateway, "VmHWM");
  kill(gateway, SIGTERM);
  int gateway_exit = telemetry::local::WaitForExit(gateway, absl::Seconds(60));

  // Growth: the median RSS of the second half of the soak against the first.
  auto median_rss = [&](double from, double to) {
    std::vector<double> v;
    for (const Sample& s : samples) {
      if (s.t >= from && s.t < to) v.push_back(s.rss);
    }
    if (v.empty()) return 0.0;
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  };
  double total = samples.empty() ? 0 : samples.back().t;
  double first = median_rss(total * 0.1, total * 0.5);
  double second = median_rss(total * 0.5, total);
  double max_queue = 0;
  for (const Sample& s : samples) max_queue = std::max(max_queue, s.queue);

  std::ifstream lg(loadgen_out);
  std::string loadgen_text((std::istreambuf_iterator<char>(lg)), {});
  std::printf("%s\n", loadgen_text.c_str());
  std::printf(
      "overload_bench: %s of %d devices as fast as possible; database stalled %s of "
      "every %s\n"
      "  gateway RSS   idle %.1f MiB, peak (VmHWM) %.1f MiB\n"
      "  soak growth   median RSS %.1f MiB (10-50%% of run) -> %.1f MiB (50-100%%): "
      "%+.1f%%\n"
      "  queue         max %.0f readings of a %d bound\n"
      "  exits         loadgen %d (0 = verified exact), gateway %d\n",
      absl::FormatDuration(duration).c_str(), absl::GetFlag(FLAGS_devices),
      absl::FormatDuration(absl::GetFlag(FLAGS_stall)).c_str(),
      absl::FormatDuration(absl::GetFlag(FLAGS_stall_period)).c_str(), idle_rss, peak_rss,
      first, second, first > 0 ? (second - first) / first * 100 : 0.0, max_queue,
      absl::GetFlag(FLAGS_queue_readings), loadgen_exit, gateway_exit);
  return loadgen_exit == 0 && gateway_exit == 0 ? 0 : 1;
}
