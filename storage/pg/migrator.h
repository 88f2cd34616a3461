// Applies and reverts versioned schema migrations.
//
// Safety properties:
//  * Concurrent starters serialise on a session advisory lock; the loser
//    waits, then finds nothing left to do.
//  * Each transactional migration and its schema_migrations row commit
//    together; a migration marked "transaction: none" runs statement by
//    statement (it must be written to be re-runnable, e.g. IF NOT EXISTS).
//  * An applied migration whose file changed since (checksum mismatch), or
//    that the binary no longer knows, stops the run with FailedPrecondition.
//  * The storage mode is decided once, on the first run, and recorded.
#ifndef TELEMETRY_STORAGE_PG_MIGRATOR_H_
#define TELEMETRY_STORAGE_PG_MIGRATOR_H_

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "storage/pg/connection.h"
#include "storage/pg/migration.h"

namespace telemetry::pg {

struct MigratorOptions {
  // nullopt: auto-detect (timescale when the extension is installed or can
  // be created because it is preloaded; native otherwise).
  std::optional<StorageMode> mode;
  // TimescaleDB settings (ignored in native mode), as PostgreSQL intervals.
  std::string chunk_interval = "1 day";
  std::string compress_after = "7 days";
  std::string retention = "180 days";
  // Continuous aggregate refresh policy (timescale mode; the read service
  // applies the same settings itself in native mode).
  std::string cagg_schedule = "30 minutes";
  // The seed says 2 hours; TimescaleDB refuses a window under two buckets
  // (2h - 30m = 1.5 one-hour buckets), see docs/schema.md.
  std::string cagg_start_offset = "3 hours";
  std::string cagg_end_offset = "30 minutes";
  // How long to wait for another starter holding the migration lock.
  absl::Duration lock_timeout = absl::Minutes(2);
};

struct AppliedMigration {
  int version = 0;
  std::string name;
  std::string checksum;
  std::string storage_mode;
  std::string applied_at;
};

struct MigrationState {
  std::optional<StorageMode> mode;  // nullopt before the first migration
  std::vector<AppliedMigration> applied;
  std::vector<Migration> pending;  // for the recorded (or detected) mode
};

class Migrator {
 public:
  // `conn` must outlive the Migrator and is used exclusively by it.
  Migrator(Connection* conn, std::vector<Migration> migrations,
           MigratorOptions options);

  // Applies every pending migration. Returns how many were applied.
  absl::StatusOr<int> Up();

  // Reverts applied migrations with version > target_version, newest first.
  // Returns how many were reverted.
  absl::StatusOr<int> Down(int target_version);

  absl::StatusOr<MigrationState> Status();

  // Whether this database can run TimescaleDB.
  absl::StatusOr<bool> TimescaleAvailable();

 private:
  absl::Status Lock();
  void Unlock();
  absl::Status EnsureTable();
  absl::StatusOr<std::vector<AppliedMigration>> ReadApplied();
  absl::StatusOr<StorageMode> ResolveMode(
      const std::vector<AppliedMigration>& applied);
  absl::Status Verify(const std::vector<AppliedMigration>& applied,
                      StorageMode mode) const;
  absl::Status SetSessionSettings();
  // Runs `sql`, then `bookkeeping` (in the same transaction when
  // transactional).
  absl::Status RunSql(const std::string& sql, bool transactional,
                      const std::function<absl::Status()>& bookkeeping);
  const Migration* Find(int version, StorageMode mode) const;

  Connection* conn_;
  std::vector<Migration> migrations_;
  MigratorOptions options_;
};

}  // namespace telemetry::pg

#endif  // TELEMETRY_STORAGE_PG_MIGRATOR_H_
