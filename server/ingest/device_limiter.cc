#include "server/ingest/device_limiter.h"

#include <algorithm>
#include <cmath>

#include "storage/util/mutex.h"

namespace telemetry::ingest {

DeviceLimiter::DeviceLimiter(DeviceLimits limits, size_t max_batch_readings)
    : limits_(limits),
      capacity_(std::max({limits.burst_readings, limits.readings_per_second,
                          static_cast<double>(max_batch_readings)})) {}

absl::Duration DeviceLimiter::AdmitReadings(absl::string_view key, size_t readings,
                                            absl::Time now) {
  if (limits_.readings_per_second <= 0) return absl::ZeroDuration();
  MutexLock lock(&mu_);
  if (++ops_ % 4096 == 0) Prune(now);
  State& s = states_[key];
  if (s.refilled == absl::InfinitePast()) {
    s.tokens = capacity_;
  } else if (now > s.refilled) {
    s.tokens = std::min(capacity_, s.tokens + absl::ToDoubleSeconds(now - s.refilled) *
                                                  limits_.readings_per_second);
  }
  s.refilled = std::max(s.refilled, now);
  const double need = std::min(static_cast<double>(readings), capacity_);
  if (s.tokens >= need) {
    s.tokens -= need;
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
