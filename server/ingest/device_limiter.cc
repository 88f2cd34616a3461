#include "server/ingest/device_limiter.h"

#include <algorithm>
#include <cmath>

#include "storage/util/mutex.h"

namespace telemetry::ingest {
namespace {

// Reports are walked in slices of this many devices, each under mu_ once,
// so that admissions wait for at most one slice however large the report.
constexpr size_t kReportSlice = 1024;

}  // namespace

DeviceLimiter::DeviceLimiter(DeviceLimits limits, size_t max_batch_readings)
    : limits_(limits),
      capacity_(std::max({limits.burst_readings, limits.readings_per_second,
                          static_cast<double>(max_batch_readings)})) {}

void DeviceLimiter::Refill(State& s, absl::Time now) const {
  if (s.refilled == absl::InfinitePast()) {
    s.tokens = capacity_;
  } else if (now > s.refilled) {
    const double refilled =
        s.tokens + absl::ToDoubleSeconds(now - s.refilled) * limits_.readings_per_second;
    s.overflow += std::max(0.0, refilled - capacity_);
    s.tokens = std::min(capacity_, refilled);
  }
  s.refilled = std::max(s.refilled, now);
}

absl::Duration DeviceLimiter::AdmitReadings(absl::string_view key, size_t readings,
                                            absl::Time now) {
  if (limits_.readings_per_second <= 0) return absl::ZeroDuration();
  MutexLock lock(&mu_);
  if (++ops_ % 4096 == 0) Prune(now);
  State& s = states_[key];
  Refill(s, now);
  const double need = std::min(static_cast<double>(readings), capacity_);
  if (s.tokens >= need) {
    s.tokens -= need;
    if (limits_.report_usage) unreported_[key] += static_cast<int64_t>(readings);
    return absl::ZeroDuration();
  }
  // Round up to the millisecond: a hint of "0 ms" would invite a busy retry.
  const double wait_ms =
      std::ceil((need - s.tokens) / limits_.readings_per_second * 1000.0);
  return absl::Milliseconds(std::max(1.0, wait_ms));
}

bool DeviceLimiter::OpenStream(absl::string_view key) {
  if (limits_.max_streams <= 0) return true;
  MutexLock lock(&mu_);
  State& s = states_[key];
  if (s.refilled == absl::InfinitePast()) {
    s.tokens = capacity_;
    s.refilled = absl::Now();
  }
  if (s.streams >= limits_.max_streams) return false;
  ++s.streams;
  return true;
}

void DeviceLimiter::CloseStream(absl::string_view key) {
  if (limits_.max_streams <= 0) return;
  MutexLock lock(&mu_);
  auto it = states_.find(key);
  if (it != states_.end() && it->second.streams > 0) --it->second.streams;
}

std::vector<UsageDelta> DeviceLimiter::TakeUnreported() {
  std::vector<UsageDelta> out;
  if (!limits_.report_usage) return out;
  absl::flat_hash_map<std::string, int64_t> taken;
  {
    MutexLock lock(&mu_);
    taken.swap(unreported_);
    unreported_.reserve(taken.size());  // no rehashing under mu_ as it refills
  }
  out.reserve(taken.size());
  for (auto& [key, readings] : taken) out.push_back(UsageDelta{key, readings});
  return out;
}

void DeviceLimiter::ChargeClusterUsage(const std::vector<UsageDelta>& reported,
                                       const std::vector<int64_t>& totals, absl::Time now) {
  if (limits_.readings_per_second <= 0) return;
  const size_t n = std::min(reported.size(), totals.size());
  for (size_t begin = 0; begin < n; begin += kReportSlice) {
    MutexLock lock(&mu_);
    for (size_t i = begin; i < std::min(n, begin + kReportSlice); ++i) {
      auto it = states_.find(reported[i].key);
      if (it == states_.end()) continue;  // pruned meanwhile: a new baseline next time
      State& s = it->second;
      if (totals[i] < 0) {  // this counter failed: start again next time
        s.cluster_total = -1;
        continue;
      }
      const int64_t others =
          s.cluster_total < 0 ? -1 : totals[i] - s.cluster_total - reported[i].amount;
      s.cluster_total = totals[i];
      // Both the others' usage and the overflow span the time since this
      // gateway's previous report: the overflow is what the cluster's
      // bucket had to spare meanwhile, so it pays first.
      Refill(s, now);
      const double owed = std::max(0.0, static_cast<double>(others) - s.overflow);
      s.overflow = 0;
      if (others > 0) s.tokens = std::max(-capacity_, s.tokens - owed);
    }
  }
}

void DeviceLimiter::ReportFailed(const std::vector<UsageDelta>& reported) {
  for (size_t begin = 0; begin < reported.size(); begin += kReportSlice) {
    MutexLock lock(&mu_);
    for (size_t i = begin; i < std::min(reported.size(), begin + kReportSlice); ++i) {
      auto it = states_.find(reported[i].key);
      if (it != states_.end()) it->second.cluster_total = -1;
    }
  }
}

void DeviceLimiter::ReturnUnreported(const std::vector<UsageDelta>& reported) {
  if (!limits_.report_usage) return;
  for (size_t begin = 0; begin < reported.size(); begin += kReportSlice) {
    MutexLock lock(&mu_);
    for (size_t i = begin; i < std::min(reported.size(), begin + kReportSlice); ++i) {
      if (reported[i].amount > 0) unreported_[reported[i].key] += reported[i].amount;
    }
  }
}

void DeviceLimiter::Prune(absl::Time now) {
  absl::erase_if(states_, [&](const auto& entry) {
    const State& s = entry.second;
    const bool refilled_by_now =
        limits_.readings_per_second <= 0 ||
        s.tokens + absl::ToDoubleSeconds(now - s.refilled) * limits_.readings_per_second >=
            capacity_;
    return s.streams == 0 && refilled_by_now;
  });
}

}  // namespace telemetry::ingest
