#include "server/query/admin_service.h"

#include "absl/time/clock.h"
#include "server/query/sql_values.h"

namespace telemetry::query {

grpc::Status AdminServiceImpl::RefreshAggregate(
    grpc::ServerContext* context, const telemetry::v1::RefreshAggregateRequest* request,
    telemetry::v1::RefreshAggregateResponse* response) {
  RpcScope scope(ctx_, *context, "RefreshAggregate");
  if (absl::Status auth = Authorize(ctx_, *context, ApiScope::kAdmin); !auth.ok()) {
    return scope.Done(auth);
  }
  std::optional<int64_t> start, end;
  if (request->has_start()) start = ToMicros(request->start());
  if (request->has_end()) end = ToMicros(request->end());
  if (start && end && *start >= *end) {
    return scope.Done(absl::InvalidArgumentError("start must be before end"));
  }
  absl::Time t0 = absl::Now();
  auto hours = jobs_->Refresh(start, end);
  if (!hours.ok()) return scope.Done(hours.status());
  response->set_hours_refreshed(*hours);
  response->set_seconds(absl::ToDoubleSeconds(absl::Now() - t0));
  return scope.Done(absl::OkStatus());
}

grpc::Status AdminServiceImpl::RunRetention(grpc::ServerContext* context,
                                            const telemetry::v1::RunLifecycleRequest*,
                                            telemetry::v1::RunLifecycleResponse* response) {
  RpcScope scope(ctx_, *context, "RunRetention");
  if (absl::Status auth = Authorize(ctx_, *context, ApiScope::kAdmin); !auth.ok()) {
    return scope.Done(auth);
  }
  auto summary = jobs_->RunRetention();
  if (!summary.ok()) return scope.Done(summary.status());
  response->set_summary(*summary);
  return scope.Done(absl::OkStatus());
}

grpc::Status AdminServiceImpl::RunCompression(grpc::ServerContext* context,
                                              const telemetry::v1::RunLifecycleRequest*,
                                              telemetry::v1::RunLifecycleResponse* response) {
  RpcScope scope(ctx_, *context, "RunCompression");
  if (absl::Status auth = Authorize(ctx_, *context, ApiScope::kAdmin); !auth.ok()) {
    return scope.Done(auth);
  }
  auto summary = jobs_->RunCompression();
  if (!summary.ok()) return scope.Done(summary.status());
  response->set_summary(*summary);
  return scope.Done(absl::OkStatus());
}

grpc::Status AdminServiceImpl::ListJobs(grpc::ServerContext* context,
                                        const telemetry::v1::ListJobsRequest*,
                                        telemetry::v1::ListJobsResponse* response) {
  RpcScope scope(ctx_, *context, "ListJobs");
  if (absl::Status auth = Authorize(ctx_, *context, ApiScope::kAdmin); !auth.ok()) {
    return scope.Done(auth);
  }
  response->set_storage_mode(std::string(pg::StorageModeName(ctx_.mode)));
  auto jobs = jobs_->Jobs();
  if (!jobs.ok()) return scope.Done(jobs.status());
  for (auto& j : *jobs) *response->add_jobs() = std::move(j);
  return scope.Done(absl::OkStatus());
}

grpc::Status AdminServiceImpl::ListChunks(grpc::ServerContext* context,
                                          const telemetry::v1::ListChunksRequest*,
                                          telemetry::v1::ListChunksResponse* response) {
  RpcScope scope(ctx_, *context, "ListChunks");
  if (absl::Status auth = Authorize(ctx_, *context, ApiScope::kAdmin); !auth.ok()) {
    return scope.Done(auth);
  }
  auto chunks = jobs_->Chunks();
  if (!chunks.ok()) return scope.Done(chunks.status());
  *response = *std::move(chunks);
  return scope.Done(absl::OkStatus());
}

}  // namespace telemetry::query
