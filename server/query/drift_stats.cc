#include "server/query/drift_stats.h"

#include <algorithm>
#include <cmath>

namespace telemetry::query {

double Quantile(const std::vector<double>& sorted, double q) {
  double pos = q * static_cast<double>(sorted.size() - 1);
  size_t lo = static_cast<size_t>(std::floor(pos));
  size_t hi = std::min(lo + 1, sorted.size() - 1);
  double frac = pos - static_cast<double>(lo);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * frac;
}

WindowSummary Summarize(const std::vector<double>& sorted) {
  WindowSummary s;
  s.count = static_cast<int64_t>(sorted.size());
  if (sorted.empty()) return s;
  double sum = 0;
  for (double v : sorted) sum += v;
  s.mean = sum / static_cast<double>(sorted.size());
  if (sorted.size() > 1) {
    double ss = 0;
    for (double v : sorted) ss += (v - s.mean) * (v - s.mean);
    s.stddev = std::sqrt(ss / static_cast<double>(sorted.size() - 1));
  }
  s.min = sorted.front();
  s.max = sorted.back();
  s.p50 = Quantile(sorted, 0.50);
  s.p90 = Quantile(sorted, 0.90);
  s.p99 = Quantile(sorted, 0.99);
  return s;
}

double KsStatistic(const std::vector<double>& a, const std::vector<double>& b) {
  if (a.empty() || b.empty()) return 0;
  const double na = static_cast<double>(a.size());
  const double nb = static_cast<double>(b.size());
  size_t i = 0, j = 0;
  double d = 0;
  // Walk both ECDFs in merged order; compare after consuming all ties.
  while (i < a.size() && j < b.size()) {
    double x = std::min(a[i], b[j]);
    while (i < a.size() && a[i] == x) ++i;
    while (j < b.size() && b[j] == x) ++j;
    d = std::max(d, std::fabs(static_cast<double>(i) / na - static_cast<double>(j) / nb));
  }
  return d;
}

double KsPValue(double d, int64_t n, int64_t m) {
  if (n <= 0 || m <= 0) return 1;
  double ne = static_cast<double>(n) * static_cast<double>(m) /
              static_cast<double>(n + m);
  double sq = std::sqrt(ne);
  double lambda = (sq + 0.12 + 0.11 / sq) * d;
  if (lambda < 1e-3) return 1;
  // Q_KS(lambda) = 2 sum_{j>=1} (-1)^{j-1} exp(-2 j^2 lambda^2)
  double sum = 0, sign = 1, prev = 0;
  for (int j = 1; j <= 100; ++j) {
    double term = sign * std::exp(-2.0 * j * j * lambda * lambda);
    sum += term;
    if (std::fabs(term) <= 1e-10 * std::fabs(prev) || std::fabs(term) <= 1e-300) break;
    prev = term;
    sign = -sign;
  }
  return std::clamp(2 * sum, 0.0, 1.0);
}

double PopulationStabilityIndex(const std::vector<double>& reference,
                                const std::vector<double>& current, int bins) {
  if (reference.empty() || current.empty() || bins < 2) return 0;
  std::vector<double> edges;  // inner edges, strictly increasing
  for (int i = 1; i < bins; ++i) {
    double e = Quantile(reference, static_cast<double>(i) / bins);
    if (edges.empty() || e > edges.back()) edges.push_back(e);
  }
  auto proportions = [&](const std::vector<double>& sample) {
    std::vector<double> counts(edges.size() + 1, 0);
    for (double v : sample) {
      // Bin k holds [edges[k-1], edges[k]).
      size_t k = static_cast<size_t>(
          std::upper_bound(edges.begin(), edges.end(), v) - edges.begin());
      counts[k] += 1;
    }
    for (double& c : counts) {
      c = std::max(c / static_cast<double>(sample.size()), 1e-4);
    }
    return counts;
  };
  std::vector<double> r = proportions(reference);
  std::vector<double> c = proportions(current);
  double psi = 0;
  for (size_t k = 0; k < r.size(); ++k) psi += (c[k] - r[k]) * std::log(c[k] / r[k]);
  return psi;
}

}  // namespace telemetry::query
