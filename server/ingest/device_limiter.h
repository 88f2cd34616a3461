// Per-device admission: a token bucket of readings per second and a cap on
// open streams, so one misbehaving device cannot take the gateway's write
// capacity from the rest. Refusals carry how long to wait before retrying.
//
// Keys are authenticated device ids (with authentication off there is no
// identity to hold to a limit, so the gateway does not call this).
//
// The rate is one per device across a cluster when the gateway reports
// usage (DeviceUsageSync): each bucket is then also charged what the other
// gateways admitted for its device, learnt a report later. Streams are
// counted per gateway.
// Thread-safe; the clock is a parameter so the arithmetic is unit-tested.
#ifndef TELEMETRY_SERVER_INGEST_DEVICE_LIMITER_H_
#define TELEMETRY_SERVER_INGEST_DEVICE_LIMITER_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "storage/usage_counters.h"
#include "storage/util/mutex.h"

namespace telemetry::ingest {

struct DeviceLimits {
  // Sustained readings per second per device; 0: unlimited.
  double readings_per_second = 0;
  // Bucket size: readings a device may send at once after being idle. Never
  // below the largest valid batch, so every batch can pass eventually.
  double burst_readings = 0;
  // Open StreamReadings calls per device; 0: unlimited.
  int max_streams = 16;
  // Keep what is admitted for TakeUnreported (set when a usage sync runs;
  // otherwise nothing would take it and idle devices would never be pruned).
  bool report_usage = false;
};

class DeviceLimiter {
 public:
  explicit DeviceLimiter(DeviceLimits limits, size_t max_batch_readings);

  // Takes `readings` tokens from `key`'s bucket: zero when admitted, else how
  // long until they would be available (nothing is taken then).
  absl::Duration AdmitReadings(absl::string_view key, size_t readings, absl::Time now);

  // Counts an open stream of `key`; false when it already has max_streams.
  bool OpenStream(absl::string_view key);
  void CloseStream(absl::string_view key);

  // Cluster-wide accounting. The readings admitted since the last call, by
  // device (devices with nothing new are left out), to be added to the
  // cluster's counters. Empty unless limits.report_usage.
  std::vector<UsageDelta> TakeUnreported();
  // The counters' totals after `reported` was added (in the same order).
  // What the other gateways admitted since this one's previous report of a
  // device is taken from its bucket: first from what the bucket's cap threw
  // away meanwhile (the rate the cluster had to spare), then from its
  // tokens, down to one bucket of debt at most. A device's first report
  // here, or a total that shrank (its counter expired), only sets the
  // baseline, as does a negative total (the counter could not be updated).
  void ChargeClusterUsage(const std::vector<UsageDelta>& reported,
                          const std::vector<int64_t>& totals, absl::Time now);
  // `reported` may or may not have reached the counters: the next report of
  // each of its devices sets a new baseline.
  void ReportFailed(const std::vector<UsageDelta>& reported);
  // `reported` never reached the counters: it is added back, to go out
  // with the next report (the baselines stay valid).
  void ReturnUnreported(const std::vector<UsageDelta>& reported);

 private:
  struct State {
    double tokens = 0;
    absl::Time refilled = absl::InfinitePast();
    int streams = 0;
    // The cluster's total after this gateway's last report; -1: none yet.
    int64_t cluster_total = -1;
    // Tokens the cap discarded since the last charge.
    double overflow = 0;
  };
  // Brings `s` up to `now`; a new state starts full. REQUIRES: mu_ held.
  void Refill(State& s, absl::Time now) const;
  // Drops idle devices with a full bucket and no stream, so the table stays
  // as large as the set of active devices. REQUIRES: mu_ held.
  void Prune(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const DeviceLimits limits_;
  const double capacity_;
  Mutex mu_;
  absl::flat_hash_map<std::string, State> states_ ABSL_GUARDED_BY(mu_);
  // Readings admitted since the last TakeUnreported, by device: a map of
  // its own so that taking it is a swap, not a walk of states_ under mu_.
  absl::flat_hash_map<std::string, int64_t> unreported_ ABSL_GUARDED_BY(mu_);
  uint64_t ops_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace telemetry::ingest

#endif  // TELEMETRY_SERVER_INGEST_DEVICE_LIMITER_H_
