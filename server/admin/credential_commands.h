// telemetryctl's credential commands: issue, rotate, list and revoke device
// credentials and API tokens (DATABASE_URL: a role that owns the tables).
// Operator code that talks to the database directly, so it lives with the
// servers, not in the client library edge devices link.
#ifndef TELEMETRY_SERVER_ADMIN_CREDENTIAL_COMMANDS_H_
#define TELEMETRY_SERVER_ADMIN_CREDENTIAL_COMMANDS_H_

#include <string>
#include <vector>

#include "client/output_format.h"

namespace telemetry::admin {

inline constexpr const char* kCredentialCommandsUsage = R"(Credentials (DATABASE_URL; tokens are printed once and stored hashed):
  device add ID --sensors=P[,P...] [--mtls]
                     register a device allowed to write sensors matching the
                     patterns (exact ids, or prefixes ending in '*'); prints
                     its bearer token, or with --mtls none (the device then
                     authenticates by a client certificate whose CN is ID)
  device rotate ID   issue a new token for ID (the old one stops working)
  device revoke ID   revoke ID's credentials
  device list        list devices (never tokens)
  token add NAME --scope=read|admin
                     issue a read-service API token
  token revoke NAME  revoke an API token
  token list         list API tokens (never the tokens))";

// What the command line said besides the arguments (the CLI owns the flags).
struct CredentialCommandOptions {
  std::string database_url;  // a role that owns the credential tables
  std::string sensors;       // device add: comma-separated patterns
  bool mtls = false;         // device add: no token, certificate CN only
  std::string scope = "read";  // token add: read or admin
  client::OutputFormat format = client::OutputFormat::kCsv;  // list
};

// Runs `args` (e.g. {"device", "add", "pump-7"}); the exit code, or -1
// when `args` is not a credential command.
int RunCredentialCommand(const std::vector<std::string>& args,
                         const CredentialCommandOptions& options);

}  // namespace telemetry::admin

#endif  // TELEMETRY_SERVER_ADMIN_CREDENTIAL_COMMANDS_H_
