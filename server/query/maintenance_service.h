// telemetry.v1.MaintenanceService: records on maintenance_tasks and
// maintenance_logs, written through the telemetry_maintainer role. Status
// lifecycles and foreign keys are enforced by the database; their violations
// come back as FAILED_PRECONDITION and NOT_FOUND with messages naming what
// was wrong. Handlers are synchronous (one pooled connection each).
// Thread-safe.
#ifndef TELEMETRY_SERVER_QUERY_MAINTENANCE_SERVICE_H_
#define TELEMETRY_SERVER_QUERY_MAINTENANCE_SERVICE_H_

#include "server/query/read_context.h"
#include "telemetry/v1/maintenance.grpc.pb.h"

namespace telemetry::query {

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

#endif  // TELEMETRY_SERVER_QUERY_MAINTENANCE_SERVICE_H_
