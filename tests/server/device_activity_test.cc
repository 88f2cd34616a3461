// The status page's per-device figures: counts, the decaying rate, the
// order and the bound on devices tracked.
#include "server/ingest/device_activity.h"

#include <gtest/gtest.h>

#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"

namespace telemetry::ingest {
namespace {

const absl::Time kT0 = absl::FromUnixSeconds(1'796'000'000);

TEST(DeviceActivityTest, CountsWhatEachDeviceSent) {
  DeviceActivity a;
  a.RecordBatch("dev-a", 100, 5, 2, kT0);
  a.RecordBatch("dev-a", 50, 0, 1, kT0 + absl::Seconds(1));
  a.RecordRefusal("dev-a", kT0 + absl::Seconds(2));
  a.RecordBatch("dev-b", 7, 0, 0, kT0 + absl::Seconds(1));
  std::vector<DeviceActivityRow> rows = a.MostRecent(10, kT0 + absl::Seconds(2));
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0].device, "dev-a");  // heard from last
  EXPECT_EQ(rows[0].stored, 150);
  EXPECT_EQ(rows[0].duplicates, 5);
  EXPECT_EQ(rows[0].rejected, 3);
  EXPECT_EQ(rows[0].refused_batches, 1);
  EXPECT_EQ(rows[0].last_seen, kT0 + absl::Seconds(2));
  EXPECT_EQ(rows[1].device, "dev-b");
  EXPECT_EQ(rows[1].stored, 7);
  EXPECT_EQ(a.tracked(), 2u);
}

TEST(DeviceActivityTest, ASteadyRateConvergesToItAndDecaysWhenTheDeviceFallsSilent) {
  DeviceActivity a(100, absl::Minutes(1));
  // 200 readings/s for 5 minutes, one batch a second.
  absl::Time t = kT0;
  for (int i = 0; i < 300; ++i, t += absl::Seconds(1)) a.RecordBatch("d", 200, 0, 0, t);
  const double steady = a.MostRecent(1, t).front().stored_per_second;
  EXPECT_NEAR(steady, 200, 200 * 0.02);
  EXPECT_NEAR(a.TotalStoredPerSecond(t), steady, 1e-9);
  // One window of silence: down to 1/e.
  const double later = a.MostRecent(1, t + absl::Minutes(1)).front().stored_per_second;
  EXPECT_NEAR(later, steady / 2.718281828, steady * 0.01);
  EXPECT_LT(a.MostRecent(1, t + absl::Minutes(10)).front().stored_per_second, 0.01);
  // Duplicates and refusals are not stored readings.
  DeviceActivity b;
  b.RecordBatch("d", 0, 500, 0, kT0);
  b.RecordRefusal("d", kT0);
  EXPECT_EQ(b.MostRecent(1, kT0).front().stored_per_second, 0);
}

TEST(DeviceActivityTest, KeepsAtMostTheBoundForgettingTheLeastRecentlyHeardFrom) {
  DeviceActivity a(3);
  a.RecordBatch("old", 1, 0, 0, kT0);
  a.RecordBatch("mid", 1, 0, 0, kT0 + absl::Seconds(1));
  a.RecordBatch("new", 1, 0, 0, kT0 + absl::Seconds(2));
  a.RecordBatch("old", 1, 0, 0, kT0 + absl::Seconds(3));  // heard again: now the newest
  a.RecordBatch("fourth", 1, 0, 0, kT0 + absl::Seconds(4));
  EXPECT_EQ(a.tracked(), 3u);
  std::vector<DeviceActivityRow> rows = a.MostRecent(10, kT0 + absl::Seconds(4));
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[0].device, "fourth");
  EXPECT_EQ(rows[1].device, "old");
  EXPECT_EQ(rows[1].stored, 2);
  EXPECT_EQ(rows[2].device, "new");  // "mid" was forgotten
  EXPECT_EQ(a.MostRecent(1, kT0 + absl::Seconds(4)).size(), 1u);
}

TEST(DeviceActivityTest, AFleetLargerThanTheBoundForgetsAnEighthAtATime) {
  DeviceActivity a(800);
  for (int i = 0; i < 800; ++i) {
    a.RecordBatch(absl::StrCat("d", i), 1, 0, 0, kT0 + absl::Seconds(i));
  }
  EXPECT_EQ(a.tracked(), 800u);
  a.RecordBatch("late", 1, 0, 0, kT0 + absl::Seconds(800));
  EXPECT_EQ(a.tracked(), 701u);  // d0..d99 forgotten, then "late" added
  std::vector<DeviceActivityRow> rows = a.MostRecent(1000, kT0 + absl::Seconds(800));
  ASSERT_EQ(rows.size(), 701u);
  EXPECT_EQ(rows.front().device, "late");
  EXPECT_EQ(rows.back().device, "d100");
  // The next 99 new devices fit without another pass.
  for (int i = 0; i < 99; ++i) {
    a.RecordBatch(absl::StrCat("n", i), 1, 0, 0, kT0 + absl::Seconds(900 + i));
  }
  EXPECT_EQ(a.tracked(), 800u);
}

TEST(DeviceActivityTest, AnEarlierTimestampFromAnotherThreadDoesNotMoveLastSeenBack) {
  DeviceActivity a;
  a.RecordBatch("d", 10, 0, 0, kT0 + absl::Seconds(5));
  a.RecordBatch("d", 10, 0, 0, kT0);
  DeviceActivityRow row = a.MostRecent(1, kT0 + absl::Seconds(5)).front();
  EXPECT_EQ(row.last_seen, kT0 + absl::Seconds(5));
  EXPECT_EQ(row.stored, 20);
}

// Batches answered on many threads while the page reads (run under
// ThreadSanitizer by test.sh); nothing is lost.
TEST(DeviceActivityTest, ConcurrentRecordsAndReadsLoseNothing) {
  DeviceActivity a(50);
  constexpr int kThreads = 4, kBatches = 2000;
  std::vector<std::thread> writers;
  for (int t = 0; t < kThreads; ++t) {
    writers.emplace_back([&a, t] {
      for (int i = 0; i < kBatches; ++i) {
        a.RecordBatch(absl::StrCat("dev-", t, "-", i % 10), 3, 0, 0, kT0 + absl::Milliseconds(i));
      }
    });
  }
  for (int i = 0; i < 200; ++i) {
    EXPECT_LE(a.MostRecent(100, kT0).size(), 40u);
    (void)a.TotalStoredPerSecond(kT0);
  }
  for (std::thread& w : writers) w.join();
  int64_t stored = 0;
  for (const DeviceActivityRow& r : a.MostRecent(100, kT0)) stored += r.stored;
  EXPECT_EQ(stored, int64_t{kThreads} * kBatches * 3);
}

}  // namespace
}  // namespace telemetry::ingest
