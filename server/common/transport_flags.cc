#include "server/common/transport_flags.h"

#include <cstdlib>
#include <string>

#include "absl/flags/flag.h"
#include "server/common/flags_env.h"

ABSL_FLAG(std::string, tls_cert, "",
          "PEM certificate chain to serve TLS with (env TLS_CERT_FILE)");
ABSL_FLAG(std::string, tls_key, "", "PEM private key of --tls_cert (env TLS_KEY_FILE)");
ABSL_FLAG(std::string, tls_client_ca, "",
          "PEM CA that signs client certificates; when set, clients must present one "
          "(mutual TLS) (env TLS_CLIENT_CA_FILE)");
ABSL_FLAG(bool, plaintext, false,
          "Serve plaintext HTTP/2 instead of TLS: loopback development only (env PLAINTEXT=1)");

namespace telemetry {

ServerTransportSecurity TransportSecurityFromFlags() {
  ServerTransportSecurity t;
  t.cert_file = FlagOrEnv(FLAGS_tls_cert, "TLS_CERT_FILE");
  t.key_file = FlagOrEnv(FLAGS_tls_key, "TLS_KEY_FILE");
  t.client_ca_file = FlagOrEnv(FLAGS_tls_client_ca, "TLS_CLIENT_CA_FILE");
  const char* env = std::getenv("PLAINTEXT");
  t.plaintext = absl::GetFlag(FLAGS_plaintext) || (env != nullptr && std::string(env) == "1");
  return t;
}

}  // namespace telemetry
