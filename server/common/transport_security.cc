#include "server/common/transport_security.h"

#include <grpcpp/security/auth_context.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/security/tls_certificate_provider.h>
#include <grpcpp/security/tls_credentials_options.h>
#include <grpcpp/server_context.h>

#include <algorithm>
#include <fstream>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace telemetry {

absl::StatusOr<std::string> ReadFileToString(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", path));
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

namespace {

absl::StatusOr<std::string> ReadPem(const std::string& path, absl::string_view what) {
  auto text = ReadFileToString(path);
  if (!text.ok()) return text.status();
  if (!absl::StrContains(*text, "-----BEGIN ")) {
    return absl::InvalidArgumentError(absl::StrCat(what, " file ", path, " is not PEM"));
  }
  return text;
}

}  // namespace

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(
    const ServerTransportSecurity& options) {
  const bool has_cert = !options.cert_file.empty() || !options.key_file.empty();
  if (options.plaintext) {
    if (has_cert || !options.client_ca_file.empty()) {
      return absl::InvalidArgumentError(
          "plaintext was asked for together with TLS certificates; choose one");
    }
    return grpc::InsecureServerCredentials();
  }
  if (options.cert_file.empty() || options.key_file.empty()) {
    return absl::InvalidArgumentError(
        "TLS needs a certificate and a key (--tls_cert and --tls_key); plaintext must be "
        "asked for explicitly (--plaintext), for loopback development only");
  }
  // Read once here so that a missing or malformed file fails start-up with
  // a clear error rather than every handshake later.
  auto cert = ReadPem(options.cert_file, "certificate");
  if (!cert.ok()) return cert.status();
  auto key = ReadPem(options.key_file, "private key");
  if (!key.ok()) return key.status();
  if (!options.client_ca_file.empty()) {
    auto ca = ReadPem(options.client_ca_file, "client CA");
    if (!ca.ok()) return ca.status();
  }
  // Then served from a watcher that re-reads them (gRPC's file-watcher
  // provider keeps the last good pair when a read fails mid-rotation).
  const auto refresh = static_cast<unsigned int>(
      std::max<int64_t>(1, absl::ToInt64Seconds(options.certificate_refresh)));
  auto provider = std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
      options.key_file, options.cert_file, options.client_ca_file, refresh);
  grpc::experimental::TlsServerCredentialsOptions tls(provider);
  tls.watch_identity_key_cert_pairs();
  if (!options.client_ca_file.empty()) {
    tls.watch_root_certs();
    tls.set_cert_request_type(GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  }
  return grpc::experimental::TlsServerCredentials(tls);
}

absl::string_view TransportName(const ServerTransportSecurity& options) {
  if (options.plaintext) return "plaintext";
  return options.client_ca_file.empty() ? "tls" : "mtls";
}

std::string PeerCertificateName(const grpc::ServerContextBase& context) {
  std::shared_ptr<const grpc::AuthContext> auth = context.auth_context();
  if (auth == nullptr || !auth->IsPeerAuthenticated()) return "";
  for (const grpc::string_ref& cn : auth->FindPropertyValues(GRPC_X509_CN_PROPERTY_NAME)) {
    return std::string(cn.data(), cn.size());
  }
  return "";
}

}  // namespace telemetry
