// Holds each device to one rate limit across all the gateways of a cluster:
// every `interval` this reports what the local limiter admitted to the
// shared usage counters (Redis) and charges the limiter with what the other
// gateways admitted meanwhile (DeviceLimiter::ChargeClusterUsage).
//
// It runs on its own thread, never on the write path: an admission costs a
// lookup in local memory whatever Redis does. The price is a lag of one
// interval: until a gateway hears of the others, each may admit one bucket
// and one interval of the rate (see docs/operations.md). While the counters
// cannot be reached, every gateway holds devices to the rate by itself.
//
// Start, Stop and last_report_ok are thread-safe; Stop() (or the
// destructor) joins the thread.
#ifndef TELEMETRY_SERVER_INGEST_DEVICE_USAGE_SYNC_H_
#define TELEMETRY_SERVER_INGEST_DEVICE_USAGE_SYNC_H_

#include <atomic>
#include <cstdint>
#include <optional>
#include <thread>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "server/ingest/device_limiter.h"
#include "server/ingest/ingest_metrics.h"
#include "storage/usage_counters.h"
#include "storage/util/mutex.h"

namespace telemetry::ingest {

class DeviceUsageSync {
 public:
  // `limiter` and `counters` must outlive this; `metrics` is nullable.
  DeviceUsageSync(DeviceLimiter* limiter, UsageCounters* counters, absl::Duration interval,
                  IngestMetrics* metrics);
  ~DeviceUsageSync();

  void Start();
  // Stops the thread after its current report. Idempotent.
  void Stop();

  // One report and its charges: the thread's step, for tests that do not
  // Start() the thread (two at once would apply totals out of order).
  absl::Status SyncOnce();

  // Whether the last report reached the counters (the status page); unset
  // before the first report.
  std::optional<bool> last_report_ok() const {
    const State state = state_.load();
    if (state == kNotYet) return std::nullopt;
    return state == kReporting;
  }

 private:
  void Loop();

  DeviceLimiter* const limiter_;
  UsageCounters* const counters_;
  const absl::Duration interval_;
  IngestMetrics* const metrics_;
  Notification stop_;
  std::thread thread_;
  // What the last report did; each change is logged once.
  enum State { kNotYet, kReporting, kFailing };
  std::atomic<State> state_{kNotYet};
  std::atomic<bool> stopped_{false};
};

}  // namespace telemetry::ingest

#endif  // TELEMETRY_SERVER_INGEST_DEVICE_USAGE_SYNC_H_
