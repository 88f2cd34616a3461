// Correlation ids tie what a client saw to the server's log lines. Every call
// gets one: the client's own "x-request-id" when it sent a usable one (so a
// device's or a proxy's id carries through), else a fresh random one. The
// server returns it in the "x-request-id" response header, quotes it in error
// messages, and puts it on every log line about the call; on a stream each
// batch's ack carries "<call id>.<n>", its n-th message.
#ifndef TELEMETRY_SERVER_COMMON_CORRELATION_H_
#define TELEMETRY_SERVER_COMMON_CORRELATION_H_

#include <grpcpp/server_context.h>

#include <string>

#include "absl/strings/string_view.h"

namespace telemetry {

inline constexpr char kRequestIdHeader[] = "x-request-id";

// The call's id (see above). A client value is used only when it is 1-64
// characters of [A-Za-z0-9._:-], so it is safe in logs and messages.
std::string CallCorrelationId(const grpc::ServerContextBase& context);

// "message [request_id=<id>]", the form error replies take.
std::string WithCorrelation(absl::string_view message, absl::string_view id);

}  // namespace telemetry

#endif  // TELEMETRY_SERVER_COMMON_CORRELATION_H_
