// A throwaway certificate authority for TLS tests, made with the openssl
// command-line tool: a CA, a server certificate for 127.0.0.1/localhost,
// client certificates with chosen common names, and a second, untrusted CA
// with its own client certificate (to show it is refused).
#ifndef TELEMETRY_TESTS_SUPPORT_TEST_PKI_H_
#define TELEMETRY_TESTS_SUPPORT_TEST_PKI_H_

#include <string>

#include "absl/status/statusor.h"

namespace telemetry::testing {

struct TestPki {
  std::string dir;
  std::string ca_cert;      // trusted CA
  std::string server_cert;  // CN=localhost, SAN IP:127.0.0.1, DNS:localhost
  std::string server_key;
  // Paths of a client certificate and key signed by the trusted CA.
  std::string ClientCert(const std::string& cn) const { return dir + "/client-" + cn + ".pem"; }
  std::string ClientKey(const std::string& cn) const { return dir + "/client-" + cn + ".key"; }
  std::string rogue_cert;  // CN=rogue, signed by a CA the server does not trust
  std::string rogue_key;
};

// Creates the files under `dir` (which must exist), with one client
// certificate per name in `client_names`.
absl::StatusOr<TestPki> MakeTestPki(const std::string& dir,
                                    const std::vector<std::string>& client_names);

}  // namespace telemetry::testing

#endif  // TELEMETRY_TESTS_SUPPORT_TEST_PKI_H_
