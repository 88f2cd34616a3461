// Options for an in-process read service on loopback: plaintext,
// authentication off, metrics on a free port, queries as `database_url` and
// writes as `writer_database_url` (default: the same), background jobs off
// and stats hourly, so that a test drives refreshes itself. For tests of
// what clients see (security_test covers TLS and tokens).
#ifndef TELEMETRY_TESTS_SUPPORT_LOOPBACK_READ_SERVICE_H_
#define TELEMETRY_TESTS_SUPPORT_LOOPBACK_READ_SERVICE_H_

#include <string>

#include "absl/time/time.h"
#include "server/query/read_server.h"

namespace telemetry::testing {

inline query::ReadServerOptions LoopbackReadService(const std::string& database_url,
                                                    const std::string& writer_database_url = "") {
  query::ReadServerOptions o;
  o.transport.plaintext = true;  // loopback
  o.require_api_auth = false;
  o.listen_address = "127.0.0.1:0";
  o.metrics_address = "127.0.0.1:0";
  o.database_url = database_url;
  o.writer_database_url = writer_database_url;
  o.lifecycle.run_native_jobs = false;
  o.lifecycle.stats_interval = absl::Hours(1);
  return o;
}

}  // namespace telemetry::testing

#endif  // TELEMETRY_TESTS_SUPPORT_LOOPBACK_READ_SERVICE_H_
