// How a gRPC server listens: TLS (optionally requiring client certificates,
// i.e. mutual TLS), or plaintext when, and only when, explicitly asked for.
// Both services take this from their flags; there is no silent fallback to
// plaintext when certificates are missing.
#ifndef TELEMETRY_SERVER_COMMON_TRANSPORT_SECURITY_H_
#define TELEMETRY_SERVER_COMMON_TRANSPORT_SECURITY_H_

#include <grpcpp/security/server_credentials.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/strings/string_view.h"

namespace grpc {
class ServerContextBase;
}

namespace telemetry {

struct ServerTransportSecurity {
  // PEM files: the server's certificate chain and private key.
  std::string cert_file;
  std::string key_file;
  // PEM file of the CA(s) that sign client certificates. Non-empty: every
  // client must present a certificate that chains to it (mutual TLS), and
  // its subject's CN is the caller's identity (see PeerCertificateName).
  std::string client_ca_file;
  // Plaintext HTTP/2: for loopback development and tests only.
  bool plaintext = false;
  // How often the three files are re-read. A rotated certificate (a renewed
  // Kubernetes secret, cert-manager, certbot) is served to new connections
  // without a restart; open connections keep the one they started with.
  absl::Duration certificate_refresh = absl::Minutes(1);
};

// The credentials to listen with. InvalidArgument when neither certificates
// nor plaintext were given, or both; NotFound/InvalidArgument when a file is
// missing or is not PEM.
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(
    const ServerTransportSecurity& options);

// "tls", "mtls" or "plaintext", for logs.
absl::string_view TransportName(const ServerTransportSecurity& options);

// The common name of the client certificate the peer presented and the
// server verified (mutual TLS), or "" when there is none.
std::string PeerCertificateName(const grpc::ServerContextBase& context);

// Reads a whole file (certificates, keys, token files).
absl::StatusOr<std::string> ReadFileToString(const std::string& path);

}  // namespace telemetry

#endif  // TELEMETRY_SERVER_COMMON_TRANSPORT_SECURITY_H_
