// Collects latencies from many threads and reports percentiles, both for the
// window since the last report and for the whole run.
#ifndef TELEMETRY_LOAD_LATENCY_RECORDER_H_
#define TELEMETRY_LOAD_LATENCY_RECORDER_H_

#include <algorithm>
#include <cstdint>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/time/time.h"
#include "storage/util/mutex.h"

namespace telemetry::load {

struct Percentiles {
  double p50_ms = 0, p90_ms = 0, p99_ms = 0, max_ms = 0;
  size_t count = 0;
};

// Nearest-rank percentiles of `us` (sorted in place).
inline Percentiles ComputePercentiles(std::vector<int64_t>& us) {
  Percentiles p;
  p.count = us.size();
  if (us.empty()) return p;
  std::sort(us.begin(), us.end());
  auto at = [&](double q) {
    size_t i = static_cast<size_t>(q * static_cast<double>(us.size() - 1) + 0.5);
    return static_cast<double>(us[std::min(i, us.size() - 1)]) / 1000.0;
  };
  p.p50_ms = at(0.50);
  p.p90_ms = at(0.90);
  p.p99_ms = at(0.99);
  p.max_ms = static_cast<double>(us.back()) / 1000.0;
  return p;
}

class LatencyRecorder {
 public:
  void Record(absl::Duration d) {
    int64_t us = absl::ToInt64Microseconds(d);
    MutexLock lock(&mu_);
    window_.push_back(us);
    all_.push_back(us);
  }
  Percentiles TakeWindow() {
    std::vector<int64_t> w;
    {
      MutexLock lock(&mu_);
      w.swap(window_);
    }
    return ComputePercentiles(w);
  }
  Percentiles Total() {
    std::vector<int64_t> a;
    {
      MutexLock lock(&mu_);
      a = all_;
    }
    return ComputePercentiles(a);
  }

 private:
  Mutex mu_;
  std::vector<int64_t> window_ ABSL_GUARDED_BY(mu_);
  std::vector<int64_t> all_ ABSL_GUARDED_BY(mu_);
};

}  // namespace telemetry::load

#endif  // TELEMETRY_LOAD_LATENCY_RECORDER_H_
