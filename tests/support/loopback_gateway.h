// Options for an in-process gateway on loopback: plaintext, authentication
// off, metrics on a free port, over `database_url` and the shared Redis. For
// tests of what clients do (security_test covers TLS and credentials).
#ifndef TELEMETRY_TESTS_SUPPORT_LOOPBACK_GATEWAY_H_
#define TELEMETRY_TESTS_SUPPORT_LOOPBACK_GATEWAY_H_

#include <string>

#include "server/ingest/ingest_server.h"
#include "tests/support/servers_environment.h"

namespace telemetry::testing {

inline ingest::IngestServerOptions LoopbackGateway(const std::string& database_url) {
  ingest::IngestServerOptions o;
  o.listen_address = "127.0.0.1:0";
  o.metrics_address = "127.0.0.1:0";
  o.database_url = database_url;
  o.redis_url = Redis().Url();
  o.transport.plaintext = true;  // loopback
  o.require_device_auth = false;
  return o;
}

}  // namespace telemetry::testing

#endif  // TELEMETRY_TESTS_SUPPORT_LOOPBACK_GATEWAY_H_
