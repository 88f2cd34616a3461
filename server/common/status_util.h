// The one mapping from absl::Status to grpc::Status at the RPC edge.
// absl's codes mirror google.rpc.Code, so the code carries over unchanged and
// keeps its retry meaning (Unavailable: retry the call; ResourceExhausted:
// back off and retry; InvalidArgument: do not retry).
//
// What reaches a client is a stable message that leaks nothing of the
// deployment: a status from the storage layer (it carries a SQLSTATE
// payload) is answered with a fixed sentence per failure class, never with
// PostgreSQL's own text (host names, ports, roles, SQL). The caller logs the
// full status with the request id.
#ifndef TELEMETRY_SERVER_COMMON_STATUS_UTIL_H_
#define TELEMETRY_SERVER_COMMON_STATUS_UTIL_H_

#include <grpcpp/support/status.h>

#include <string>

#include "absl/status/status.h"
#include "telemetry/v1/ingest.pb.h"

namespace telemetry {

// The message a client may see for `status` (see above).
std::string PublicMessage(const absl::Status& status);

inline grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()), PublicMessage(status));
}

// The same, with the call's correlation id quoted in the message.
inline grpc::Status ToGrpcStatus(const absl::Status& status, const std::string& request_id) {
  if (status.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()),
                      PublicMessage(status) + " [request_id=" + request_id + "]");
}

// The same for a stream's ack: its status_code (a google.rpc.Code, as the
// call's status would be) and the public message.
inline void SetAckStatus(const absl::Status& status, telemetry::v1::BatchAck* ack) {
  ack->set_status_code(static_cast<int32_t>(status.code()));
  ack->set_status_message(status.ok() ? std::string() : PublicMessage(status));
}

}  // namespace telemetry

#endif  // TELEMETRY_SERVER_COMMON_STATUS_UTIL_H_
