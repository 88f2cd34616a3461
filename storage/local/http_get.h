// A tiny HTTP/1.0 GET for loopback endpoints (the Prometheus /metrics page
// of a server a test or benchmark started).
#ifndef TELEMETRY_STORAGE_LOCAL_HTTP_GET_H_
#define TELEMETRY_STORAGE_LOCAL_HTTP_GET_H_

#include <string>

#include "absl/status/statusor.h"

namespace telemetry::local {

// Body of http://127.0.0.1:<port><path>.
absl::StatusOr<std::string> HttpGet(int port, const std::string& path);

// Value of the sample named exactly `series` (e.g.
// `telemetry_ingest_readings_total{outcome="accepted"}`) in a Prometheus
// text exposition, or -1 when absent.
double MetricValue(const std::string& exposition, const std::string& series);

}  // namespace telemetry::local

#endif  // TELEMETRY_STORAGE_LOCAL_HTTP_GET_H_
