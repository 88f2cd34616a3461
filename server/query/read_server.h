// The assembled read service: QueryService, AlertService,
// MaintenanceService and AdminService on one gRPC port (with health and
// reflection), two connection pools (read-only role for queries, maintainer
// role for writes), the lifecycle jobs, and the Prometheus endpoint.
// main_query.cc and the end-to-end tests both run exactly this.
#ifndef TELEMETRY_SERVER_QUERY_READ_SERVER_H_
#define TELEMETRY_SERVER_QUERY_READ_SERVER_H_

#include <atomic>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/common/transport_security.h"
#include "server/common/health_server.h"
#include "server/common/readiness.h"
#include "server/query/lifecycle_jobs.h"
#include "server/query/read_context.h"

namespace grpc {
class Server;
class Service;
}  // namespace grpc
namespace prometheus {
class Collectable;
class Registry;
}  // namespace prometheus

namespace telemetry {
class MetricsHttpServer;
struct StatusReport;
}  // namespace telemetry

namespace telemetry::query {

struct ReadServerOptions {
  std::string listen_address = "127.0.0.1:50052";
  std::string metrics_address = "127.0.0.1:9465";  // empty: no endpoint
  // Plaintext gRPC health only (for Kubernetes probes); empty: none.
  std::string health_address;
  // How often the database is probed for readiness: the health status of
  // every service name but "" follows it ("" is liveness and stays SERVING).
  absl::Duration readiness_interval = absl::Seconds(2);
  // TLS / mutual TLS, or plaintext when asked for (see transport_security.h).
  ServerTransportSecurity transport;
  // Every call must carry an API token (scope read, or admin for writes and
  // AdminService). Off only for loopback development.
  bool require_api_auth = true;
  absl::Duration credential_refresh = absl::Seconds(30);
  // Connection of the read-only role (telemetry_reader member).
  std::string database_url;
  // Connection of the maintainer role (telemetry_maintainer member), for
  // alerts, maintenance, the sensor registry and lifecycle jobs. Empty: use
  // database_url.
  std::string writer_database_url;
  int reader_connections = 8;
  int writer_connections = 4;
  absl::Duration statement_timeout = absl::Seconds(30);
  LifecycleOptions lifecycle;
};

class ReadServer {
 public:
  static absl::StatusOr<std::unique_ptr<ReadServer>> Start(ReadServerOptions options);
  ~ReadServer();

  int port() const { return port_; }
  int metrics_port() const { return metrics_port_; }
  int health_port() const { return health_ ? health_->port() : 0; }  // 0: none
  pg::StorageMode storage_mode() const { return ctx_.mode; }
  LifecycleJobs& jobs() { return *jobs_; }

  // Stops accepting calls, lets running ones finish for up to `grace`, stops
  // the jobs. Idempotent.
  void Shutdown(absl::Duration grace = absl::Seconds(10));

 private:
  ReadServer() = default;
  // The /status page (on a civetweb thread).
  StatusReport Status() const;

  ReadServerOptions options_;
  std::unique_ptr<pg::ConnectionPool> reader_;
  std::unique_ptr<pg::ConnectionPool> writer_;
  std::shared_ptr<prometheus::Registry> registry_;
  std::shared_ptr<prometheus::Collectable> process_metrics_;
  std::unique_ptr<RpcMetrics> rpc_metrics_;
  std::unique_ptr<CredentialStore> credentials_;
  WatermarkCache watermark_;
  ReadContext ctx_;
  std::unique_ptr<LifecycleJobs> jobs_;
  std::vector<std::unique_ptr<grpc::Service>> services_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<telemetry::HealthServer> health_;  // null unless health_address
  std::unique_ptr<DatabaseReadiness> readiness_;
  std::atomic<bool> database_answers_{true};  // it answered at Start
  // /metrics and /status; started last and stopped first (in the
  // destructor), so its pages never see a part missing.
  std::unique_ptr<MetricsHttpServer> http_;
  absl::Time started_ = absl::Now();
  int port_ = 0;
  int metrics_port_ = 0;
  bool shut_down_ = false;
};

}  // namespace telemetry::query

#endif  // TELEMETRY_SERVER_QUERY_READ_SERVER_H_
