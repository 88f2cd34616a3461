// A plaintext loopback channel that retries a refused connection within
// half a second rather than after gRPC's default backoff of up to two
// minutes: for fault tests that stop and start servers under a client.
#ifndef TELEMETRY_TESTS_SUPPORT_FAST_RECONNECT_CHANNEL_H_
#define TELEMETRY_TESTS_SUPPORT_FAST_RECONNECT_CHANNEL_H_

#include <grpcpp/grpcpp.h>

#include <memory>

#include "absl/strings/str_cat.h"

namespace telemetry::testing {

inline std::shared_ptr<grpc::Channel> FastReconnectChannel(int port) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 500);
  return grpc::CreateCustomChannel(absl::StrCat("127.0.0.1:", port),
                                   grpc::InsecureChannelCredentials(), args);
}

}  // namespace telemetry::testing

#endif  // TELEMETRY_TESTS_SUPPORT_FAST_RECONNECT_CHANNEL_H_
