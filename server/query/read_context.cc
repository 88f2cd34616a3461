#include "server/query/read_context.h"

#include "absl/strings/str_cat.h"
#include "server/common/correlation.h"
#include "server/common/latency_buckets.h"
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
                 {"code", absl::StatusCodeToString(
                              static_cast<absl::StatusCode>(status.error_code()))}})
        .Increment();
  }
}

RpcScope::RpcScope(const ReadContext& ctx, grpc::ServerContext& context, std::string method)
    : ctx_(ctx),
      context_(context),
      method_(std::move(method)),
      request_id_(CallCorrelationId(context)),
      start_(absl::Now()) {
  context.AddInitialMetadata(kRequestIdHeader, request_id_);
}

grpc::Status RpcScope::Done(const absl::Status& status) {
  grpc::Status g = ToGrpcStatus(status, request_id_);
  // Failures that are the service's problem, or a caller's refused
  // credentials, are logged (at most 20 lines a second: a flood of bad
  // calls must not flood the log).
  switch (status.code()) {
    case absl::StatusCode::kInternal:
    case absl::StatusCode::kUnknown:
    case absl::StatusCode::kDataLoss:
    case absl::StatusCode::kPermissionDenied:
    case absl::StatusCode::kUnauthenticated:
    case absl::StatusCode::kUnavailable: {
      static LogRateLimiter limit(20, absl::Seconds(1));
      int64_t left_out = 0;
      if (limit.Allow(&left_out)) {
        Log(LogLevel::kWarning, "rpc failed",
            {{"request_id", request_id_},
             {"method", method_},
             {"peer", context_.peer()},
             {"code", absl::StatusCodeToString(status.code())},
             {"error", std::string(status.message())},
             {"similar_lines_left_out", absl::StrCat(left_out)}});
      }
      break;
    }
    default:
      break;
  }
  if (ctx_.metrics) ctx_.metrics->Observe(method_, absl::Now() - start_, g);
  return g;
}

absl::Status Authorize(const ReadContext& ctx, const grpc::ServerContextBase& context,
                       ApiScope needed) {
  if (ctx.credentials == nullptr) return absl::OkStatus();
  // A refusal is logged by the call's RpcScope, with its request id.
  return ctx.credentials->AuthorizeApi(context, needed).status();
}

}  // namespace telemetry::query
