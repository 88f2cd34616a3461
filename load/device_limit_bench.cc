// What cluster-wide device limits cost (docs/operations.md, "Limits across
// gateways"), measured side by side in one run:
//  1. the write path: DeviceLimiter::AdmitReadings with usage kept for
//     reports vs without (ns per admission, and the ratio);
//  2. one gateway's report to Redis: RedisUsageCounters::AddAll for 100 to
//     100,000 active devices (median ms per report, devices per second one
//     Redis takes), against a private redis-server on loopback.
//
//   build/load/device_limit_bench [--reps=15]
#include <cstdio>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "load/bench_util.h"
#include "server/ingest/device_limiter.h"
#include "storage/local/local_servers.h"
#include "storage/redis/redis_usage_counters.h"

ABSL_FLAG(int, reps, 15, "Repetitions of each measurement (the median is printed)");

namespace telemetry::load {
namespace {

// ns per AdmitReadings over `devices` devices, round robin, each call
// admitted (the rate is far above what is asked).
double AdmitNanos(bool report_usage, int devices, int calls) {
  ingest::DeviceLimits limits;
  limits.readings_per_second = 1e12;
  limits.report_usage = report_usage;
  ingest::DeviceLimiter limiter(limits, 100);
  std::vector<std::string> keys;
  for (int i = 0; i < devices; ++i) keys.push_back(absl::StrCat("device-", i));
  const absl::Time now = absl::Now();
  const absl::Time start = absl::Now();
  for (int i = 0; i < calls; ++i) {
    (void)limiter.AdmitReadings(keys[i % devices], 100, now + absl::Microseconds(i));
    // A report per 10,000 calls, as a 1 s sync would at 10k batches/s.
    if (report_usage && i % 10'000 == 9'999) (void)limiter.TakeUnreported();
  }
  return absl::ToDoubleNanoseconds(absl::Now() - start) / calls;
}

int Run() {
  const int reps = absl::GetFlag(FLAGS_reps);
  std::printf("Write path: ns per admission (10,000 devices, 1,000,000 calls), median of %d\n",
              reps);
  std::vector<double> plain, kept;
  for (int r = 0; r < reps; ++r) {  // interleaved, so noise hits both alike
    plain.push_back(AdmitNanos(false, 10'000, 1'000'000));
    kept.push_back(AdmitNanos(true, 10'000, 1'000'000));
  }
  std::printf("  per gateway (no reports)   %7.1f ns\n", Median(plain));
  std::printf("  cluster (usage kept)       %7.1f ns   ratio %.2f\n", Median(kept),
              Median(kept) / Median(plain));

  auto redis = local::RedisServer::Start();
  DieUnlessOk(redis.status(), "redis");
  auto url = ParseRedisUrl((*redis)->Url());
  DieUnlessOk(url.status(), "redis url");
  RedisUsageCounters counters{RedisUsageOptions(*url)};
  std::printf("\nOne report to Redis (loopback): median of %d\n", reps);
  std::printf("  %-10s %10s %16s\n", "devices", "ms", "devices/s");
  for (int devices : {100, 1'000, 10'000, 100'000}) {
    std::vector<UsageDelta> deltas;
    for (int i = 0; i < devices; ++i) deltas.push_back({absl::StrCat("device-", i), 100});
    std::vector<double> ms;
    for (int r = 0; r < reps; ++r) {
      const absl::Time start = absl::Now();
      auto totals = counters.AddAll(deltas);
      DieUnlessOk(totals.status(), "report");
      ms.push_back(absl::ToDoubleMilliseconds(absl::Now() - start));
    }
    const double median = Median(ms);
    std::printf("  %-10d %10.2f %16.0f\n", devices, median, devices / (median / 1000));
  }
  return 0;
}

}  // namespace
}  // namespace telemetry::load

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  return telemetry::load::Run();
}
