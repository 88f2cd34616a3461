// The assembled ingest gateway: gRPC server (IngestService, health,
// reflection), pipeline with its PostgreSQL writers, Redis dedupe store,
// partition maintenance and the Prometheus endpoint. main_ingest.cc and the
// end-to-end tests both run exactly this.
#ifndef TELEMETRY_SERVER_INGEST_INGEST_SERVER_H_
#define TELEMETRY_SERVER_INGEST_INGEST_SERVER_H_

#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/common/health_server.h"
#include "server/common/readiness.h"
#include "server/common/transport_security.h"
#include "server/ingest/device_usage_sync.h"
#include "server/ingest/ingest_pipeline.h"
#include "server/ingest/ingest_service.h"
#include "storage/pg/migrator.h"
#include "storage/util/mutex.h"

namespace grpc {
class Server;
}
namespace prometheus {
class Collectable;
class Registry;
}  // namespace prometheus

namespace telemetry {
class MetricsHttpServer;
class RedisDedupeStore;
class RedisUsageCounters;
struct StatusReport;
namespace pg {
class WriterCaches;
}

namespace ingest {

struct IngestServerOptions {
  // host:port; port 0 picks a free port (see IngestServer::port()).
  std::string listen_address = "127.0.0.1:50051";
  // host:port of the /metrics endpoint; empty disables it.
  std::string metrics_address = "127.0.0.1:9464";
  // Plaintext gRPC health only (for Kubernetes probes); empty: none.
  std::string health_address;
  // TLS / mutual TLS, or plaintext when asked for (see transport_security.h).
  ServerTransportSecurity transport;
  // Every call must come from a registered device (bearer token or client
  // certificate, see credentials.h). Off only for loopback development.
  bool require_device_auth = true;
  // How often the device credential table is re-read (revocation delay).
  absl::Duration credential_refresh = absl::Seconds(30);
  std::string database_url;  // libpq conninfo or URI
  std::string redis_url;     // redis://host:port; empty: no Redis (unless sentinels)
  // Redis Sentinel: "host:port,host:port" asked for the primary of
  // `redis_master_name` (redis_url then gives only password and db).
  std::string redis_sentinels;
  std::string redis_master_name;
  // Batch-key deduplication in Redis (the database's primary key always
  // deduplicates readings regardless).
  bool dedupe = true;
  // Where service.device_limits.readings_per_second holds: kCluster (with a
  // Redis configured) is one rate per device across every gateway sharing
  // that Redis; kGateway, or no Redis, is that rate at each gateway (N
  // gateways admit up to N times it). Stream limits are per gateway.
  enum class DeviceLimitScope { kCluster, kGateway };
  DeviceLimitScope device_limit_scope = DeviceLimitScope::kCluster;
  // How often a gateway reports device usage to, and learns the others'
  // from, Redis: the lag before a device over its rate through several
  // gateways is held to it.
  absl::Duration device_usage_interval = absl::Seconds(1);
  // Apply pending migrations at start-up (development convenience).
  bool migrate_on_start = false;
  pg::MigratorOptions migrator;
  IngestServiceOptions service;
  PipelineOptions pipeline;
  absl::Duration statement_timeout = absl::Seconds(30);
  int max_message_bytes = 8 << 20;
  // Connections older than this get GOAWAY (streams then have the grace to
  // finish; the client library reconnects and resends what was unacked), so
  // long-lived device streams spread over new replicas after a scale-out.
  // Zero: never.
  absl::Duration max_connection_age = absl::ZeroDuration();
  absl::Duration max_connection_age_grace = absl::Seconds(30);
  // The server pings idle connections this often and drops one that does not
  // answer in 20 s, so a device that lost power does not hold its streams
  // (and its stream quota) until TCP gives up hours later.
  absl::Duration keepalive_time = absl::Minutes(1);
  // How often the database is probed for readiness: the health status of
  // "telemetry.v1.IngestService" follows it ("" stays SERVING).
  absl::Duration readiness_interval = absl::Seconds(2);
  // Native mode: daily partitions kept ready this many days ahead.
  int partition_premake_days = 7;
  // Native mode: how often partitions are created ahead / dropped by
  // retention (retention = validation.max_age).
  absl::Duration maintenance_interval = absl::Hours(1);
};

class IngestServer {
 public:
  // Connects, checks the schema (or migrates), starts serving. Fails with
  // FailedPrecondition when the database is not migrated.
  static absl::StatusOr<std::unique_ptr<IngestServer>> Start(
      IngestServerOptions options);
  ~IngestServer();

  int port() const { return port_; }
  int metrics_port() const { return metrics_port_; }
  int health_port() const { return health_ ? health_->port() : 0; }  // 0: none
  // Known once the database was reached (at Start, or later when it was
  // away at start).
  std::optional<pg::StorageMode> storage_mode() const;

  // Stops accepting calls, lets open calls finish for up to `grace` (their
  // batches are written and acknowledged), cancels the rest, drains the
  // write queue. Idempotent.
  void Shutdown(absl::Duration grace = absl::Seconds(10));

 private:
  IngestServer() = default;
  void MaintenanceLoop(pg::StorageMode mode);
  // The schema is checked and `mode` known: partitions (native), then ready.
  absl::Status StorageReady(pg::StorageMode mode);
  // Retries PrepareSchema until the database is reached (started without).
  void StarterLoop();
  // Readiness health: the database answers and the storage mode is known.
  void PublishReadiness();
  // The /status page (on a civetweb thread).
  StatusReport Status() const;

  IngestServerOptions options_;
  mutable Mutex storage_mu_;
  std::optional<pg::StorageMode> mode_ ABSL_GUARDED_BY(storage_mu_);
  bool database_answers_ ABSL_GUARDED_BY(storage_mu_) = false;
  bool shut_down_ ABSL_GUARDED_BY(storage_mu_) = false;
  std::shared_ptr<prometheus::Registry> registry_;
  std::shared_ptr<prometheus::Collectable> process_metrics_;
  std::unique_ptr<IngestMetrics> metrics_;
  std::unique_ptr<RedisDedupeStore> dedupe_;
  std::unique_ptr<pg::WriterCaches> caches_;
  std::unique_ptr<CredentialStore> credentials_;
  std::unique_ptr<IngestPipeline> pipeline_;
  std::unique_ptr<IngestServiceImpl> service_;
  // Cluster-wide device limits; null with kGateway, no Redis or no rate.
  // After service_: it charges the service's limiter.
  std::unique_ptr<RedisUsageCounters> usage_counters_;
  std::unique_ptr<DeviceUsageSync> usage_sync_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<telemetry::HealthServer> health_;  // null unless health_address
  std::unique_ptr<DatabaseReadiness> readiness_;
  // /metrics and /status; started last and stopped first (in the
  // destructor), so its pages never see a part missing.
  std::unique_ptr<MetricsHttpServer> http_;
  absl::Time started_ = absl::Now();
  int port_ = 0;
  int metrics_port_ = 0;
  Notification stop_maintenance_;
  std::thread maintenance_;
  std::thread starter_;  // only while the database was away at start
};

}  // namespace ingest
}  // namespace telemetry

#endif  // TELEMETRY_SERVER_INGEST_INGEST_SERVER_H_
