// ingest-gateway: the only place for flags, wiring and exit codes.
#include <cstdio>
#include <cstdlib>
#include <thread>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "server/common/flags_env.h"
#include "server/common/log.h"
#include "server/common/signals.h"
#include "server/common/transport_flags.h"
#include "server/ingest/ingest_server.h"
#include "storage/pg/migration.h"
#include "storage/util/mutex.h"

ABSL_FLAG(std::string, listen, "",
          "gRPC listen address (env INGEST_LISTEN_ADDRESS; default "
          "127.0.0.1:50051)");
ABSL_FLAG(std::string, health_listen, "",
          "Plaintext gRPC health-only address for Kubernetes probes (env INGEST_HEALTH_ADDRESS; "
          "default: none)");
ABSL_FLAG(std::string, metrics_listen, "",
          "Prometheus /metrics address (env INGEST_METRICS_ADDRESS; default "
          "127.0.0.1:9464; 'off' disables)");
ABSL_FLAG(std::string, database_url, "",
          "PostgreSQL conninfo or URI (env DATABASE_URL)");
ABSL_FLAG(std::string, redis_url, "",
          "Redis URL for batch idempotency keys, redis://host:port (env "
          "REDIS_URL; empty: deduplicate in the database only)");
ABSL_FLAG(std::string, redis_sentinels, "",
          "Redis Sentinels to ask for the dedupe primary, host:port[,host:port] (env "
          "REDIS_SENTINELS); password and db still come from --redis_url when given");
ABSL_FLAG(std::string, redis_master_name, "",
          "The Sentinel master name of the dedupe Redis (env REDIS_MASTER_NAME; required "
          "with --redis_sentinels)");
ABSL_FLAG(bool, dedupe, true,
          "Deduplicate batch keys in Redis (the primary key always "
          "deduplicates readings)");
ABSL_FLAG(bool, device_auth, true,
          "Require every call to come from a registered device (bearer token or client "
          "certificate); false only for loopback development (env DEVICE_AUTH=off)");
ABSL_FLAG(absl::Duration, credential_refresh, absl::Seconds(30),
          "How often device credentials are re-read (the delay of a revocation)");
ABSL_FLAG(double, device_max_readings_per_second, 0,
          "Sustained readings per second one device may write; over it a batch gets "
          "RESOURCE_EXHAUSTED with a retry hint (0: unlimited)");
ABSL_FLAG(int, device_burst_readings, 0,
          "Readings a device may write at once after being idle (never below "
          "--max_batch_readings; 0: one second's worth)");
ABSL_FLAG(std::string, device_limit_scope, "",
          "Where --device_max_readings_per_second holds: 'cluster' (default: one rate per "
          "device across every gateway sharing the Redis, which they report usage to) or "
          "'gateway' (that rate at each gateway). Without Redis it is per gateway. "
          "Env DEVICE_LIMIT_SCOPE");
ABSL_FLAG(absl::Duration, device_usage_interval, absl::Seconds(1),
          "How often a gateway shares device usage through Redis (cluster scope): how long "
          "a device over its rate through several gateways may exceed it");
ABSL_FLAG(int, device_max_streams, 16,
          "Open StreamReadings calls one device may hold (0: unlimited)");
ABSL_FLAG(bool, migrate, false, "Apply pending migrations at start-up");
ABSL_FLAG(std::string, storage_mode, "auto",
          "With --migrate on a fresh database: native, timescale or auto");
ABSL_FLAG(int, max_batch_readings, 10000, "Most readings in one batch");
ABSL_FLAG(absl::Duration, max_future_skew, absl::Minutes(5),
          "How far in the future a reading's timestamp may be");
ABSL_FLAG(int, retention_days, 180,
          "Readings older than this are refused (and dropped by retention)");
ABSL_FLAG(int, queue_readings, 200000,
          "Bound on readings queued or being written");
