// What each device has sent lately, for the gateway's status page: when it
// was last heard from, readings stored, rejected and refused, and its rate
// of stored readings (an exponentially decaying average over about a
// minute, O(1) memory per device).
//
// Bounded: at most `max_devices` are tracked; when a new device finds it
// full, the eighth heard from least recently is forgotten (their counts
// start again from zero if they return). Keys are authenticated device ids, or
// "-" for calls without a device (authentication off).
//
// Thread-safe; the clock is a parameter so the arithmetic is unit-tested.
#ifndef TELEMETRY_SERVER_INGEST_DEVICE_ACTIVITY_H_
#define TELEMETRY_SERVER_INGEST_DEVICE_ACTIVITY_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "storage/util/mutex.h"

namespace telemetry::ingest {

struct DeviceActivityRow {
  std::string device;
  absl::Time last_seen;
  double stored_per_second = 0;  // decayed to the time of the snapshot
  int64_t stored = 0;            // new readings written
  int64_t duplicates = 0;        // readings the database already had
  int64_t rejected = 0;          // single readings refused (per-reading reasons)
  int64_t refused_batches = 0;   // whole batches refused or failed
};

class DeviceActivity {
 public:
  explicit DeviceActivity(size_t max_devices = 10000,
                          absl::Duration rate_window = absl::Minutes(1));

  // A batch answered: `stored` new, `duplicates`, `rejected` readings.
  void RecordBatch(absl::string_view device, int64_t stored, int64_t duplicates,
                   int64_t rejected, absl::Time now);
  // A batch of which nothing was stored (refused, throttled, failed).
  void RecordRefusal(absl::string_view device, absl::Time now);

  // The `limit` devices heard from most recently, newest first.
  std::vector<DeviceActivityRow> MostRecent(size_t limit, absl::Time now) const;
  size_t tracked() const;
  // Stored readings per second over all devices (the same average).
  double TotalStoredPerSecond(absl::Time now) const;

 private:
  struct State {
    absl::Time last_seen;
    double rate = 0;  // decayed to rate_at
    absl::Time rate_at;
    int64_t stored = 0, duplicates = 0, rejected = 0, refused_batches = 0;
  };
  State& Touch(absl::string_view device, absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void EvictLeastRecent() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // `rate` (per second, as of `at`) decayed to `now`.
  double Decayed(double rate, absl::Time at, absl::Time now) const;
  void AddToRate(double* rate, absl::Time* at, int64_t readings, absl::Time now) const;

  const size_t max_devices_;
  const absl::Duration window_;
  mutable Mutex mu_;
  absl::flat_hash_map<std::string, State> devices_ ABSL_GUARDED_BY(mu_);
  double total_rate_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Time total_rate_at_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
};

}  // namespace telemetry::ingest

#endif  // TELEMETRY_SERVER_INGEST_DEVICE_ACTIVITY_H_
