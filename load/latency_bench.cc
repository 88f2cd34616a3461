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
#include "load/fleet_process.h"
#include "storage/local/http_get.h"
#include "storage/local/local_servers.h"
#include "storage/pg/connection.h"
#include "storage/util/mutex.h"

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
using telemetry::load::GatewayProcess;
using telemetry::load::JsonNumber;
using telemetry::load::Median;

struct Point {
  double rows_per_second = 0, p50_ms = 0, p99_ms = 0;
};

// Where an ack's time went, from the gateway's own histograms over one
// measurement (means; -1 where the build has no such metric).
struct Stages {
  double ack_ms = -1, queue_wait_ms = -1, claim_ms = -1, copy_ms = -1, group_rows = -1;
};

// _sum and _count of every histogram Stages reads, from one scrape.
std::map<std::string, double> ScrapeStages(int metrics_port) {
  std::map<std::string, double> v;
  auto body = telemetry::local::HttpGet(metrics_port, "/metrics");
  if (!body.ok()) return v;
  for (const char* h : {"telemetry_ingest_ack_latency_seconds", "telemetry_ingest_queue_wait_seconds",
                        "telemetry_ingest_dedupe_claim_seconds", "telemetry_ingest_group_rows"}) {
    v[absl::StrCat(h, "_sum")] = telemetry::local::MetricValue(*body, absl::StrCat(h, "_sum"));
    v[absl::StrCat(h, "_count")] = telemetry::local::MetricValue(*body, absl::StrCat(h, "_count"));
  }
  const std::string copy = "telemetry_ingest_copy_duration_seconds";
  v[copy + "_sum"] = telemetry::local::MetricValue(*body, copy + "_sum{path=\"copy\"}");
  v[copy + "_count"] = telemetry::local::MetricValue(*body, copy + "_count{path=\"copy\"}");
  return v;
}

Stages StagesBetween(const std::map<std::string, double>& before,
                     const std::map<std::string, double>& after) {
  auto mean = [&](const std::string& h, double scale) {
    auto s0 = before.find(h + "_sum"), c0 = before.find(h + "_count");
    auto s1 = after.find(h + "_sum"), c1 = after.find(h + "_count");
    if (s0 == before.end() || s1 == after.end() || s0->second < 0 || s1->second < 0) return -1.0;
    double n = c1->second - c0->second;
    return n > 0 ? (s1->second - s0->second) / n * scale : -1.0;
  };
  return {mean("telemetry_ingest_ack_latency_seconds", 1e3),
          mean("telemetry_ingest_queue_wait_seconds", 1e3),
          mean("telemetry_ingest_dedupe_claim_seconds", 1e3),
          mean("telemetry_ingest_copy_duration_seconds", 1e3),
          mean("telemetry_ingest_group_rows", 1)};
}

// One loadgen run against `port`; rate 0 = as fast as it can.
Point RunFleet(int port, double rows_per_second, bool stagger, int run) {
  const int devices = absl::GetFlag(FLAGS_devices);
  std::string json = telemetry::load::RunLoadgen(
      port,
      {absl::StrCat("--devices=", devices),
       absl::StrCat("--sensors=", absl::GetFlag(FLAGS_sensors)),
       absl::StrCat("--batch=", absl::GetFlag(FLAGS_batch)),
       absl::StrCat("--duration=", absl::FormatDuration(absl::GetFlag(FLAGS_duration))),
       absl::StrCat("--rate=", rows_per_second / devices), absl::StrCat("--stagger=", stagger),
       absl::StrCat("--seed=", run)},
      absl::GetFlag(FLAGS_duration) + absl::Minutes(3));
  return {JsonNumber(json, "rows_per_second"), JsonNumber(json, "ack_p50_ms"),
          JsonNumber(json, "ack_p99_ms")};
}

}  // namespace