ABSL_FLAG(int, queue_mib, 256,
          "Bound on the memory those readings hold, in MiB (the memory bound)");
ABSL_FLAG(int, flush_readings, 5000,
          "Under load (--flush_load_threshold), a smaller commit group waits for this "
          "many readings...");
ABSL_FLAG(absl::Duration, flush_interval, absl::Milliseconds(5),
          "...or until its oldest batch waited this long; otherwise a writer writes "
          "what is queued at once");
ABSL_FLAG(double, flush_load_threshold, 0.5,
          "Under load: the writers busy, averaged over ~50 ms, are at least this "
          "fraction of --writers (0: always; above 1: never)");
ABSL_FLAG(int, max_group_readings, 50000, "Most readings in one COPY");
ABSL_FLAG(int, writers, 2, "Parallel COPY writers (database connections)");
ABSL_FLAG(int, stream_window, 16,
          "Unacknowledged batches one stream may have in flight");
ABSL_FLAG(int, max_message_bytes, 8 << 20, "Largest accepted gRPC message");
ABSL_FLAG(absl::Duration, statement_timeout, absl::Seconds(30),
          "PostgreSQL statement timeout for writes");
ABSL_FLAG(absl::Duration, max_connection_age, absl::ZeroDuration(),
          "Send GOAWAY to connections older than this, so device streams rebalance over "
          "new replicas behind a load balancer (0: never; 10m suits Kubernetes)");
ABSL_FLAG(absl::Duration, max_connection_age_grace, absl::Seconds(30),
          "How long streams on a GOAWAY'd connection may finish");
ABSL_FLAG(absl::Duration, keepalive_time, absl::Minutes(1),
          "Ping idle connections this often; drop one silent for 20 s (0: off)");
ABSL_FLAG(absl::Duration, shutdown_grace, absl::Seconds(10),
          "How long open streams may finish after SIGTERM");

