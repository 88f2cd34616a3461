// batch_size_bench: what small batches cost. The same fleet sends batches
// of 1, 10, 100 and 1,000 readings as fast as it can (each device one
// stream, a window of unacknowledged batches), through the gateway (its own
// process) into a durable PostgreSQL with Redis deduplication, all private
// on loopback; rows/s, batches/s and the gateway's CPU per batch, per size,
// in one run, with each size's rate as a fraction of the largest size's.
// --baseline_gateway and --baseline_loadgen add a before/after: the two
// builds alternate run by run, and each size gets its after/before ratio.
#include <cstdio>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "load/bench_util.h"
#include "load/fleet_process.h"
#include "storage/local/local_servers.h"
#include "storage/pg/connection.h"
#include "storage/util/mutex.h"

ABSL_FLAG(std::string, gateway, INGEST_GATEWAY_PATH, "ingest-gateway binary to measure");
ABSL_FLAG(std::string, sizes, "1,10,100,1000", "batch sizes, in readings");
ABSL_FLAG(int, devices, 100, "devices (one stream each)");
ABSL_FLAG(int, window, 16, "unacknowledged batches per stream");
ABSL_FLAG(absl::Duration, duration, absl::Seconds(10), "per measured run");
ABSL_FLAG(int, rounds, 3, "runs of each size, interleaved (medians)");
ABSL_FLAG(std::string, baseline_gateway, "",
          "an earlier ingest-gateway binary to measure alternately (before/after)");
ABSL_FLAG(std::string, baseline_loadgen, "",
          "the loadgen binary of that earlier build (default: this build's)");

namespace {

using telemetry::load::DieUnlessOk;
using telemetry::load::JsonNumber;
using telemetry::load::Median;

// Busy and total jiffies of the whole machine (/proc/stat's cpu line).
std::pair<double, double> MachineJiffies() {
  std::ifstream in("/proc/stat");
  std::string cpu;
  double v[8] = {0};
  in >> cpu >> v[0] >> v[1] >> v[2] >> v[3] >> v[4] >> v[5] >> v[6] >> v[7];
  double idle = v[3] + v[4];
  double total = 0;
  for (double x : v) total += x;
  return {total - idle, total};
}

struct Sample {
  double rows_per_second, batches_per_second, gateway_us_per_batch, machine_busy;
};

}  // namespace

