// telemetryctl migrate: apply, list and revert the schema migrations
// embedded in the binary (DATABASE_URL: the owner role). Operator code that
// talks to the database directly, so it lives with the servers, not in the
// client library edge devices link.
#ifndef TELEMETRY_SERVER_ADMIN_MIGRATE_COMMAND_H_
#define TELEMETRY_SERVER_ADMIN_MIGRATE_COMMAND_H_

#include <string>

namespace telemetry::admin {

inline constexpr const char* kMigrateCommandsUsage = R"(Schema (DATABASE_URL):
  migrate apply      apply pending schema migrations (--storage_mode on a
                     fresh database: native, timescale or auto)
  migrate status     show applied and pending migrations
  migrate down --to=N  revert migrations newer than version N)";

// What the command line said besides the verb (the CLI owns the flags).
struct MigrateCommandOptions {
  std::string database_url;         // the owner role
  std::string storage_mode = "auto";  // a fresh database: native, timescale or auto
  std::string chunk_interval = "1 day";
  std::string compress_after = "7 days";
  std::string retention = "180 days";
  int down_to = 0;  // migrate down: the version to go back to
};

// Runs `migrate <verb>`; the exit code.
int RunMigrateCommand(const std::string& verb, const MigrateCommandOptions& options);

}  // namespace telemetry::admin

#endif  // TELEMETRY_SERVER_ADMIN_MIGRATE_COMMAND_H_
