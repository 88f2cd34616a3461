#include "server/ingest/device_limiter.h"

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

}  // namespace
}  // namespace telemetry::ingest
