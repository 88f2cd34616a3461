#include "server/common/health_server.h"

#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>

#include "absl/strings/str_cat.h"

namespace telemetry {

absl::StatusOr<std::unique_ptr<HealthServer>> HealthServer::Start(const std::string& address) {
  grpc::EnableDefaultHealthCheckService(true);
  auto s = std::unique_ptr<HealthServer>(new HealthServer());
  grpc::ServerBuilder builder;
  builder.AddListeningPort(address, grpc::InsecureServerCredentials(), &s->port_);
  s->server_ = builder.BuildAndStart();
  if (!s->server_ || s->port_ == 0) {
    return absl::UnavailableError(absl::StrCat("cannot serve health checks on ", address));
  }
  return s;
}

HealthServer::~HealthServer() { Shutdown(); }

void HealthServer::SetServing(const std::string& service, bool serving) {
  if (server_) server_->GetHealthCheckService()->SetServingStatus(service, serving);
}

void HealthServer::Shutdown() {
  if (!server_) return;
  server_->Shutdown(std::chrono::system_clock::now());
  server_.reset();
}

}  // namespace telemetry
