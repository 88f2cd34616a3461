// Per-device admission: a token bucket of readings per second and a cap on
// open streams, so one misbehaving device cannot take the gateway's write
// capacity from the rest. Refusals carry how long to wait before retrying.
//
// Keys are authenticated device ids (with authentication off there is no
// identity to hold to a limit, so the gateway does not call this).
// Thread-safe; the clock is a parameter so the arithmetic is unit-tested.
#ifndef TELEMETRY_SERVER_INGEST_DEVICE_LIMITER_H_
#define TELEMETRY_SERVER_INGEST_DEVICE_LIMITER_H_

#include <cstdint>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
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


 private:
  struct State {
    double tokens = 0;
    absl::Time refilled = absl::InfinitePast();
    int streams = 0;
  };
  // Drops idle devices with a full bucket and no stream, so the table stays
  // as large as the set of active devices. REQUIRES: mu_ held.
  void Prune(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const DeviceLimits limits_;
  const double capacity_;
  Mutex mu_;
  absl::flat_hash_map<std::string, State> states_ ABSL_GUARDED_BY(mu_);
  uint64_t ops_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace telemetry::ingest

#endif  // TELEMETRY_SERVER_INGEST_DEVICE_LIMITER_H_
