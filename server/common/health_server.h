// A plaintext gRPC server that serves only grpc.health.v1 on its own port.
// Kubernetes' gRPC probes cannot speak TLS; this gives them the services'
// health without opening the API itself to plaintext. The owner mirrors its
// serving status here (NOT_SERVING first thing on shutdown, so a load
// balancer stops sending new work before the drain).
#ifndef TELEMETRY_SERVER_COMMON_HEALTH_SERVER_H_
#define TELEMETRY_SERVER_COMMON_HEALTH_SERVER_H_

#include <grpcpp/server.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace telemetry {

class HealthServer {
 public:
  static absl::StatusOr<std::unique_ptr<HealthServer>> Start(const std::string& address);
  ~HealthServer();

  void SetServing(const std::string& service, bool serving);
  int port() const { return port_; }
  void Shutdown();

 private:
  HealthServer() = default;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
};

}  // namespace telemetry

#endif  // TELEMETRY_SERVER_COMMON_HEALTH_SERVER_H_
