// Telling an operator at once why a service cannot be reached, instead of
// retrying silently until a timeout: a health check that is not
// wait-for-ready fails as soon as the channel fails to connect (refused,
// TLS mismatch, bad certificate), with gRPC's own description.
#ifndef TELEMETRY_CLIENT_CONNECT_CHECK_H_
#define TELEMETRY_CLIENT_CONNECT_CHECK_H_

#include <grpcpp/channel.h>
#include <grpcpp/support/status.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace telemetry::client {

// "UNAUTHENTICATED", "UNAVAILABLE", ...: the names gRPC's documentation uses.
absl::string_view StatusCodeName(grpc::StatusCode code);

// "UNAVAILABLE: <message>", for one line of an error report.
std::string DescribeStatus(const grpc::Status& status);

// grpc.health.v1 serving status.
enum class ServingStatus { kUnknown = 0, kServing = 1, kNotServing = 2, kServiceUnknown = 3 };
absl::string_view ServingStatusName(ServingStatus status);

// Health/Check(`service`; "" is the server as a whole) within `timeout`. The
// error is the call's status (its code and gRPC's message).
absl::StatusOr<ServingStatus> CheckHealth(const std::shared_ptr<grpc::Channel>& channel,
                                          const std::string& service, absl::Duration timeout);

// OK once a call reaches the server at `target` (any answer counts, even
// UNIMPLEMENTED or UNAUTHENTICATED); otherwise Unavailable or
// DeadlineExceeded saying what failed: "cannot reach 127.0.0.1:1: ..." with
// the channel's state and gRPC's error.
absl::Status CheckReachable(const std::shared_ptr<grpc::Channel>& channel,
                            const std::string& target, absl::Duration timeout);

}  // namespace telemetry::client

#endif  // TELEMETRY_CLIENT_CONNECT_CHECK_H_
