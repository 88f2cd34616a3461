#include "server/ingest/device_usage_sync.h"

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "server/common/log.h"

namespace telemetry::ingest {

DeviceUsageSync::DeviceUsageSync(DeviceLimiter* limiter, UsageCounters* counters,
                                 absl::Duration interval, IngestMetrics* metrics)
    : limiter_(limiter), counters_(counters), interval_(interval), metrics_(metrics) {}

DeviceUsageSync::~DeviceUsageSync() { Stop(); }

void DeviceUsageSync::Start() {
  thread_ = std::thread([this] { Loop(); });
}

void DeviceUsageSync::Stop() {
  if (stopped_.exchange(true)) return;
  stop_.Notify();
  if (thread_.joinable()) thread_.join();
}

absl::Status DeviceUsageSync::SyncOnce() {
  std::vector<UsageDelta> reported = limiter_->TakeUnreported();
  if (reported.empty()) return absl::OkStatus();
  absl::StatusOr<std::vector<int64_t>> totals = counters_->AddAll(reported);
  const bool ok = totals.ok() && totals->size() == reported.size();
  if (metrics_ != nullptr) {
    (ok ? metrics_->device_usage_reports_ok : metrics_->device_usage_reports_failed)
        .Increment();
  }
  if (!ok) {
    if (absl::IsUnavailable(totals.status())) {
      limiter_->ReturnUnreported(reported);  // not sent: it goes with the next
    } else {
      limiter_->ReportFailed(reported);  // may have counted: new baselines
    }
    if (state_.exchange(kFailing) != kFailing) {
      Log(LogLevel::kWarning,
          "cannot report device usage to Redis: each gateway holds devices to the rate "
          "limit by itself until it can",
          {{"error", totals.ok() ? std::string("short answer")
                                 : std::string(totals.status().message())}});
    }
    return totals.ok() ? absl::InternalError("the counters answered a short list")
                       : totals.status();
  }
  limiter_->ChargeClusterUsage(reported, *totals, absl::Now());
  if (state_.exchange(kReporting) != kReporting) {
    Log(LogLevel::kInfo, "device rate limits are cluster-wide (usage reported to Redis)",
        {{"devices_in_report", absl::StrCat(reported.size())}});
  }
  return absl::OkStatus();
}

void DeviceUsageSync::Loop() {
  // On a fixed schedule: a slow report does not push the next ones back.
  absl::Time next = absl::Now() + interval_;
  while (!stop_.WaitForNotificationWithTimeout(next - absl::Now())) {
    (void)SyncOnce();
    next = std::max(next + interval_, absl::Now());
  }
}

}  // namespace telemetry::ingest
