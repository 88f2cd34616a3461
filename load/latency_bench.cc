// latency_bench: the ingest gateway's ack latency at fractions of its own
// saturation rate, in one run, on a durable PostgreSQL (fsync and
// full-page writes on, as run.sh and a deployment run it) and Redis, both
// private on loopback.
//
// The gateway (the built ingest-gateway) and the fleet (loadgen) each run
// as their own process. For each gateway binary given (--gateway, and
// --baseline_gateway for a before/after in the same run, measured
// alternately), it measures the saturation rate (loadgen unpaced), then
// ack p50/p99 with the fleet paced at each of --levels percent of that
// rate. Send times are staggered (independent devices) and, with
// --lockstep, also synchronised (a fleet that sends on the clock, the
// burstiest pattern). Latency is measured by the devices, from the send
// of a batch to its ack.
#include <signal.h>
#include <sys/types.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <map>
#include <string>
#include <tuple>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "load/bench_util.h"
#include "storage/local/http_get.h"
#include "storage/local/local_servers.h"
#include "storage/pg/connection.h"

ABSL_FLAG(std::string, gateway, INGEST_GATEWAY_PATH, "ingest-gateway binary to measure");
ABSL_FLAG(std::string, baseline_gateway, "",
          "a second ingest-gateway binary (e.g. an older build), measured alternately "
          "with --gateway in the same run");
ABSL_FLAG(int, devices, 8, "devices (one stream each)");
ABSL_FLAG(int, sensors, 10, "sensors per device");
ABSL_FLAG(int, batch, 500, "readings per batch");
ABSL_FLAG(absl::Duration, duration, absl::Seconds(10), "length of each measurement");
ABSL_FLAG(std::string, levels, "10,25,50,75,100", "percentages of the saturation rate");
ABSL_FLAG(bool, lockstep, true, "also measure every level with synchronised devices");
ABSL_FLAG(int, rounds, 1, "measurements of each point (medians reported)");

namespace {

using telemetry::load::DieUnlessOk;
using telemetry::load::Median;

struct Point {
  double rows_per_second = 0, p50_ms = 0, p99_ms = 0;
};

double JsonNumber(const std::string& json, const std::string& key) {
  size_t at = json.find(absl::StrCat("\"", key, "\":"));
  if (at == std::string::npos) return -1;
  at += key.size() + 3;
  size_t end = json.find_first_of(",}", at);
  double v = -1;
  if (!absl::SimpleAtod(json.substr(at, end - at), &v)) return -1;
  return v;
}

class Gateway {
 public:
  Gateway(std::string binary, std::string conninfo, std::string redis_url)
      : binary_(std::move(binary)), conninfo_(std::move(conninfo)),
        redis_url_(std::move(redis_url)) {}
  ~Gateway() { Stop(); }

  void Start() {
    port_ = telemetry::local::FreeLoopbackPort();
    metrics_port_ = telemetry::local::FreeLoopbackPort();
    pid_ = telemetry::local::SpawnProcess(
        {binary_, "--plaintext", "--device_auth=false",
         absl::StrCat("--database_url=", conninfo_), absl::StrCat("--redis_url=", redis_url_),
         absl::StrCat("--listen=127.0.0.1:", port_),
         absl::StrCat("--metrics_listen=127.0.0.1:", metrics_port_)},
        "/tmp/latency_bench_gateway.log");
    if (!telemetry::local::PollUntil(
            [&] { return telemetry::local::HttpGet(metrics_port_, "/metrics").ok(); })) {
      DieUnlessOk(absl::UnavailableError(
                      "did not start; see /tmp/latency_bench_gateway.log"),
                  binary_.c_str());
    }
  }
  void Stop() {
    if (pid_ <= 0) return;
    kill(pid_, SIGTERM);
    telemetry::local::WaitForExit(pid_, absl::Seconds(60));
    pid_ = -1;
  }
  int port() const { return port_; }

