// DeviceUsageSync: its thread against gRPC-like admission threads (run
// under ThreadSanitizer by test.sh), and what it does with each outcome of
// a report.
#include "server/ingest/device_usage_sync.h"

#include <gtest/gtest.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "storage/util/mutex.h"

namespace telemetry::ingest {
namespace {

// The counters in memory, thread-safe, failing on demand.
class FakeUsageCounters : public UsageCounters {
 public:
  absl::StatusOr<std::vector<int64_t>> AddAll(const std::vector<UsageDelta>& deltas) override {
    MutexLock lock(&mu_);
    ++reports_;
    if (fail_with_.code() == absl::StatusCode::kUnavailable) return fail_with_;
    std::vector<int64_t> totals;
    for (const UsageDelta& d : deltas) totals.push_back(totals_[d.key] += d.amount);
    if (!fail_with_.ok()) return fail_with_;  // counted, answer lost
    return totals;
  }
  void FailWith(absl::Status status) {
    MutexLock lock(&mu_);
    fail_with_ = std::move(status);
  }
  int64_t Total() {
    MutexLock lock(&mu_);
    int64_t sum = 0;
    for (const auto& [key, total] : totals_) sum += total;
    return sum;
  }
  int reports() {
    MutexLock lock(&mu_);
    return reports_;
  }

 private:
  Mutex mu_;
  absl::flat_hash_map<std::string, int64_t> totals_ ABSL_GUARDED_BY(mu_);
  absl::Status fail_with_ ABSL_GUARDED_BY(mu_);
  int reports_ ABSL_GUARDED_BY(mu_) = 0;
};

DeviceLimits Limits() {
  DeviceLimits limits;
  limits.readings_per_second = 1e9;  // everything is admitted
  limits.report_usage = true;
  return limits;
}

TEST(DeviceUsageSyncTest, ReportsEverythingAdmittedWhileAdmissionsRunConcurrently) {
  DeviceLimiter limiter(Limits(), 100);
  FakeUsageCounters counters;
  DeviceUsageSync sync(&limiter, &counters, absl::Milliseconds(1), nullptr);
  sync.Start();
  constexpr int kThreads = 4, kCalls = 20'000;
  std::atomic<int64_t> admitted{0};
  std::vector<std::thread> admitters;
  for (int t = 0; t < kThreads; ++t) {
    admitters.emplace_back([&, t] {
      for (int i = 0; i < kCalls; ++i) {
        const std::string device = absl::StrCat("device-", (t * 7 + i) % 50);
        if (limiter.AdmitReadings(device, 3, absl::Now()) == absl::ZeroDuration()) {
          admitted += 3;
        }
      }
    });
  }
  for (std::thread& t : admitters) t.join();
  // The thread keeps reporting while the admissions run; it must have
  // reported at least once by the time they end or soon after.
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (counters.reports() == 0 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(1));  // polled with a deadline
  }
  sync.Stop();
  ASSERT_TRUE(sync.SyncOnce().ok());  // what came after its last report
  EXPECT_GT(counters.reports(), 1);
  EXPECT_EQ(admitted.load(), int64_t{kThreads} * kCalls * 3);
  EXPECT_EQ(counters.Total(), admitted.load());  // nothing lost, nothing twice
  EXPECT_EQ(sync.last_report_ok(), std::optional<bool>(true));
}

TEST(DeviceUsageSyncTest, AReportThatCouldNotBeSentGoesOutWithTheNext) {
  DeviceLimiter limiter(Limits(), 100);
  FakeUsageCounters counters;
  DeviceUsageSync sync(&limiter, &counters, absl::Seconds(1), nullptr);
  EXPECT_EQ(sync.last_report_ok(), std::nullopt);
  (void)limiter.AdmitReadings("d", 40, absl::Now());
  counters.FailWith(absl::UnavailableError("down"));
  EXPECT_EQ(sync.SyncOnce().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(sync.last_report_ok(), std::optional<bool>(false));
  EXPECT_EQ(counters.Total(), 0);
  counters.FailWith(absl::OkStatus());
  (void)limiter.AdmitReadings("d", 2, absl::Now());
  EXPECT_TRUE(sync.SyncOnce().ok());
  EXPECT_EQ(counters.Total(), 42);
  EXPECT_EQ(sync.last_report_ok(), std::optional<bool>(true));
}

TEST(DeviceUsageSyncTest, AReportWithALostAnswerIsNotSentAgain) {
  DeviceLimiter limiter(Limits(), 100);
  FakeUsageCounters counters;
  DeviceUsageSync sync(&limiter, &counters, absl::Seconds(1), nullptr);
  (void)limiter.AdmitReadings("d", 40, absl::Now());
  counters.FailWith(absl::UnknownError("no answer"));
  EXPECT_EQ(sync.SyncOnce().code(), absl::StatusCode::kUnknown);
  EXPECT_EQ(counters.Total(), 40);
  counters.FailWith(absl::OkStatus());
  EXPECT_TRUE(sync.SyncOnce().ok());  // nothing new to report
  EXPECT_EQ(counters.Total(), 40);    // counted once
}

}  // namespace
}  // namespace telemetry::ingest
