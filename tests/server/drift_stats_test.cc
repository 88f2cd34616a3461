#include "server/query/drift_stats.h"

#include <gtest/gtest.h>

#include <cmath>

namespace telemetry::query {
namespace {

TEST(DriftStatsTest, SummarizeMatchesHandComputedValues) {
  // 1..10: mean 5.5, sample sd sqrt(55/6) = 3.0276503540974917.
  std::vector<double> v{1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
  WindowSummary s = Summarize(v);
  EXPECT_EQ(s.count, 10);
  EXPECT_DOUBLE_EQ(s.mean, 5.5);
  EXPECT_NEAR(s.stddev, 3.0276503540974917, 1e-12);
  EXPECT_EQ(s.min, 1);
  EXPECT_EQ(s.max, 10);
  EXPECT_DOUBLE_EQ(s.p50, 5.5);   // type 7: 1 + 0.5 * 9 = 5.5th value
  EXPECT_DOUBLE_EQ(s.p90, 9.1);   // 1 + 0.9 * 9 = 9.1
  EXPECT_DOUBLE_EQ(s.p99, 9.91);
  EXPECT_EQ(Summarize({}).count, 0);
}

TEST(DriftStatsTest, KsStatisticOfShiftedSamples) {
  // a = {1,2,3,4}, b = {3,4,5,6}: at x = 2, F_a = 0.5, F_b = 0 -> D = 0.5.
  EXPECT_DOUBLE_EQ(KsStatistic({1, 2, 3, 4}, {3, 4, 5, 6}), 0.5);
  // Disjoint samples: D = 1. Identical: D = 0.
  EXPECT_DOUBLE_EQ(KsStatistic({1, 2}, {3, 4}), 1.0);
  EXPECT_DOUBLE_EQ(KsStatistic({1, 2, 2, 3}, {1, 2, 2, 3}), 0.0);
  // Ties across samples are consumed together: a = {1,1,2}, b = {1,2,2}.
  // x=1: 2/3 - 1/3 = 1/3; x=2: 1 - 1 = 0.
  EXPECT_NEAR(KsStatistic({1, 1, 2}, {1, 2, 2}), 1.0 / 3, 1e-15);
}

TEST(DriftStatsTest, KsPValueFollowsTheKolmogorovDistribution) {
  // n = m = 100, D = 0.2: ne = 50, lambda = (7.07107 + 0.12 + 0.01556) * 0.2
  // = 1.441325; Q = 2 (e^-4.15484 - e^-16.6194 + ...) = 0.0313767.
  EXPECT_NEAR(KsPValue(0.2, 100, 100), 0.0313767, 1e-6);
  EXPECT_NEAR(KsPValue(0.0, 100, 100), 1.0, 1e-12);
  EXPECT_LT(KsPValue(1.0, 1000, 1000), 1e-100);
}

TEST(DriftStatsTest, PsiIsZeroForTheSameDistributionAndMatchesHandValues) {
  std::vector<double> ref{1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
  EXPECT_NEAR(PopulationStabilityIndex(ref, ref, 2), 0.0, 1e-12);
  // Two bins split at the reference median 5.5: reference 50/50; current
  // {1,2,3,4,5,6,7,8} -> 5 below, 3 above = 0.625/0.375.
  // PSI = (0.625-0.5) ln(1.25) + (0.375-0.5) ln(0.75) = 0.0638532...
  std::vector<double> cur{1, 2, 3, 4, 5, 6, 7, 8};
  double expected = 0.125 * std::log(1.25) - 0.125 * std::log(0.75);
  EXPECT_NEAR(PopulationStabilityIndex(ref, cur, 2), expected, 1e-12);
}

TEST(DriftStatsTest, PsiSmoothsEmptyBins) {
  std::vector<double> ref{1, 2, 3, 4};
  std::vector<double> cur{100, 101};  // everything in the top bin
  double psi = PopulationStabilityIndex(ref, cur, 2);
  // Bins split at 2.5: ref 0.5/0.5; cur 1e-4/1.
  double expected = (1e-4 - 0.5) * std::log(1e-4 / 0.5) + (1 - 0.5) * std::log(1 / 0.5);
  EXPECT_NEAR(psi, expected, 1e-12);
  EXPECT_TRUE(std::isfinite(psi));
}

}  // namespace
}  // namespace telemetry::query
