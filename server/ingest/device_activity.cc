#include "server/ingest/device_activity.h"

#include <algorithm>
#include <cmath>

namespace telemetry::ingest {

DeviceActivity::DeviceActivity(size_t max_devices, absl::Duration rate_window)
    : max_devices_(std::max<size_t>(1, max_devices)), window_(rate_window) {}

// An exponentially decaying average with time constant `window_`: `n`
// readings add n / window; a steady λ per second converges to λ.
double DeviceActivity::Decayed(double rate, absl::Time at, absl::Time now) const {
  if (rate == 0 || now <= at) return rate;
  return rate * std::exp(-absl::FDivDuration(now - at, window_));
}

void DeviceActivity::AddToRate(double* rate, absl::Time* at, int64_t readings,
                               absl::Time now) const {
  *rate = Decayed(*rate, *at, now) + static_cast<double>(readings) / absl::ToDoubleSeconds(window_);
  *at = std::max(*at, now);
}

DeviceActivity::State& DeviceActivity::Touch(absl::string_view device, absl::Time now) {
  auto it = devices_.find(device);
  if (it == devices_.end()) {
    if (devices_.size() >= max_devices_) EvictLeastRecent();
    it = devices_.emplace(std::string(device), State{}).first;
    it->second.rate_at = now;
  }
  it->second.last_seen = std::max(it->second.last_seen, now);
  return it->second;
}

// An eighth at a time, by one pass: a fleet larger than the bound then costs
// a scan every max_devices/8 new devices, not one per batch.
void DeviceActivity::EvictLeastRecent() {
  std::vector<absl::Time> seen;
  seen.reserve(devices_.size());
  for (const auto& [device, s] : devices_) seen.push_back(s.last_seen);
  const size_t evict = std::max<size_t>(1, devices_.size() / 8);
  std::nth_element(seen.begin(), seen.begin() + static_cast<std::ptrdiff_t>(evict - 1),
                   seen.end());
  const absl::Time cutoff = seen[evict - 1];
  size_t evicted = 0;
  for (auto it = devices_.begin(); it != devices_.end() && evicted < evict;) {
    if (it->second.last_seen <= cutoff) {
      devices_.erase(it++);
      ++evicted;
    } else {
      ++it;
    }
  }
}

void DeviceActivity::RecordBatch(absl::string_view device, int64_t stored, int64_t duplicates,
                                 int64_t rejected, absl::Time now) {
  MutexLock lock(&mu_);
  State& s = Touch(device, now);
  s.stored += stored;
  s.duplicates += duplicates;
  s.rejected += rejected;
  if (stored > 0) {
    AddToRate(&s.rate, &s.rate_at, stored, now);
    AddToRate(&total_rate_, &total_rate_at_, stored, now);
  }
}

void DeviceActivity::RecordRefusal(absl::string_view device, absl::Time now) {
  MutexLock lock(&mu_);
  ++Touch(device, now).refused_batches;
}

std::vector<DeviceActivityRow> DeviceActivity::MostRecent(size_t limit, absl::Time now) const {
  auto newer = [](const auto& a, const auto& b) {
    if (a.first != b.first) return a.first > b.first;
    return *a.second < *b.second;
  };
  std::vector<DeviceActivityRow> rows;
  MutexLock lock(&mu_);
  // Select under the lock by pointer; copy only the rows shown.
  std::vector<std::pair<absl::Time, const std::string*>> order;
  order.reserve(devices_.size());
  for (const auto& [device, s] : devices_) order.emplace_back(s.last_seen, &device);
  const size_t n = std::min(limit, order.size());
  std::partial_sort(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(n), order.end(),
                    newer);
  rows.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    const State& s = devices_.find(*order[i].second)->second;
    rows.push_back({*order[i].second, s.last_seen, Decayed(s.rate, s.rate_at, now), s.stored,
                    s.duplicates, s.rejected, s.refused_batches});
  }
  return rows;
}

size_t DeviceActivity::tracked() const {
  MutexLock lock(&mu_);
  return devices_.size();
}

double DeviceActivity::TotalStoredPerSecond(absl::Time now) const {
  MutexLock lock(&mu_);
  return Decayed(total_rate_, total_rate_at_, now);
}

}  // namespace telemetry::ingest