int main(int argc, char** argv) {
  telemetry::DisableMutexDeadlockDetection();  // measure what production runs
  absl::ParseCommandLine(argc, argv);
  const std::vector<int> sizes =
      telemetry::load::PositiveInts(absl::GetFlag(FLAGS_sizes), "--sizes");
  std::fprintf(stderr, "starting a durable private PostgreSQL and Redis on loopback...\n");
  telemetry::load::BenchStack stack = telemetry::load::StartBenchStack({.durable = true});
  const std::string& conninfo = stack.conninfo;

  struct Build {
    std::string name, gateway, loadgen;
  };
  std::vector<Build> builds = {{"this", absl::GetFlag(FLAGS_gateway), LOADGEN_PATH}};
  if (absl::GetFlag(FLAGS_baseline_gateway).empty() &&
      !absl::GetFlag(FLAGS_baseline_loadgen).empty()) {
    DieUnlessOk(absl::InvalidArgumentError("--baseline_loadgen needs --baseline_gateway"), "flags");
  }
  if (!absl::GetFlag(FLAGS_baseline_gateway).empty()) {
    std::string loadgen = absl::GetFlag(FLAGS_baseline_loadgen);
    builds.push_back({"base", absl::GetFlag(FLAGS_baseline_gateway),
                      loadgen.empty() ? std::string(LOADGEN_PATH) : loadgen});
  }
  const int devices = absl::GetFlag(FLAGS_devices);
  const absl::Duration duration = absl::GetFlag(FLAGS_duration);
  std::map<std::pair<std::string, int>, std::vector<Sample>> samples;
  int run = 1;
  for (int round = 0; round < absl::GetFlag(FLAGS_rounds); ++round) {
    for (int size : sizes) {
      for (size_t i = 0; i < builds.size(); ++i) {
        // Alternate which build goes first, so neither always runs warmer.
        const Build& build = builds[(i + static_cast<size_t>(round)) % builds.size()];
        DieUnlessOk(stack.conn->Exec("TRUNCATE sensor_readings; CHECKPOINT"), "truncate");
        telemetry::load::GatewayProcess gw(build.gateway, conninfo, stack.redis->Url());
        gw.Start();
        const double cpu0 = telemetry::load::ProcessCpuSeconds(gw.pid());
        const auto machine0 = MachineJiffies();
        std::string json = telemetry::load::RunLoadgen(
            gw.port(),
            {absl::StrCat("--devices=", devices), "--sensors=10",
             absl::StrCat("--batch=", size),
             absl::StrCat("--window=", absl::GetFlag(FLAGS_window)),
             absl::StrCat("--duration=", absl::FormatDuration(duration)),
             absl::StrCat("--seed=", run++)},
            duration + absl::Minutes(3), build.loadgen);
        const double cpu = telemetry::load::ProcessCpuSeconds(gw.pid()) - cpu0;
        const auto machine1 = MachineJiffies();
        gw.Stop();
        const double seconds = JsonNumber(json, "seconds");
        const double batches = JsonNumber(json, "batches");
        Sample s{JsonNumber(json, "rows_per_second"), batches / seconds,
                 batches > 0 ? cpu / batches * 1e6 : 0,
                 (machine1.first - machine0.first) / (machine1.second - machine0.second)};
        samples[{build.name, size}].push_back(s);
        std::fprintf(stderr,
                     "round %d %s batch %5d: %9.0f rows/s %8.0f batches/s, gateway %.1f us CPU "
                     "a batch, machine %.0f%% busy\n",
                     round + 1, build.name.c_str(), size, s.rows_per_second,
                     s.batches_per_second, s.gateway_us_per_batch, s.machine_busy * 100);
      }
    }
  }

  std::printf("\nbatch_size_bench: %d devices, window %d, %s per run, %d rounds, durable "
              "PostgreSQL, Redis dedupe on (medians)\n",
              devices, absl::GetFlag(FLAGS_window), absl::FormatDuration(duration).c_str(),
              absl::GetFlag(FLAGS_rounds));
  auto median_of = [&](const std::string& build, int size, double Sample::*field) {
    std::vector<double> v;
    for (const Sample& s : samples[{build, size}]) v.push_back(s.*field);
    return Median(v);
  };
  for (const Build& build : builds) {
    std::printf("  %s build (%s):\n", build.name.c_str(), build.gateway.c_str());
    std::printf("  %6s %12s %12s %16s %14s %18s\n", "batch", "rows/s", "batches/s",
                "gateway us/batch", "machine busy", "rows/s vs largest");
    const double largest = median_of(build.name, sizes.back(), &Sample::rows_per_second);
    for (int size : sizes) {
      std::printf("  %6d %12.0f %12.0f %16.1f %13.0f%% %18.2f\n", size,
                  median_of(build.name, size, &Sample::rows_per_second),
                  median_of(build.name, size, &Sample::batches_per_second),
                  median_of(build.name, size, &Sample::gateway_us_per_batch),
                  median_of(build.name, size, &Sample::machine_busy) * 100,
                  median_of(build.name, size, &Sample::rows_per_second) / largest);
    }
  }
  if (builds.size() > 1) {
    std::printf("  this/base, per size: rows/s ratio of the medians; per-round ratios\n");
    for (int size : sizes) {
      std::printf("  %6d %6.2f  (", size,
                  median_of("this", size, &Sample::rows_per_second) /
                      median_of("base", size, &Sample::rows_per_second));
      const auto& now = samples[{"this", size}];
      const auto& base = samples[{"base", size}];
      for (size_t r = 0; r < now.size() && r < base.size(); ++r) {
        std::printf("%s%.2f", r ? " " : "", now[r].rows_per_second / base[r].rows_per_second);
      }
      std::printf(")\n");
    }
  }
  return 0;
}