int main(int argc, char** argv) {
  telemetry::DisableMutexDeadlockDetection();
  absl::SetProgramUsageMessage(
      "Streams sensor readings from gRPC into PostgreSQL/TimescaleDB.");
  absl::ParseCommandLine(argc, argv);
  // libpq's default is to wait for TCP itself (minutes) on an unreachable
  // database host; every connection here gets 10 s unless the URL or the
  // environment says otherwise.
  setenv("PGCONNECT_TIMEOUT", "10", /*overwrite=*/0);
  using telemetry::Log;
  using telemetry::LogLevel;

  telemetry::TerminationSignals signals;  // before any thread starts

  telemetry::ingest::IngestServerOptions o;
  o.listen_address = telemetry::FlagOrEnv(FLAGS_listen, "INGEST_LISTEN_ADDRESS",
                                          "127.0.0.1:50051");
  o.metrics_address = telemetry::FlagOrEnv(
      FLAGS_metrics_listen, "INGEST_METRICS_ADDRESS", "127.0.0.1:9464");
  if (o.metrics_address == "off") o.metrics_address.clear();
  o.health_address = telemetry::FlagOrEnv(FLAGS_health_listen, "INGEST_HEALTH_ADDRESS");
  o.transport = telemetry::TransportSecurityFromFlags();
  const char* device_auth_env = std::getenv("DEVICE_AUTH");
  o.require_device_auth = absl::GetFlag(FLAGS_device_auth) &&
                          !(device_auth_env != nullptr && std::string(device_auth_env) == "off");
  o.credential_refresh = absl::GetFlag(FLAGS_credential_refresh);
  o.database_url = telemetry::FlagOrEnv(FLAGS_database_url, "DATABASE_URL");
  o.redis_url = telemetry::FlagOrEnv(FLAGS_redis_url, "REDIS_URL");
  o.redis_sentinels = telemetry::FlagOrEnv(FLAGS_redis_sentinels, "REDIS_SENTINELS");
  o.redis_master_name = telemetry::FlagOrEnv(FLAGS_redis_master_name, "REDIS_MASTER_NAME");
  if (o.database_url.empty()) {
    Log(LogLevel::kError, "no database: set --database_url or DATABASE_URL");
    return 2;
  }
  o.dedupe = absl::GetFlag(FLAGS_dedupe);
  o.migrate_on_start = absl::GetFlag(FLAGS_migrate);
  if (std::string m = absl::GetFlag(FLAGS_storage_mode); m != "auto") {
    auto mode = telemetry::pg::ParseStorageMode(m);
    if (!mode.ok()) {
      Log(LogLevel::kError, std::string(mode.status().message()));
      return 2;
    }
    o.migrator.mode = *mode;
  }
  int retention_days = absl::GetFlag(FLAGS_retention_days);
  o.migrator.retention = absl::StrCat(retention_days, " days");
  o.service.validation.max_batch_readings =
      static_cast<size_t>(absl::GetFlag(FLAGS_max_batch_readings));
  o.service.validation.max_future_skew = absl::GetFlag(FLAGS_max_future_skew);
  o.service.validation.max_age = absl::Hours(24) * retention_days;
  o.service.device_limits.readings_per_second =
      absl::GetFlag(FLAGS_device_max_readings_per_second);
  o.service.device_limits.burst_readings = absl::GetFlag(FLAGS_device_burst_readings);
  o.service.device_limits.max_streams = absl::GetFlag(FLAGS_device_max_streams);
  const std::string scope =
      telemetry::FlagOrEnv(FLAGS_device_limit_scope, "DEVICE_LIMIT_SCOPE", "cluster");
  if (scope == "gateway") {
    o.device_limit_scope = telemetry::ingest::IngestServerOptions::DeviceLimitScope::kGateway;
  } else if (scope != "cluster") {
    Log(LogLevel::kError, "--device_limit_scope must be 'cluster' or 'gateway'",
        {{"value", scope}});
    return 2;
  }
  o.device_usage_interval = absl::GetFlag(FLAGS_device_usage_interval);
  if (o.device_usage_interval <= absl::ZeroDuration()) {
    Log(LogLevel::kError, "--device_usage_interval must be positive");
    return 2;
  }
  o.service.max_stream_window = absl::GetFlag(FLAGS_stream_window);
  o.pipeline.max_queued_readings =
      static_cast<size_t>(absl::GetFlag(FLAGS_queue_readings));
  o.pipeline.max_queued_bytes = static_cast<size_t>(absl::GetFlag(FLAGS_queue_mib)) << 20;
  o.pipeline.flush_readings =
      static_cast<size_t>(absl::GetFlag(FLAGS_flush_readings));
  o.pipeline.flush_interval = absl::GetFlag(FLAGS_flush_interval);
  o.pipeline.load_threshold = absl::GetFlag(FLAGS_flush_load_threshold);
  o.pipeline.max_group_readings =
      static_cast<size_t>(absl::GetFlag(FLAGS_max_group_readings));
  o.pipeline.flushers = absl::GetFlag(FLAGS_writers);
  o.max_message_bytes = absl::GetFlag(FLAGS_max_message_bytes);
  o.statement_timeout = absl::GetFlag(FLAGS_statement_timeout);
  o.max_connection_age = absl::GetFlag(FLAGS_max_connection_age);
  o.max_connection_age_grace = absl::GetFlag(FLAGS_max_connection_age_grace);
  o.keepalive_time = absl::GetFlag(FLAGS_keepalive_time);

  auto server = telemetry::ingest::IngestServer::Start(o);
  if (!server.ok()) {
    Log(LogLevel::kError, "ingest gateway failed to start",
        {{"error", std::string(server.status().message())}});
    return 1;
  }
  Log(LogLevel::kInfo, "shutting down", {{"signal", signals.Wait()}});
  (*server)->Shutdown(absl::GetFlag(FLAGS_shutdown_grace));
  return 0;
}
