#include "client/channel.h"

#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/support/client_interceptor.h>

#include <arpa/inet.h>

#include <fstream>
#include <sstream>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace telemetry::client {
namespace {

absl::StatusOr<std::string> ReadPem(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", path));
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

// Adds the bearer token to each call's initial metadata. An interceptor
// rather than call credentials because gRPC sends call credentials only on
// TLS channels, and a loopback development setup may be plaintext.
class BearerTokenInterceptor : public grpc::experimental::Interceptor {
 public:
  explicit BearerTokenInterceptor(const std::string* header) : header_(header) {}
  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(
            grpc::experimental::InterceptionHookPoints::PRE_SEND_INITIAL_METADATA)) {
      methods->GetSendInitialMetadata()->emplace("authorization", *header_);
    }
    methods->Proceed();
  }

 private:
  const std::string* header_;
};

class BearerTokenInterceptorFactory
    : public grpc::experimental::ClientInterceptorFactoryInterface {
 public:
  explicit BearerTokenInterceptorFactory(std::string token)
      : header_(absl::StrCat("Bearer ", token)) {}
  grpc::experimental::Interceptor* CreateClientInterceptor(
      grpc::experimental::ClientRpcInfo*) override {
    return new BearerTokenInterceptor(&header_);
  }

 private:
  const std::string header_;  // outlives the channel's interceptors
};

enum class Family { kIpv4, kIpv6, kNeither };

// "1.2.3.4:50051" or "[::1]:50051"; its family when it is such a literal
// with a valid port.
Family AddressFamily(absl::string_view address) {
  const size_t colon = address.rfind(':');
  if (colon == absl::string_view::npos) return Family::kNeither;
  uint32_t port = 0;
  if (!absl::SimpleAtoi(address.substr(colon + 1), &port) || port == 0 || port > 65535) {
    return Family::kNeither;
  }
  std::string host(address.substr(0, colon));
  unsigned char buf[sizeof(in6_addr)];
  if (inet_pton(AF_INET, host.c_str(), buf) == 1) return Family::kIpv4;
  if (host.size() > 2 && host.front() == '[' && host.back() == ']' &&
      inet_pton(AF_INET6, host.substr(1, host.size() - 2).c_str(), buf) == 1) {
    return Family::kIpv6;
  }
  return Family::kNeither;
}

}  // namespace

absl::StatusOr<std::string> ChannelTarget(const std::string& addresses) {
  // A gRPC target URI is gRPC's to read, commas and all.
  for (const char* scheme : {"ipv4:", "ipv6:", "dns:", "unix:", "unix-abstract:", "vsock:",
                             "xds:"}) {
    if (absl::StartsWith(addresses, scheme)) return addresses;
  }
  std::vector<std::string> list;
  for (absl::string_view a : absl::StrSplit(addresses, ',', absl::SkipWhitespace())) {
    list.emplace_back(absl::StripAsciiWhitespace(a));
  }
  if (list.empty()) return absl::InvalidArgumentError("no address given");
  if (list.size() == 1) return list[0];
  const Family family = AddressFamily(list[0]);
  for (const std::string& a : list) {
    const Family f = AddressFamily(a);
    if (f == Family::kNeither) {
      return absl::InvalidArgumentError(absl::StrCat(
          "in a list of addresses each must be an IP address with a port (1.2.3.4:50051 "
          "or [::1]:50051), not \"", a, "\"; for host names use one DNS name with several "
          "records"));
    }
    if (f != family) {
      return absl::InvalidArgumentError(
          "a list of addresses must be all IPv4 or all IPv6 (one DNS name can hold both)");
    }
  }
  return absl::StrCat(family == Family::kIpv4 ? "ipv4:" : "ipv6:", absl::StrJoin(list, ","));
}

absl::StatusOr<std::shared_ptr<grpc::Channel>> OpenChannel(const std::string& target,
                                                          const ChannelOptions& options) {
  std::shared_ptr<grpc::ChannelCredentials> creds;
  const bool any_tls = !options.ca_file.empty() || !options.cert_file.empty() ||
                       !options.key_file.empty();
  if (options.plaintext) {
    if (any_tls) {
      return absl::InvalidArgumentError(
          "plaintext was asked for together with TLS files; choose one");
    }
    creds = grpc::InsecureChannelCredentials();
  } else {
    if (options.cert_file.empty() != options.key_file.empty()) {
      return absl::InvalidArgumentError("a client certificate needs its key, and vice versa");
    }
    grpc::SslCredentialsOptions ssl;
    if (!options.ca_file.empty()) {
      auto ca = ReadPem(options.ca_file);
      if (!ca.ok()) return ca.status();
      ssl.pem_root_certs = *ca;
    }
    if (!options.cert_file.empty()) {
      auto cert = ReadPem(options.cert_file);
      if (!cert.ok()) return cert.status();
      auto key = ReadPem(options.key_file);
      if (!key.ok()) return key.status();
      ssl.pem_cert_chain = *cert;
      ssl.pem_private_key = *key;
    }
    creds = grpc::SslCredentials(ssl);
  }
  absl::StatusOr<std::string> channel_target = ChannelTarget(target);
  if (!channel_target.ok()) return channel_target.status();
  grpc::ChannelArguments args;
  // Every address gets streams, not only the first that answers (gRPC's
  // default, pick_first).
  args.SetLoadBalancingPolicyName("round_robin");
  if (*channel_target != target && !absl::StartsWith(target, "ipv")) {
    // A list: the authority (and the name TLS checks, unless server_name
    // says otherwise) is the first address, not the whole list.
    std::vector<absl::string_view> first = absl::StrSplit(target, ',');
    args.SetString(GRPC_ARG_DEFAULT_AUTHORITY,
                   std::string(absl::StripAsciiWhitespace(first.front())));
  }
  if (!options.server_name.empty()) {
    args.SetSslTargetNameOverride(options.server_name);
  }
  if (options.dedicated_connection) args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  std::vector<std::unique_ptr<grpc::experimental::ClientInterceptorFactoryInterface>>
      interceptors;
  if (!options.bearer_token.empty()) {
    interceptors.push_back(
        std::make_unique<BearerTokenInterceptorFactory>(options.bearer_token));
  }
  return grpc::experimental::CreateCustomChannelWithInterceptors(*channel_target, creds, args,
                                                                 std::move(interceptors));
}

}  // namespace telemetry::client
