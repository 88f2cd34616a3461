#include "server/admin/migrate_command.h"

#include <iostream>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "server/common/flags_env.h"
#include "storage/pg/connection.h"
#include "storage/pg/migrator.h"

ABSL_FLAG(std::string, database_url, "",
          "PostgreSQL conninfo or URI (env DATABASE_URL)");
ABSL_FLAG(std::string, storage_mode, "auto",
          "migrate apply on a fresh database: native, timescale or auto");
ABSL_FLAG(std::string, chunk_interval, "1 day", "timescale: chunk interval");
ABSL_FLAG(std::string, compress_after, "7 days",
          "timescale: compress chunks older than this");
ABSL_FLAG(std::string, retention, "180 days",
          "timescale: drop chunks older than this");
ABSL_FLAG(int, to, 0, "migrate down: the version to go back to");

namespace telemetry::admin {
namespace {

int Fail(const absl::Status& s) {
  std::cerr << "telemetryctl: " << s.message() << "\n";
  return 1;
}

}  // namespace

int RunMigrateCommand(const std::string& verb) {
  std::string url = FlagOrEnv(FLAGS_database_url, "DATABASE_URL");
  if (url.empty()) return Fail(absl::InvalidArgumentError("set DATABASE_URL or --database_url"));
  auto conn = pg::Connection::Open(url);
  if (!conn.ok()) return Fail(conn.status());
  auto migrations = pg::LoadEmbeddedMigrations();
  if (!migrations.ok()) return Fail(migrations.status());
  pg::MigratorOptions options;
  if (std::string m = absl::GetFlag(FLAGS_storage_mode); m != "auto") {
    auto mode = pg::ParseStorageMode(m);
    if (!mode.ok()) return Fail(mode.status());
    options.mode = *mode;
  }
  options.chunk_interval = absl::GetFlag(FLAGS_chunk_interval);
  options.compress_after = absl::GetFlag(FLAGS_compress_after);
  options.retention = absl::GetFlag(FLAGS_retention);
  pg::Migrator migrator(conn->get(), *migrations, options);
  if (verb == "apply") {
    auto n = migrator.Up();
    if (!n.ok()) return Fail(n.status());
    auto state = migrator.Status();
    if (!state.ok()) return Fail(state.status());
    std::cout << "applied " << *n << " migration(s); storage mode "
              << pg::StorageModeName(*state->mode) << "\n";
    return 0;
  }
  if (verb == "down") {
    auto n = migrator.Down(absl::GetFlag(FLAGS_to));
    if (!n.ok()) return Fail(n.status());
    std::cout << "reverted " << *n << " migration(s)\n";
    return 0;
  }
  if (verb == "status") {
    auto state = migrator.Status();
    if (!state.ok()) return Fail(state.status());
    std::cout << "storage mode: "
              << (state->mode ? pg::StorageModeName(*state->mode)
                              : "(not migrated)")
              << "\n";
    for (const auto& a : state->applied) {
      std::cout << "applied  " << a.version << "  " << a.name << "  "
                << a.applied_at << "\n";
    }
    for (const auto& p : state->pending) {
      std::cout << "pending  " << p.version << "  " << p.name << "\n";
    }
    return 0;
  }
  return Fail(absl::InvalidArgumentError(
      absl::StrCat("unknown migrate command '", verb, "'")));
}

}  // namespace telemetry::admin
