#include "tests/support/test_pki.h"

#include <fstream>
#include <vector>

#include "absl/strings/str_cat.h"
#include "storage/local/local_servers.h"

namespace telemetry::testing {
namespace {

absl::Status Openssl(const std::vector<std::string>& args, const std::string& log) {
  std::vector<std::string> argv = {"/usr/bin/openssl"};  // execv: no PATH lookup
  argv.insert(argv.end(), args.begin(), args.end());
  auto rc = local::RunCommand(argv, "", log);
  if (!rc.ok()) return rc.status();
  if (*rc != 0) {
    return absl::InternalError(absl::StrCat("openssl ", args[0], " failed; see ", log));
  }
  return absl::OkStatus();
}

// A key and a certificate for `subject`, signed by `ca` (self-signed CA
// when `ca` is empty).
absl::Status Issue(const std::string& dir, const std::string& name, const std::string& subject,
                   const std::string& ca, const std::string& extensions) {
  const std::string key = absl::StrCat(dir, "/", name, ".key");
  const std::string cert = absl::StrCat(dir, "/", name, ".pem");
  const std::string log = absl::StrCat(dir, "/openssl.log");
  if (ca.empty()) {
    return Openssl({"req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-keyout", key, "-out", cert, "-days", "2", "-subj", subject,
                    "-addext", "basicConstraints=critical,CA:TRUE", "-addext",
                    "keyUsage=critical,keyCertSign,cRLSign"},
                   log);
  }
  const std::string csr = absl::StrCat(dir, "/", name, ".csr");
  if (absl::Status s = Openssl({"req", "-newkey", "ec", "-pkeyopt",
                                "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out",
                                csr, "-subj", subject},
                               log);
      !s.ok()) {
    return s;
  }
  const std::string ext = absl::StrCat(dir, "/", name, ".ext");
  std::ofstream(ext) << extensions << "\n";
  return Openssl({"x509", "-req", "-in", csr, "-CA", absl::StrCat(dir, "/", ca, ".pem"),
                  "-CAkey", absl::StrCat(dir, "/", ca, ".key"), "-CAcreateserial", "-out",
                  cert, "-days", "2", "-extfile", ext},
                 log);
}

}  // namespace

absl::StatusOr<TestPki> MakeTestPki(const std::string& dir,
                                    const std::vector<std::string>& client_names) {
  TestPki pki;
  pki.dir = dir;
  if (absl::Status s = Issue(dir, "ca", "/CN=telemetry test CA", "", ""); !s.ok()) return s;
  if (absl::Status s = Issue(dir, "rogue-ca", "/CN=rogue CA", "", ""); !s.ok()) return s;
  if (absl::Status s = Issue(dir, "server", "/CN=localhost", "ca",
                             "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
                             "extendedKeyUsage=serverAuth");
      !s.ok()) {
    return s;
  }
  for (const std::string& cn : client_names) {
    if (absl::Status s = Issue(dir, "client-" + cn, "/CN=" + cn, "ca",
                               "extendedKeyUsage=clientAuth");
        !s.ok()) {
      return s;
    }
  }
  if (absl::Status s = Issue(dir, "rogue", "/CN=rogue", "rogue-ca", "extendedKeyUsage=clientAuth");
      !s.ok()) {
    return s;
  }
  pki.ca_cert = dir + "/ca.pem";
  pki.server_cert = dir + "/server.pem";
  pki.server_key = dir + "/server.key";
  pki.rogue_cert = dir + "/rogue.pem";
  pki.rogue_key = dir + "/rogue.key";
  return pki;
}

}  // namespace telemetry::testing