int main(int argc, char** argv) {
  telemetry::DisableMutexDeadlockDetection();  // measure what production runs
  absl::ParseCommandLine(argc, argv);
  const std::vector<int> levels =
      telemetry::load::PositiveInts(absl::GetFlag(FLAGS_levels), "--levels");
  std::vector<std::pair<std::string, std::string>> gateways = {
      {"new", absl::GetFlag(FLAGS_gateway)}};
  if (!absl::GetFlag(FLAGS_baseline_gateway).empty()) {
    gateways.push_back({"base", absl::GetFlag(FLAGS_baseline_gateway)});
  }

  std::fprintf(stderr, "starting a durable private PostgreSQL and Redis on loopback...\n");
  telemetry::load::BenchStack stack = telemetry::load::StartBenchStack({.durable = true});
  const std::string& conninfo = stack.conninfo;
  auto reset = [&] {
    DieUnlessOk(stack.conn->Exec("TRUNCATE sensor_readings; CHECKPOINT"), "truncate");
  };

  // Levels are fractions of the baseline's saturation, or of the build's own.
  const std::string reference_name = gateways.back().first;
  std::vector<bool> patterns = {true};
  if (absl::GetFlag(FLAGS_lockstep)) patterns.push_back(false);
  // name -> saturation samples; (name, stagger, level) -> points.
  std::map<std::string, std::vector<double>> saturation;
  std::map<std::tuple<std::string, bool, int>, std::vector<Point>> points;
  std::map<std::tuple<std::string, bool, int>, std::vector<Stages>> stages;
  int run = 1;
  {
    // Warm-up, not measured: the first writes into a fresh database (its
    // first partitions, statistics, caches) are slower than any later run.
    GatewayProcess gw(gateways.front().second, conninfo, stack.redis->Url());
    gw.Start();
    RunFleet(gw.port(), 0, true, run++);
  }
  for (int round = 0; round < absl::GetFlag(FLAGS_rounds); ++round) {
    // Alternate which build goes first, so neither always follows the other.
    if (round > 0) std::reverse(gateways.begin(), gateways.end());
    // Saturation of each build first: the levels are fractions of the
    // baseline's (the same absolute loads for both builds), or of the one
    // build's own.
    for (const auto& [name, binary] : gateways) {
      GatewayProcess gw(binary, conninfo, stack.redis->Url());
      gw.Start();
      reset();
      auto before = ScrapeStages(gw.metrics_port());
      Point sat = RunFleet(gw.port(), 0, true, run++);
      Stages st = StagesBetween(before, ScrapeStages(gw.metrics_port()));
      saturation[name].push_back(sat.rows_per_second);
      std::fprintf(stderr,
                   "round %d %-4s saturation %9.0f rows/s (p50 %.1f ms, p99 %.1f ms) | server "
                   "means: ack %.2f, queue %.2f, claim %.2f, copy %.2f ms, %.0f rows a group\n",
                   round + 1, name.c_str(), sat.rows_per_second, sat.p50_ms, sat.p99_ms,
                   st.ack_ms, st.queue_wait_ms, st.claim_ms, st.copy_ms, st.group_rows);
    }
    const double reference = saturation[reference_name].back();
    for (const auto& [name, binary] : gateways) {
      GatewayProcess gw(binary, conninfo, stack.redis->Url());
      gw.Start();
      for (bool stagger : patterns) {
        for (int level : levels) {
          reset();
          auto before = ScrapeStages(gw.metrics_port());
          Point p = RunFleet(gw.port(), reference * level / 100.0, stagger, run++);
          Stages st = StagesBetween(before, ScrapeStages(gw.metrics_port()));
          points[{name, stagger, level}].push_back(p);
          stages[{name, stagger, level}].push_back(st);
          std::fprintf(stderr,
                       "round %d %-4s %-9s %3d%%  %9.0f rows/s  p50 %7.2f ms  p99 %7.2f ms | "
                       "server means: ack %.2f, queue %.2f, claim %.2f, copy %.2f ms, %.0f rows a "
                       "group\n",
                       round + 1, name.c_str(), stagger ? "staggered" : "lockstep", level,
                       p.rows_per_second, p.p50_ms, p.p99_ms, st.ack_ms, st.queue_wait_ms,
                       st.claim_ms, st.copy_ms, st.group_rows);
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
  if (gateways.front().first != "new") std::reverse(gateways.begin(), gateways.end());
  std::printf("  load: %% of the %s build's saturation\n", reference_name.c_str());
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
        std::vector<double> r, a, b;
        for (const Point& p : points[{name, stagger, level}]) {
          r.push_back(p.rows_per_second);
          a.push_back(p.p50_ms);
          b.push_back(p.p99_ms);
        }
        med.push_back({Median(r), Median(a), Median(b)});
        std::printf(" %11.0f %8.2f %8.2f |", med.back().rows_per_second, med.back().p50_ms,
                    med.back().p99_ms);
      }
      if (med.size() == 2 && med[1].p50_ms > 0 && med[1].p99_ms > 0) {
        std::printf(" %12.2f  %12.2f", med[0].p50_ms / med[1].p50_ms,
                    med[0].p99_ms / med[1].p99_ms);
      }
      std::printf("\n");
    }
  }
  std::printf("  where the time went (the gateway's histograms, means in ms; group in rows):\n");
  for (const auto& [name, binary] : gateways) {
    for (bool stagger : patterns) {
      for (int level : levels) {
        std::vector<double> ack, queue, claim, copy, group;
        for (const Stages& st : stages[{name, stagger, level}]) {
          ack.push_back(st.ack_ms);
          queue.push_back(st.queue_wait_ms);
          claim.push_back(st.claim_ms);
          copy.push_back(st.copy_ms);
          group.push_back(st.group_rows);
        }
        std::printf("  %-4s %-9s %4d%%  ack %7.2f  queue %7.2f  claim %5.2f  copy %7.2f  "
                    "group %7.0f\n",
                    name.c_str(), stagger ? "staggered" : "lockstep", level, Median(ack),
                    Median(queue), Median(claim), Median(copy), Median(group));
      }
    }
  }
  if (gateways.size() == 2) {
    double n = Median(saturation["new"]), b = Median(saturation["base"]);
    if (b > 0) std::printf("  saturation new/base %.2f\n", n / b);
  }
  return 0;
}
