// The connection flags telemetryctl and loadgen share: --plaintext,
// --tls_ca, --tls_cert, --tls_key, --tls_server_name, --token_file, each with
// a TELEMETRY_* environment fallback, and --connect_timeout.
#ifndef TELEMETRY_CLIENT_CHANNEL_FLAGS_H_
#define TELEMETRY_CLIENT_CHANNEL_FLAGS_H_

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "client/channel.h"

namespace telemetry::client {

// The options the flags describe; fails when the token file is unreadable.
absl::StatusOr<ChannelOptions> ChannelOptionsFromFlags();

// A bearer token kept in a file (surrounding whitespace dropped).
absl::StatusOr<std::string> ReadTokenFile(const std::string& path);

// --connect_timeout: how long a command waits for its first connection.
absl::Duration ConnectTimeoutFromFlags();

// OpenChannel(target, ChannelOptionsFromFlags()).
absl::StatusOr<std::shared_ptr<grpc::Channel>> OpenChannelFromFlags(const std::string& target);

}  // namespace telemetry::client

#endif  // TELEMETRY_CLIENT_CHANNEL_FLAGS_H_
