// The one mapping from absl::Status to grpc::Status at the RPC edge.
// absl's codes mirror google.rpc.Code, so the code carries over unchanged and
// keeps its retry meaning (Unavailable: retry the call; ResourceExhausted:
// back off and retry; InvalidArgument: do not retry).
#ifndef TELEMETRY_SERVER_COMMON_STATUS_UTIL_H_
#define TELEMETRY_SERVER_COMMON_STATUS_UTIL_H_

#include <grpcpp/support/status.h>

#include <string>

#include "absl/status/status.h"

namespace telemetry {

inline grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()),
                      std::string(status.message()));
}

// The same, with the call's correlation id quoted in the message.
inline grpc::Status ToGrpcStatus(const absl::Status& status, const std::string& request_id) {
  if (status.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()),
                      std::string(status.message()) + " [request_id=" + request_id + "]");
}

}  // namespace telemetry

#endif  // TELEMETRY_SERVER_COMMON_STATUS_UTIL_H_
