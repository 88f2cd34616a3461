// telemetry.v1.AdminService: on-demand aggregate refresh and lifecycle jobs,
// job and storage health. A thin RPC layer over LifecycleJobs.
#ifndef TELEMETRY_SERVER_QUERY_ADMIN_SERVICE_H_
#define TELEMETRY_SERVER_QUERY_ADMIN_SERVICE_H_

#include "server/query/lifecycle_jobs.h"
#include "server/query/read_context.h"
#include "telemetry/v1/query.grpc.pb.h"

namespace telemetry::query {

class AdminServiceImpl final : public telemetry::v1::AdminService::Service {
 public:
  AdminServiceImpl(const ReadContext* ctx, LifecycleJobs* jobs) : ctx_(*ctx), jobs_(jobs) {}

  grpc::Status RefreshAggregate(grpc::ServerContext*,
                                const telemetry::v1::RefreshAggregateRequest*,
                                telemetry::v1::RefreshAggregateResponse*) override;
  grpc::Status RunRetention(grpc::ServerContext*, const telemetry::v1::RunLifecycleRequest*,
                            telemetry::v1::RunLifecycleResponse*) override;
  grpc::Status RunCompression(grpc::ServerContext*, const telemetry::v1::RunLifecycleRequest*,
                              telemetry::v1::RunLifecycleResponse*) override;
  grpc::Status ListJobs(grpc::ServerContext*, const telemetry::v1::ListJobsRequest*,
                        telemetry::v1::ListJobsResponse*) override;
  grpc::Status ListChunks(grpc::ServerContext*, const telemetry::v1::ListChunksRequest*,
                          telemetry::v1::ListChunksResponse*) override;

 private:
  const ReadContext& ctx_;
  LifecycleJobs* jobs_;
};

}  // namespace telemetry::query

#endif  // TELEMETRY_SERVER_QUERY_ADMIN_SERVICE_H_
