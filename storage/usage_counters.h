// Cluster-wide running totals of what each device has used (readings
// admitted), so that gateways sharing a fleet can hold a device to one
// limit together: each adds what it admitted since it last reported and
// learns, from the total, what the others admitted meanwhile.
//
// Totals only grow while a device stays active; a counter unused for its
// time to live starts again from zero (a caller sees its total shrink and
// takes a new baseline).
#ifndef TELEMETRY_STORAGE_USAGE_COUNTERS_H_
#define TELEMETRY_STORAGE_USAGE_COUNTERS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace telemetry {

struct UsageDelta {
  std::string key;   // the device
  int64_t amount = 0;  // readings admitted since the last report (may be 0)
};

class UsageCounters {
 public:
  virtual ~UsageCounters() = default;

  // Adds each delta to its key's counter and returns the counters' new
  // totals, in order, in one round trip. A key whose counter could not be
  // updated (it holds something else) has a total of -1; the others count.
  // Errors:
  //  - Unavailable: nothing was sent (the store is unreachable); none of
  //    the deltas counts, and the caller may send them again.
  //  - Unknown: sent, but the answer was lost or refused; any part of the
  //    deltas may have counted, so the caller re-baselines.
  // Thread-safe.
  virtual absl::StatusOr<std::vector<int64_t>> AddAll(const std::vector<UsageDelta>& deltas) = 0;
};

}  // namespace telemetry

#endif  // TELEMETRY_STORAGE_USAGE_COUNTERS_H_
