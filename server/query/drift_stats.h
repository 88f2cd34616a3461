// Statistics for drift checks: window summaries, the two-sample
// Kolmogorov-Smirnov test and the population stability index. Pure
// functions over sorted samples, unit-tested against hand-computed values.
#ifndef TELEMETRY_SERVER_QUERY_DRIFT_STATS_H_
#define TELEMETRY_SERVER_QUERY_DRIFT_STATS_H_

#include <cstdint>
#include <vector>

namespace telemetry::query {

struct WindowSummary {
  int64_t count = 0;
  double mean = 0, stddev = 0, min = 0, max = 0, p50 = 0, p90 = 0, p99 = 0;
};

// `sorted` ascending. Quantiles interpolate linearly between order
// statistics (Hyndman-Fan type 7, numpy's default); stddev is the sample
// standard deviation (n - 1). All zero for an empty sample.
WindowSummary Summarize(const std::vector<double>& sorted);

// Quantile q in [0, 1] of an ascending sample (type 7). REQUIRES: non-empty.
double Quantile(const std::vector<double>& sorted, double q);

// Two-sample KS statistic D = sup |F_a(x) - F_b(x)| over ascending samples;
// 0 when either is empty.
double KsStatistic(const std::vector<double>& a, const std::vector<double>& b);

// Asymptotic p-value of D for sample sizes n and m (Kolmogorov distribution
// with the Stephens small-sample correction, as in Numerical Recipes).
double KsPValue(double d, int64_t n, int64_t m);

// PSI of `current` against `reference` (both ascending) over `bins` bins
// whose inner edges are the reference's quantiles i/bins; a bin is
// [edge_i, edge_i+1) and the outer bins are open-ended. Empty bins count as
// proportion 1e-4 so the index stays finite. 0 when either is empty.
double PopulationStabilityIndex(const std::vector<double>& reference,
                                const std::vector<double>& current, int bins);

}  // namespace telemetry::query

#endif  // TELEMETRY_SERVER_QUERY_DRIFT_STATS_H_