 private:
  const std::string binary_, conninfo_, redis_url_;
  int port_ = 0, metrics_port_ = 0;
  pid_t pid_ = -1;
};

// One loadgen run against `port`; rate 0 = as fast as it can.
Point RunFleet(int port, double rows_per_second, bool stagger, int run) {
  const int devices = absl::GetFlag(FLAGS_devices);
  const std::string out = "/tmp/latency_bench_loadgen.txt";
  pid_t pid = telemetry::local::SpawnProcess(
      {LOADGEN_PATH, "--plaintext", absl::StrCat("--target=127.0.0.1:", port),
       absl::StrCat("--devices=", devices), absl::StrCat("--sensors=", absl::GetFlag(FLAGS_sensors)),
       absl::StrCat("--batch=", absl::GetFlag(FLAGS_batch)),
       absl::StrCat("--duration=", absl::FormatDuration(absl::GetFlag(FLAGS_duration))),
       absl::StrCat("--rate=", rows_per_second / devices), absl::StrCat("--stagger=", stagger),
       absl::StrCat("--seed=", run), "--quiet", "--json"},
      out);
  int code = telemetry::local::WaitForExit(pid, absl::GetFlag(FLAGS_duration) + absl::Minutes(3));
  if (code < 0) {
    kill(pid, SIGKILL);
    telemetry::local::WaitForExit(pid, absl::Seconds(10));
  }
  std::ifstream in(out);
  std::string line, json;
  while (std::getline(in, line)) {
    if (!line.empty() && line[0] == '{') json = line;
  }
  if (code != 0 || json.empty() || json.find("\"ok\":true") == std::string::npos) {
    DieUnlessOk(absl::InternalError(absl::StrCat("loadgen exited ", code, "; see ", out)),
                "fleet");
  }
  return {JsonNumber(json, "rows_per_second"), JsonNumber(json, "ack_p50_ms"),
          JsonNumber(json, "ack_p99_ms")};
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  std::vector<int> levels;
  for (absl::string_view l : absl::StrSplit(absl::GetFlag(FLAGS_levels), ',')) {
    int v = 0;
    if (!absl::SimpleAtoi(l, &v) || v <= 0) {
      DieUnlessOk(absl::InvalidArgumentError("--levels: percentages above 0"), "flags");
    }
    levels.push_back(v);
  }
  std::vector<std::pair<std::string, std::string>> gateways = {
      {"new", absl::GetFlag(FLAGS_gateway)}};
  if (!absl::GetFlag(FLAGS_baseline_gateway).empty()) {
    gateways.push_back({"base", absl::GetFlag(FLAGS_baseline_gateway)});
  }

  std::fprintf(stderr, "starting a durable private PostgreSQL and Redis on loopback...\n");
  auto pg = telemetry::local::PostgresServer::Start({.durable = true});
  DieUnlessOk(pg.status(), "postgres");
  auto redis = telemetry::local::RedisServer::Start();
  DieUnlessOk(redis.status(), "redis");
  auto db = telemetry::local::CreateMigratedDatabase(**pg);
  DieUnlessOk(db.status(), "database");
  const std::string conninfo = (*pg)->ConnInfo(*db);
  auto conn = telemetry::pg::Connection::Open(conninfo);
  DieUnlessOk(conn.status(), "connect");
  auto reset = [&] {
    DieUnlessOk((*conn)->Exec("TRUNCATE sensor_readings; CHECKPOINT"), "truncate");
  };

  std::vector<bool> patterns = {true};
  if (absl::GetFlag(FLAGS_lockstep)) patterns.push_back(false);
  // name -> saturation samples; (name, stagger, level) -> points.
  std::map<std::string, std::vector<double>> saturation;
  std::map<std::tuple<std::string, bool, int>, std::vector<Point>> points;
  int run = 1;
  for (int round = 0; round < absl::GetFlag(FLAGS_rounds); ++round) {
    for (const auto& [name, binary] : gateways) {
      Gateway gw(binary, conninfo, (*redis)->Url());
      gw.Start();
      reset();
      Point sat = RunFleet(gw.port(), 0, true, run++);
      saturation[name].push_back(sat.rows_per_second);
      std::fprintf(stderr, "round %d %-4s saturation %9.0f rows/s (p50 %.1f ms, p99 %.1f ms)\n",
                   round + 1, name.c_str(), sat.rows_per_second, sat.p50_ms, sat.p99_ms);
      for (bool stagger : patterns) {
        for (int level : levels) {
          reset();
          Point p = RunFleet(gw.port(), sat.rows_per_second * level / 100.0, stagger, run++);
          points[{name, stagger, level}].push_back(p);
          std::fprintf(stderr, "round %d %-4s %-9s %3d%%  %9.0f rows/s  p50 %7.2f ms  p99 %7.2f ms\n",
                       round + 1, name.c_str(), stagger ? "staggered" : "lockstep", level,
                       p.rows_per_second, p.p50_ms, p.p99_ms);
        }
      }
      gw.Stop();
    }
  }

  std::printf("\nlatency_bench: %d devices x batches of %d, %s per point, %d round(s), "
              "durable PostgreSQL (fsync on), Redis dedupe on (medians)\n",
              absl::GetFlag(FLAGS_devices), absl::GetFlag(FLAGS_batch),
              absl::FormatDuration(absl::GetFlag(FLAGS_duration)).c_str(),
              absl::GetFlag(FLAGS_rounds));
  for (const auto& [name, binary] : gateways) {
    std::printf("  %-4s %s: saturation %.0f rows/s\n", name.c_str(), binary.c_str(),
                Median(saturation[name]));
  }
  std::printf("  %-9s %5s |", "arrivals", "load");
  for (const auto& [name, binary] : gateways) {
    std::printf(" %4s rows/s   p50 ms   p99 ms |", name.c_str());
  }
  if (gateways.size() == 2) std::printf(" p50 new/base  p99 new/base");
  std::printf("\n");
  for (bool stagger : patterns) {
    for (int level : levels) {
      std::printf("  %-9s %4d%% |", stagger ? "staggered" : "lockstep", level);
      std::vector<Point> med;
      for (const auto& [name, binary] : gateways) {
        const auto& v = points[{name, stagger, level}];
        Point m;
        std::vector<double> r, a, b;
        for (const Point& p : v) {
          r.push_back(p.rows_per_second);
          a.push_back(p.p50_ms);
          b.push_back(p.p99_ms);
        }
        m = {Median(r), Median(a), Median(b)};
        med.push_back(m);
        std::printf(" %11.0f %8.2f %8.2f |", m.rows_per_second, m.p50_ms, m.p99_ms);
      }
      if (med.size() == 2 && med[1].p50_ms > 0 && med[1].p99_ms > 0) {
        std::printf(" %12.2f  %12.2f", med[0].p50_ms / med[1].p50_ms, med[0].p99_ms / med[1].p99_ms);
      }
      std::printf("\n");
    }
  }
  if (gateways.size() == 2) {
    double n = Median(saturation["new"]), b = Median(saturation["base"]);
    if (b > 0) std::printf("  saturation new/base %.2f\n", n / b);
  }
  return 0;
}
