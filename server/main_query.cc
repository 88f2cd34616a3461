// read-service: the only place for flags, wiring and exit codes.
#include <cstdlib>
#include <cstring>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/time/time.h"
#include "server/common/flags_env.h"
#include "server/common/log.h"
#include "server/common/signals.h"
#include "server/common/transport_flags.h"
#include "server/query/read_server.h"
#include "storage/util/mutex.h"

ABSL_FLAG(std::string, listen, "",
          "gRPC listen address (env READ_LISTEN_ADDRESS; default 127.0.0.1:50052)");
ABSL_FLAG(std::string, health_listen, "",
          "Plaintext gRPC health-only address for Kubernetes probes (env READ_HEALTH_ADDRESS; "
          "default: none)");
ABSL_FLAG(std::string, metrics_listen, "",
          "Prometheus /metrics address (env READ_METRICS_ADDRESS; default "
          "127.0.0.1:9465; 'off' disables)");
ABSL_FLAG(std::string, database_url, "",
          "PostgreSQL connection of the read-only role (env READ_DATABASE_URL, "
          "then DATABASE_URL)");
ABSL_FLAG(std::string, writer_database_url, "",
          "PostgreSQL connection of the maintainer role, for alerts, maintenance "
          "and jobs (env MAINTENANCE_DATABASE_URL; default: --database_url)");
ABSL_FLAG(bool, api_auth, true,
          "Require an API token on every call (scope read; admin for writes and "
          "AdminService); false only for loopback development (env API_AUTH=off)");
ABSL_FLAG(absl::Duration, credential_refresh, absl::Seconds(30),
          "How often API tokens are re-read (the delay of a revocation)");
ABSL_FLAG(int, reader_connections, 8, "Read-only connections in the pool");
ABSL_FLAG(int, writer_connections, 4, "Maintainer connections in the pool");
ABSL_FLAG(absl::Duration, refresh_schedule, absl::Minutes(30),
          "Native mode: how often the hourly aggregate is refreshed");
ABSL_FLAG(absl::Duration, refresh_start_offset, absl::Hours(3),
          "Native mode: refresh window start, before now");
ABSL_FLAG(absl::Duration, refresh_end_offset, absl::Minutes(30),
          "Native mode: refresh window end, before now");
ABSL_FLAG(int, retention_days, 180, "Native mode: drop day partitions older than this");
ABSL_FLAG(absl::Duration, statement_timeout, absl::Seconds(30), "PostgreSQL statement timeout");
ABSL_FLAG(absl::Duration, shutdown_grace, absl::Seconds(10),
          "How long running calls may finish after SIGTERM");

int main(int argc, char** argv) {
  telemetry::DisableMutexDeadlockDetection();
  absl::SetProgramUsageMessage(
      "Serves readings, hourly summaries, drift windows, alerts and maintenance records.");
  absl::ParseCommandLine(argc, argv);
  // libpq's default is to wait for TCP itself (minutes) on an unreachable
  // database host; every connection here gets 10 s unless the URL or the
  // environment says otherwise.
  setenv("PGCONNECT_TIMEOUT", "10", /*overwrite=*/0);
  using telemetry::Log;
  using telemetry::LogLevel;
  telemetry::TerminationSignals signals;  // before any thread starts

  telemetry::query::ReadServerOptions o;
  o.listen_address =
      telemetry::FlagOrEnv(FLAGS_listen, "READ_LISTEN_ADDRESS", "127.0.0.1:50052");
  o.metrics_address =
      telemetry::FlagOrEnv(FLAGS_metrics_listen, "READ_METRICS_ADDRESS", "127.0.0.1:9465");
  if (o.metrics_address == "off") o.metrics_address.clear();
  o.health_address = telemetry::FlagOrEnv(FLAGS_health_listen, "READ_HEALTH_ADDRESS");
  o.transport = telemetry::TransportSecurityFromFlags();
  const char* api_auth_env = std::getenv("API_AUTH");
  o.require_api_auth = absl::GetFlag(FLAGS_api_auth) &&
                       !(api_auth_env != nullptr && std::string(api_auth_env) == "off");
  o.credential_refresh = absl::GetFlag(FLAGS_credential_refresh);
  o.database_url = telemetry::FlagOrEnv(FLAGS_database_url, "READ_DATABASE_URL");
  if (o.database_url.empty()) {
    o.database_url = telemetry::FlagOrEnv(FLAGS_database_url, "DATABASE_URL");
  }
  if (o.database_url.empty()) {
    Log(LogLevel::kError, "no database: set --database_url or READ_DATABASE_URL");
    return 2;
  }
  o.writer_database_url =
      telemetry::FlagOrEnv(FLAGS_writer_database_url, "MAINTENANCE_DATABASE_URL");
  o.reader_connections = absl::GetFlag(FLAGS_reader_connections);
  o.writer_connections = absl::GetFlag(FLAGS_writer_connections);
  o.statement_timeout = absl::GetFlag(FLAGS_statement_timeout);
  o.lifecycle.refresh_schedule = absl::GetFlag(FLAGS_refresh_schedule);
  o.lifecycle.refresh_start_offset = absl::GetFlag(FLAGS_refresh_start_offset);
  o.lifecycle.refresh_end_offset = absl::GetFlag(FLAGS_refresh_end_offset);
  o.lifecycle.retention = absl::Hours(24) * absl::GetFlag(FLAGS_retention_days);

  auto server = telemetry::query::ReadServer::Start(o);
  if (!server.ok()) {
    Log(LogLevel::kError, "read service failed to start",
        {{"error", std::string(server.status().message())}});
    return 1;
  }
  Log(LogLevel::kInfo, "shutting down", {{"signal", signals.Wait()}});
  (*server)->Shutdown(absl::GetFlag(FLAGS_shutdown_grace));
  return 0;
}
