// Histogram buckets every latency metric of both services uses, so that
// dashboards and alerts compare like with like. Header only.
#ifndef TELEMETRY_SERVER_COMMON_LATENCY_BUCKETS_H_
#define TELEMETRY_SERVER_COMMON_LATENCY_BUCKETS_H_

#include <prometheus/histogram.h>

namespace telemetry {

// From 100 µs to 30 s, roughly ×2.5 apart.
inline prometheus::Histogram::BucketBoundaries LatencyBuckets() {
  return {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
          0.05,   0.1,     0.25,   0.5,   1,      2.5,   5,    10,   30};
}

}  // namespace telemetry

#endif  // TELEMETRY_SERVER_COMMON_LATENCY_BUCKETS_H_
