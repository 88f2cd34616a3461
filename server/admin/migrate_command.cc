#include "server/admin/migrate_command.h"

#include <iostream>

#include "absl/strings/str_cat.h"
#include "storage/pg/connection.h"
#include "storage/pg/migrator.h"

namespace telemetry::admin {
namespace {

int Fail(const absl::Status& s) {
  std::cerr << "telemetryctl: " << s.message() << "\n";
  return 1;
}

}  // namespace

int RunMigrateCommand(const std::string& verb, const MigrateCommandOptions& flags) {
  const std::string& url = flags.database_url;
  if (url.empty()) return Fail(absl::InvalidArgumentError("set DATABASE_URL or --database_url"));
  auto conn = pg::Connection::Open(url);
  if (!conn.ok()) return Fail(conn.status());
  auto migrations = pg::LoadEmbeddedMigrations();
  if (!migrations.ok()) return Fail(migrations.status());
  pg::MigratorOptions options;
  if (const std::string& m = flags.storage_mode; m != "auto") {
    auto mode = pg::ParseStorageMode(m);
    if (!mode.ok()) return Fail(mode.status());
    options.mode = *mode;
  }
  options.chunk_interval = flags.chunk_interval;
  options.compress_after = flags.compress_after;
  options.retention = flags.retention;
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
    auto n = migrator.Down(flags.down_to);
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
