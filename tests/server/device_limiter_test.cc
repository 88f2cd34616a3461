#include "server/ingest/device_limiter.h"

#include <functional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace telemetry::ingest {
namespace {

const absl::Time kStart = absl::FromUnixSeconds(1'700'000'000);

TEST(DeviceLimiterTest, UnlimitedByDefaultForReadings) {
  DeviceLimiter limiter(DeviceLimits{}, 10'000);
  for (int i = 0; i < 100; ++i) {
    EXPECT_EQ(limiter.AdmitReadings("d", 10'000, kStart), absl::ZeroDuration());
  }
}

TEST(DeviceLimiterTest, BurstThenSustainedRateWithExactWaitHints) {
  DeviceLimits limits;
  limits.readings_per_second = 1000;
  limits.burst_readings = 2000;
  DeviceLimiter limiter(limits, /*max_batch_readings=*/500);
  // A full bucket admits the burst, then refuses with the time to refill.
  EXPECT_EQ(limiter.AdmitReadings("d", 2000, kStart), absl::ZeroDuration());
  EXPECT_EQ(limiter.AdmitReadings("d", 500, kStart), absl::Milliseconds(500));
  // A refusal takes nothing: after 250 ms, 250 tokens, 250 ms still to go.
  EXPECT_EQ(limiter.AdmitReadings("d", 500, kStart + absl::Milliseconds(250)),
            absl::Milliseconds(250));
  EXPECT_EQ(limiter.AdmitReadings("d", 500, kStart + absl::Milliseconds(500)),
            absl::ZeroDuration());
  // The bucket never holds more than the burst, however long the device idles.
  EXPECT_EQ(limiter.AdmitReadings("d", 2000, kStart + absl::Hours(1)), absl::ZeroDuration());
  EXPECT_GT(limiter.AdmitReadings("d", 1, kStart + absl::Hours(1)), absl::ZeroDuration());
}

TEST(DeviceLimiterTest, DevicesHaveSeparateBuckets) {
  DeviceLimits limits;
  limits.readings_per_second = 100;
  DeviceLimiter limiter(limits, /*max_batch_readings=*/100);
  EXPECT_EQ(limiter.AdmitReadings("a", 100, kStart), absl::ZeroDuration());
  EXPECT_GT(limiter.AdmitReadings("a", 1, kStart), absl::ZeroDuration());
  EXPECT_EQ(limiter.AdmitReadings("b", 100, kStart), absl::ZeroDuration());
}

TEST(DeviceLimiterTest, TheLargestValidBatchAlwaysFitsEventually) {
  // A burst below the batch limit would refuse big batches forever; the
  // bucket is sized up to the batch limit instead.
  DeviceLimits limits;
  limits.readings_per_second = 10;
  limits.burst_readings = 5;
  DeviceLimiter limiter(limits, /*max_batch_readings=*/1000);
  EXPECT_EQ(limiter.AdmitReadings("d", 1000, kStart), absl::ZeroDuration());
  const absl::Duration wait = limiter.AdmitReadings("d", 1000, kStart);
  EXPECT_EQ(wait, absl::Seconds(100));
  EXPECT_EQ(limiter.AdmitReadings("d", 1000, kStart + wait), absl::ZeroDuration());
}

TEST(DeviceLimiterTest, HintsAreNeverZero) {
  DeviceLimits limits;
  limits.readings_per_second = 1'000'000;
  DeviceLimiter limiter(limits, /*max_batch_readings=*/1'000'000);
  EXPECT_EQ(limiter.AdmitReadings("d", 1'000'000, kStart), absl::ZeroDuration());
  EXPECT_EQ(limiter.AdmitReadings("d", 1, kStart), absl::Milliseconds(1));
}

TEST(DeviceLimiterTest, StreamCapCountsOpenAndClosedStreams) {
  DeviceLimits limits;
  limits.max_streams = 2;
  DeviceLimiter limiter(limits, 100);
  EXPECT_TRUE(limiter.OpenStream("d"));
  EXPECT_TRUE(limiter.OpenStream("d"));
  EXPECT_FALSE(limiter.OpenStream("d"));
  EXPECT_TRUE(limiter.OpenStream("other"));
  limiter.CloseStream("d");
  EXPECT_TRUE(limiter.OpenStream("d"));
  EXPECT_FALSE(limiter.OpenStream("d"));
}

TEST(DeviceLimiterTest, PruningIdleDevicesKeepsTheirLimits) {
  // Thousands of devices come and go; pruning (every 4096 calls) must not
  // forget a device that is still over its rate or holds streams.
  DeviceLimits limits;
  limits.readings_per_second = 10;
  limits.max_streams = 1;
  DeviceLimiter limiter(limits, /*max_batch_readings=*/10);
  ASSERT_TRUE(limiter.OpenStream("busy"));
  EXPECT_EQ(limiter.AdmitReadings("busy", 10, kStart), absl::ZeroDuration());
  for (int i = 0; i < 10'000; ++i) {
    (void)limiter.AdmitReadings(absl::StrCat("idle-", i), 1, kStart);
  }
  EXPECT_GT(limiter.AdmitReadings("busy", 10, kStart), absl::ZeroDuration());
  EXPECT_FALSE(limiter.OpenStream("busy"));
}


// The cluster's counters in memory: what RedisUsageCounters keeps in Redis.
class FakeCounters {
 public:
  std::vector<int64_t> AddAll(const std::vector<UsageDelta>& deltas) {
    std::vector<int64_t> totals;
    for (const UsageDelta& d : deltas) totals.push_back(totals_[d.key] += d.amount);
    return totals;
  }
  void Expire(const std::string& key) { totals_.erase(key); }

 private:
  absl::flat_hash_map<std::string, int64_t> totals_;
};

void Sync(DeviceLimiter& limiter, FakeCounters& counters, absl::Time now) {
  std::vector<UsageDelta> reported = limiter.TakeUnreported();
  limiter.ChargeClusterUsage(reported, counters.AddAll(reported), now);
}

DeviceLimits ClusterLimits(double rate, double burst) {
  DeviceLimits limits;
  limits.readings_per_second = rate;
  limits.burst_readings = burst;
  limits.report_usage = true;
  return limits;
}

// Gateways that each admit whatever their limiter allows, batch by batch,
// with the device spread over them as `gateway_for(t)` says, syncing every
// `sync` of simulated time. Returns the readings admitted in `span`.
int64_t Simulate(std::vector<DeviceLimiter*> gateways, FakeCounters* counters,
                 absl::Duration span, absl::Duration sync,
                 const std::function<size_t(absl::Duration)>& gateway_for,
                 int batch = 10, absl::Duration step = absl::Milliseconds(1)) {
  int64_t admitted = 0;
  absl::Duration since_sync;
  for (absl::Duration t; t < span; t += step) {
    DeviceLimiter* g = gateways[gateway_for(t) % gateways.size()];
    if (g->AdmitReadings("d", batch, kStart + t) == absl::ZeroDuration()) admitted += batch;
    since_sync += step;
    if (counters != nullptr && since_sync >= sync) {
      since_sync = absl::ZeroDuration();
      for (DeviceLimiter* each : gateways) Sync(*each, *counters, kStart + t);
    }
  }
  return admitted;
}

TEST(DeviceLimiterClusterTest, GatewaysSharingTheCountersHoldADeviceToOneRate) {
  // One device sends as fast as it can, every batch to the next of three
  // gateways (unary calls behind round_robin). 10 batches of 10 readings
  // per millisecond: far over its 1000 readings/s.
  const double rate = 1000;
  FakeCounters counters;
  DeviceLimiter a(ClusterLimits(rate, 1000), 10), b(ClusterLimits(rate, 1000), 10),
      c(ClusterLimits(rate, 1000), 10);
  int batch = 0;
  const int64_t admitted = Simulate({&a, &b, &c}, &counters, absl::Seconds(60),
                                    absl::Milliseconds(250),
                                    [&](absl::Duration) { return batch++; });
  // One bucket's worth plus the rate, and what the other two gateways can
  // admit before they learn of it (a bucket and an interval each), bounds
  // it from above; in the long run it is the rate.
  const double expected = rate * 60;
  EXPECT_LE(admitted, expected + 1000 + 2 * (1000 + rate * 0.25));
  EXPECT_GE(admitted, expected * 0.95);

  // Without the counters each gateway holds it to the rate alone: three
  // times over.
  DeviceLimiter x(ClusterLimits(rate, 1000), 10), y(ClusterLimits(rate, 1000), 10),
      z(ClusterLimits(rate, 1000), 10);
  const int64_t alone = Simulate({&x, &y, &z}, nullptr, absl::Seconds(60),
                                 absl::Milliseconds(250), [&](absl::Duration) { return batch++; });
  EXPECT_GE(alone, 2.9 * expected);
}

TEST(DeviceLimiterClusterTest, ADeviceMovingBetweenGatewaysKeepsItsRate) {
  // Its stream moves every 7 s (a gateway restarted, max_connection_age).
  const double rate = 500;
  FakeCounters counters;
  DeviceLimiter a(ClusterLimits(rate, 500), 10), b(ClusterLimits(rate, 500), 10);
  const int64_t admitted = Simulate(
      {&a, &b}, &counters, absl::Seconds(60), absl::Seconds(1),
      [](absl::Duration t) { return static_cast<size_t>(absl::ToInt64Seconds(t) / 7); });
  // Each move may hand the device a fresh bucket (the new gateway has not
  // yet charged it what the old one admitted): at most one per move.
  EXPECT_LE(admitted, rate * 60 + 500 + 9 * 500);
  EXPECT_GE(admitted, rate * 60 * 0.95);
}

TEST(DeviceLimiterClusterTest, UsageUnderTheRateElsewhereDoesNotThrottleHere) {
  // 40% of the rate through one gateway, 40% through the other: 80% in all,
  // so neither may refuse anything, however the reports fall.
  const double rate = 1000;
  FakeCounters counters;
  DeviceLimiter a(ClusterLimits(rate, 100), 10), b(ClusterLimits(rate, 100), 10);
  int64_t refused = 0;
  for (int ms = 0; ms < 30'000; ++ms) {
    const absl::Time now = kStart + absl::Milliseconds(ms);
    if (ms % 25 == 0 && a.AdmitReadings("d", 10, now) != absl::ZeroDuration()) ++refused;
    if (ms % 25 == 12 && b.AdmitReadings("d", 10, now) != absl::ZeroDuration()) ++refused;
    if (ms % 1000 == 999) {
      Sync(a, counters, now);
      Sync(b, counters, now);
    }
  }
  EXPECT_EQ(refused, 0);
}

TEST(DeviceLimiterClusterTest, UsageElsewhereOverTheRateThrottlesHere) {
  const double rate = 100;
  FakeCounters counters;
  DeviceLimiter a(ClusterLimits(rate, 100), 10), b(ClusterLimits(rate, 100), 10);
  // b's first report only sets its baseline; a's too.
  EXPECT_EQ(b.AdmitReadings("d", 10, kStart), absl::ZeroDuration());
  Sync(a, counters, kStart);
  Sync(b, counters, kStart);
  // a admits a whole bucket; b hears of it at the next report.
  EXPECT_EQ(a.AdmitReadings("d", 100, kStart), absl::ZeroDuration());
  Sync(a, counters, kStart);
  EXPECT_EQ(b.AdmitReadings("d", 10, kStart), absl::ZeroDuration());
  Sync(b, counters, kStart);
  // b's bucket now owes a's 100: 80 tokens left - 100 = -20, so 10 more
  // readings need 300 ms.
  EXPECT_EQ(b.AdmitReadings("d", 10, kStart), absl::Milliseconds(300));
}

TEST(DeviceLimiterClusterTest, ADebtIsAtMostOneBucket) {
  const double rate = 100;
  FakeCounters counters;
  DeviceLimiter a(ClusterLimits(rate, 100), 10), b(ClusterLimits(rate, 100), 10);
  EXPECT_EQ(b.AdmitReadings("d", 10, kStart), absl::ZeroDuration());
  Sync(b, counters, kStart);
  EXPECT_EQ(b.AdmitReadings("d", 10, kStart), absl::ZeroDuration());
  // A million readings elsewhere (reported by hand) cost b one bucket.
  counters.AddAll({{"d", 1'000'000}});
  Sync(b, counters, kStart);
  EXPECT_EQ(b.AdmitReadings("d", 10, kStart), absl::Milliseconds(1100));
}

TEST(DeviceLimiterClusterTest, AFirstReportAShrunkTotalOrAFailedReportOnlySetBaselines) {
  const double rate = 100;
  FakeCounters counters;
  counters.AddAll({{"d", 5'000}});  // used elsewhere before b ever saw it
  DeviceLimiter b(ClusterLimits(rate, 100), 10);
  EXPECT_EQ(b.AdmitReadings("d", 10, kStart), absl::ZeroDuration());
  Sync(b, counters, kStart);  // baseline: the 5000 are not charged
  EXPECT_EQ(b.AdmitReadings("d", 90, kStart), absl::ZeroDuration());

  // The counter expired: its new total is smaller than the baseline.
  counters.Expire("d");
  Sync(b, counters, kStart + absl::Seconds(1));
  EXPECT_EQ(b.AdmitReadings("d", 100, kStart + absl::Seconds(1)), absl::ZeroDuration());

  // A report that failed may have been counted: no charge for it either.
  std::vector<UsageDelta> lost = b.TakeUnreported();
  ASSERT_EQ(lost.size(), 1u);
  EXPECT_EQ(lost[0].amount, 100);
  counters.AddAll(lost);  // it did arrive, but the answer did not
  b.ReportFailed(lost);
  EXPECT_EQ(b.AdmitReadings("d", 100, kStart + absl::Seconds(2)), absl::ZeroDuration());
  Sync(b, counters, kStart + absl::Seconds(2));
  EXPECT_EQ(b.AdmitReadings("d", 100, kStart + absl::Seconds(3)), absl::ZeroDuration());
}

TEST(DeviceLimiterClusterTest, AFailedCounterOnlySetsThatDevicesBaseline) {
  FakeCounters counters;
  DeviceLimiter b(ClusterLimits(100, 100), 10);
  (void)b.AdmitReadings("d", 10, kStart);
  Sync(b, counters, kStart);  // baseline 10
  counters.AddAll({{"d", 1'000}});  // elsewhere
  std::vector<UsageDelta> reported = b.TakeUnreported();
  EXPECT_TRUE(reported.empty());
  (void)b.AdmitReadings("d", 10, kStart);
  reported = b.TakeUnreported();
  // The counter could not be updated (-1): no charge, and a new baseline
  // from the next total.
  b.ChargeClusterUsage(reported, {-1}, kStart);
  EXPECT_EQ(b.AdmitReadings("d", 80, kStart), absl::ZeroDuration());
}

TEST(DeviceLimiterClusterTest, UsageThatWasNeverSentGoesWithTheNextReport) {
  const double rate = 100;
  FakeCounters counters;
  DeviceLimiter a(ClusterLimits(rate, 100), 10), b(ClusterLimits(rate, 100), 10);
  for (DeviceLimiter* g : {&a, &b}) {
    (void)g->AdmitReadings("d", 10, kStart);
    Sync(*g, counters, kStart);  // baselines
  }
  // a admits 60; its report cannot be sent, so it is handed back...
  EXPECT_EQ(a.AdmitReadings("d", 60, kStart), absl::ZeroDuration());
  std::vector<UsageDelta> unsent = a.TakeUnreported();
  a.ReturnUnreported(unsent);
  EXPECT_EQ(a.AdmitReadings("d", 20, kStart), absl::ZeroDuration());
  // ...and goes with the next one, whole: 80, and b is charged all of it.
  std::vector<UsageDelta> next = a.TakeUnreported();
  ASSERT_EQ(next.size(), 1u);
  EXPECT_EQ(next[0].amount, 80);
  a.ChargeClusterUsage(next, counters.AddAll(next), kStart);
  // b (90 left) admits 5 more, reports, and is charged a's 80: 5 left.
  EXPECT_EQ(b.AdmitReadings("d", 5, kStart), absl::ZeroDuration());
  Sync(b, counters, kStart);
  EXPECT_NE(b.AdmitReadings("d", 10, kStart), absl::ZeroDuration());
  EXPECT_EQ(b.AdmitReadings("d", 5, kStart), absl::ZeroDuration());
}

TEST(DeviceLimiterClusterTest, UnreportedUsageSurvivesPruningAndIsTakenOnce) {
  DeviceLimiter limiter(ClusterLimits(10, 10), 10);
  EXPECT_EQ(limiter.AdmitReadings("quiet", 7, kStart), absl::ZeroDuration());
  // Long after, thousands of other devices trigger pruning: "quiet" is
  // refilled and idle, but its 7 readings are not reported yet.
  for (int i = 0; i < 10'000; ++i) {
    (void)limiter.AdmitReadings(absl::StrCat("other-", i), 1, kStart + absl::Hours(1));
  }
  int64_t quiet = 0;
  for (const UsageDelta& d : limiter.TakeUnreported()) {
    if (d.key == "quiet") quiet = d.amount;
  }
  EXPECT_EQ(quiet, 7);
  EXPECT_TRUE(limiter.TakeUnreported().empty());
}

TEST(DeviceLimiterClusterTest, NothingIsKeptForReportsUnlessAsked) {
  DeviceLimits limits;
  limits.readings_per_second = 10;
  DeviceLimiter limiter(limits, 10);
  EXPECT_EQ(limiter.AdmitReadings("d", 10, kStart), absl::ZeroDuration());
  EXPECT_TRUE(limiter.TakeUnreported().empty());
}

}  // namespace
}  // namespace telemetry::ingest
