// A tiny HTTP/1.0 GET for loopback endpoints (the Prometheus /metrics page
// of a server a test or benchmark started).
#ifndef TELEMETRY_STORAGE_LOCAL_HTTP_GET_H_
#define TELEMETRY_STORAGE_LOCAL_HTTP_GET_H_

#include <string>

#include "absl/status/statusor.h"

namespace telemetry::local {

struct HttpResponse {
  int status = 0;       // 200
  std::string headers;  // the status line and headers, CRLF-separated
  std::string body;
};

// GET http://127.0.0.1:<port><path>, whatever its status.
absl::StatusOr<HttpResponse> HttpFetch(int port, const std::string& path);

// Body of http://127.0.0.1:<port><path>; an error unless the status is 200.
absl::StatusOr<std::string> HttpGet(int port, const std::string& path);

// Value of the sample named exactly `series` (e.g.
// `telemetry_ingest_readings_total{outcome="accepted"}`) in a Prometheus
// text exposition, or -1 when absent.
double MetricValue(const std::string& exposition, const std::string& series);

}  // namespace telemetry::local

#endif  // TELEMETRY_STORAGE_LOCAL_HTTP_GET_H_
