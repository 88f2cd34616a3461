// telemetry.v1.AlertService: records on anomaly_alerts, written through
// the telemetry_maintainer role. The status lifecycle (open -> acknowledged
// -> resolved) is enforced by the database; its violations come back as
// FAILED_PRECONDITION naming what was wrong. Handlers are synchronous (one
// pooled connection each). Thread-safe.
#ifndef TELEMETRY_SERVER_QUERY_ALERT_SERVICE_H_
#define TELEMETRY_SERVER_QUERY_ALERT_SERVICE_H_

#include "server/query/read_context.h"
#include "telemetry/v1/maintenance.grpc.pb.h"

namespace telemetry::query {

class AlertServiceImpl final : public telemetry::v1::AlertService::Service {
 public:
  explicit AlertServiceImpl(const ReadContext* ctx) : ctx_(*ctx) {}

  grpc::Status CreateAlert(grpc::ServerContext*, const telemetry::v1::CreateAlertRequest*,
                           telemetry::v1::Alert*) override;
  grpc::Status GetAlert(grpc::ServerContext*, const telemetry::v1::GetAlertRequest*,
                        telemetry::v1::Alert*) override;
  grpc::Status ListAlerts(grpc::ServerContext*, const telemetry::v1::ListAlertsRequest*,
                          telemetry::v1::ListAlertsResponse*) override;
  grpc::Status AcknowledgeAlert(grpc::ServerContext*,
                                const telemetry::v1::AlertTransitionRequest*,
                                telemetry::v1::Alert*) override;
  grpc::Status ResolveAlert(grpc::ServerContext*, const telemetry::v1::AlertTransitionRequest*,
                            telemetry::v1::Alert*) override;

 private:
  absl::Status Transition(const std::string& id, const std::string& status,
                          telemetry::v1::Alert* out);
  const ReadContext& ctx_;
};

}  // namespace telemetry::query

#endif  // TELEMETRY_SERVER_QUERY_ALERT_SERVICE_H_
