// grpc.health.v1.Health/Check for tests, through a generic stub (the health
// proto is not part of our API).
#ifndef TELEMETRY_TESTS_SUPPORT_HEALTH_CHECK_H_
#define TELEMETRY_TESTS_SUPPORT_HEALTH_CHECK_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

namespace telemetry::testing {

inline constexpr int kHealthServing = 1, kHealthNotServing = 2;

// The status `channel`'s server reports for `service` ("" for the server as
// a whole): kHealthServing, kHealthNotServing, 0 (UNKNOWN), or negative when
// the call failed.
int HealthStatus(const std::shared_ptr<grpc::Channel>& channel, const std::string& service);

}  // namespace telemetry::testing

#endif  // TELEMETRY_TESTS_SUPPORT_HEALTH_CHECK_H_
