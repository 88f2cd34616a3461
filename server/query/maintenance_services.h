// telemetry.v1.AlertService and telemetry.v1.MaintenanceService: records on
// anomaly_alerts, maintenance_tasks and maintenance_logs, written through the
// telemetry_maintainer role. Status lifecycles and foreign keys are enforced
// by the database; their violations come back as FAILED_PRECONDITION and
// NOT_FOUND with messages naming what was wrong.
#ifndef TELEMETRY_SERVER_QUERY_MAINTENANCE_SERVICES_H_
#define TELEMETRY_SERVER_QUERY_MAINTENANCE_SERVICES_H_

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

class MaintenanceServiceImpl final : public telemetry::v1::MaintenanceService::Service {
 public:
  explicit MaintenanceServiceImpl(const ReadContext* ctx) : ctx_(*ctx) {}

  grpc::Status CreateTask(grpc::ServerContext*, const telemetry::v1::CreateTaskRequest*,
                          telemetry::v1::MaintenanceTask*) override;
  grpc::Status GetTask(grpc::ServerContext*, const telemetry::v1::GetTaskRequest*,
                       telemetry::v1::MaintenanceTask*) override;
  grpc::Status ListTasks(grpc::ServerContext*, const telemetry::v1::ListTasksRequest*,
                         telemetry::v1::ListTasksResponse*) override;
  grpc::Status UpdateTaskStatus(grpc::ServerContext*,
                                const telemetry::v1::UpdateTaskStatusRequest*,
                                telemetry::v1::MaintenanceTask*) override;
  grpc::Status LogWork(grpc::ServerContext*, const telemetry::v1::LogWorkRequest*,
                       telemetry::v1::MaintenanceLog*) override;
  grpc::Status ListLogs(grpc::ServerContext*, const telemetry::v1::ListLogsRequest*,
                        telemetry::v1::ListLogsResponse*) override;

 private:
  const ReadContext& ctx_;
};

}  // namespace telemetry::query

#endif  // TELEMETRY_SERVER_QUERY_MAINTENANCE_SERVICES_H_
