#include "client/channel_flags.h"

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include "absl/flags/flag.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "server/common/flags_env.h"

ABSL_FLAG(bool, plaintext, false,
          "Connect without TLS: loopback development only (env TELEMETRY_PLAINTEXT=1)");
ABSL_FLAG(std::string, tls_ca, "",
          "PEM CA to verify the server with; default: system roots (env TELEMETRY_TLS_CA)");
ABSL_FLAG(std::string, tls_cert, "",
          "PEM client certificate, for mutual TLS (env TELEMETRY_TLS_CERT)");
ABSL_FLAG(std::string, tls_key, "", "PEM key of --tls_cert (env TELEMETRY_TLS_KEY)");
ABSL_FLAG(std::string, tls_server_name, "",
          "Name to check the server certificate against, when it differs from the target");
ABSL_FLAG(std::string, token_file, "",
          "File holding the bearer token (device or API token) (env TELEMETRY_TOKEN_FILE; "
          "the token itself may be given as env TELEMETRY_TOKEN, never as a flag, so it "
          "does not show in process listings)");

ABSL_FLAG(absl::Duration, connect_timeout, absl::Seconds(10),
          "fail when no connection to the service is made within this long");

namespace telemetry::client {

absl::StatusOr<ChannelOptions> ChannelOptionsFromFlags() {
  ChannelOptions o;
  const char* plain = std::getenv("TELEMETRY_PLAINTEXT");
  o.plaintext = absl::GetFlag(FLAGS_plaintext) || (plain != nullptr && std::string(plain) == "1");
  o.ca_file = FlagOrEnv(FLAGS_tls_ca, "TELEMETRY_TLS_CA");
  o.cert_file = FlagOrEnv(FLAGS_tls_cert, "TELEMETRY_TLS_CERT");
  o.key_file = FlagOrEnv(FLAGS_tls_key, "TELEMETRY_TLS_KEY");
  o.server_name = absl::GetFlag(FLAGS_tls_server_name);
  if (std::string file = FlagOrEnv(FLAGS_token_file, "TELEMETRY_TOKEN_FILE"); !file.empty()) {
    auto token = ReadTokenFile(file);
    if (!token.ok()) return token.status();
    o.bearer_token = *std::move(token);
  } else if (const char* token = std::getenv("TELEMETRY_TOKEN"); token != nullptr) {
    o.bearer_token = token;
  }
  return o;
}

absl::StatusOr<std::string> ReadTokenFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read token file ", path));
  std::ostringstream text;
  text << in.rdbuf();
  return std::string(absl::StripAsciiWhitespace(text.str()));
}

absl::Duration ConnectTimeoutFromFlags() { return absl::GetFlag(FLAGS_connect_timeout); }

absl::StatusOr<std::shared_ptr<grpc::Channel>> OpenChannelFromFlags(const std::string& target) {
  auto options = ChannelOptionsFromFlags();
  if (!options.ok()) return options.status();
  return OpenChannel(target, *options);
}

}  // namespace telemetry::client
