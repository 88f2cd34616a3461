// Opening a channel to either service the way an operator or a device
// should: TLS by default (server verified against a CA, optionally with a
// client certificate for mutual TLS), plaintext only when asked for, and a
// bearer token attached to every call when one is configured.
#ifndef TELEMETRY_CLIENT_CHANNEL_H_
#define TELEMETRY_CLIENT_CHANNEL_H_

#include <grpcpp/channel.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace telemetry::client {

struct ChannelOptions {
  // PEM file of the CA that signed the server's certificate; empty: the
  // system's roots.
  std::string ca_file;
  // PEM files of this client's certificate and key (mutual TLS); both or
  // neither.
  std::string cert_file;
  std::string key_file;
  // Overrides the name checked against the server's certificate (e.g. when
  // dialling an IP address whose certificate names a host).
  std::string server_name;
  // Plaintext HTTP/2, for loopback development; excludes the TLS fields.
  bool plaintext = false;
  // Sent as "authorization: Bearer <token>" on every call when non-empty.
  std::string bearer_token;
  // Its own TCP connection rather than one shared with other channels to the
  // same target (gRPC pools connections process-wide). Simulated devices set
  // it, so a load test has as many connections as the fleet it imitates.
  bool dedicated_connection = false;
};

// `target` is one address ("host:port", a DNS name, or any gRPC target URI)
// or a comma-separated list of IP addresses ("127.0.0.1:50051,127.0.0.1:
// 50061", "[::1]:50051,[::1]:50061"), i.e. several gateways. Streams and
// calls are spread over every address (gRPC's round_robin policy, also over
// the several records of one DNS name); an address that stops answering is
// skipped until it answers again, so a stream that lost its gateway resumes
// on another.
absl::StatusOr<std::shared_ptr<grpc::Channel>> OpenChannel(const std::string& target,
                                                          const ChannelOptions& options);

// The gRPC target for `addresses` as OpenChannel accepts them: one address
// or a gRPC URI ("ipv4:", "dns:", ...) unchanged; a list as an "ipv4:" or
// "ipv6:" URI (the channel's authority is then its first address). InvalidArgument for a
// list holding a host name, an address without a port, or both families.
absl::StatusOr<std::string> ChannelTarget(const std::string& addresses);

}  // namespace telemetry::client

#endif  // TELEMETRY_CLIENT_CHANNEL_H_
