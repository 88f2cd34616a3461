#include "server/query/read_context.h"

#include "server/common/ingest_metrics.h"
#include "server/common/log.h"
#include "server/common/status_util.h"

namespace telemetry::query {

RpcMetrics::RpcMetrics(prometheus::Registry& registry)
    : latency_(prometheus::BuildHistogram()
                   .Name("telemetry_read_rpc_duration_seconds")
                   .Help("Read-service RPC latency, by method")
                   .Register(registry)),
      errors_(prometheus::BuildCounter()
                  .Name("telemetry_read_rpc_errors_total")
                  .Help("Read-service RPCs that failed, by method and code")
                  .Register(registry)) {}

void RpcMetrics::Observe(const std::string& method, absl::Duration elapsed,
                         const grpc::Status& status) {
  latency_.Add({{"method", method}}, LatencyBuckets())
      .Observe(absl::ToDoubleSeconds(elapsed));
  if (!status.ok()) {
    errors_.Add({{"method", method},
                 {"code", std::to_string(static_cast<int>(status.error_code()))}})
        .Increment();
  }
}

grpc::Status RpcScope::Done(const absl::Status& status) {
  grpc::Status g = ToGrpcStatus(status);
  // Failures that are the service's problem, not the caller's, are logged.
  switch (status.code()) {
    case absl::StatusCode::kInternal:
    case absl::StatusCode::kUnknown:
    case absl::StatusCode::kDataLoss:
    case absl::StatusCode::kPermissionDenied:
    case absl::StatusCode::kUnavailable:
      Log(LogLevel::kWarning, "rpc failed",
          {{"method", method_}, {"code", absl::StatusCodeToString(status.code())},
           {"error", std::string(status.message())}});
      break;
    default:
      break;
  }
  if (ctx_.metrics) ctx_.metrics->Observe(method_, absl::Now() - start_, g);
  return g;
}

absl::Status Authorize(const ReadContext& ctx, const grpc::ServerContextBase& context,
                       ApiScope needed) {
  if (ctx.credentials == nullptr) return absl::OkStatus();
  auto who = ctx.credentials->AuthorizeApi(context, needed);
  if (!who.ok()) {
    Log(LogLevel::kWarning, "call refused",
        {{"peer", context.peer()}, {"reason", std::string(who.status().message())}});
  }
  return who.status();
}

}  // namespace telemetry::query
