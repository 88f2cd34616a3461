#include "storage/pg/migrator.h"

#include <utility>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace telemetry::pg {
namespace {

// Arbitrary but fixed: "telemetry-gateway migrations".
constexpr const char* kLockKey = "7460696312440553";

constexpr const char* kCreateTable = R"sql(
CREATE TABLE IF NOT EXISTS schema_migrations (
    version       integer     NOT NULL PRIMARY KEY,
    name          text        NOT NULL,
    checksum      text        NOT NULL,
    storage_mode  text        NOT NULL,
    applied_at    timestamptz NOT NULL DEFAULT now(),
    execution_ms  bigint      NOT NULL
))sql";

}  // namespace

Migrator::Migrator(Connection* conn, std::vector<Migration> migrations,
                   MigratorOptions options)
    : conn_(conn),
      migrations_(std::move(migrations)),
      options_(std::move(options)) {}

absl::Status Migrator::Lock() {
  absl::Time deadline = absl::Now() + options_.lock_timeout;
  absl::Duration backoff = absl::Milliseconds(20);
  while (true) {
    absl::StatusOr<Result> r =
        conn_->Query("SELECT pg_try_advisory_lock($1::bigint)", {kLockKey});
    if (!r.ok()) return r.status();
    if (r->GetBool(0, 0)) return absl::OkStatus();
    if (absl::Now() >= deadline) {
      return absl::DeadlineExceededError(
          "another migrator held the migration lock for too long");
    }
    absl::SleepFor(backoff);  // waiting on another process, not a test sync
    backoff = std::min(backoff * 2, absl::Milliseconds(500));
  }
}

void Migrator::Unlock() {
  // Best effort: the lock also ends with the session.
  (void)conn_->Query("SELECT pg_advisory_unlock($1::bigint)", {kLockKey});
}

absl::Status Migrator::EnsureTable() { return conn_->Exec(kCreateTable); }

absl::StatusOr<std::vector<AppliedMigration>> Migrator::ReadApplied() {
  absl::StatusOr<Result> r = conn_->Query(
      "SELECT version, name, checksum, storage_mode, applied_at::text "
      "FROM schema_migrations ORDER BY version");
  if (!r.ok()) return r.status();
  std::vector<AppliedMigration> out;
  for (int i = 0; i < r->rows(); ++i) {
    out.push_back({static_cast<int>(r->GetInt(i, 0)), std::string(r->Get(i, 1)),
                   std::string(r->Get(i, 2)), std::string(r->Get(i, 3)),
                   std::string(r->Get(i, 4))});
  }
  return out;
}

absl::StatusOr<bool> Migrator::TimescaleAvailable() {
  absl::StatusOr<Result> r = conn_->Query(
      "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb')"
      " OR (EXISTS (SELECT 1 FROM pg_available_extensions"
      "             WHERE name = 'timescaledb')"
      "     AND current_setting('shared_preload_libraries') LIKE "
      "'%timescaledb%')");
  if (!r.ok()) return r.status();
  return r->GetBool(0, 0);
}

absl::StatusOr<StorageMode> Migrator::ResolveMode(
    const std::vector<AppliedMigration>& applied) {
  if (!applied.empty()) {
    absl::StatusOr<StorageMode> recorded =
        ParseStorageMode(applied.front().storage_mode);
    if (!recorded.ok()) return recorded.status();
    if (options_.mode && *options_.mode != *recorded) {
      return absl::FailedPreconditionError(absl::StrCat(
          "database was migrated in ", StorageModeName(*recorded),
          " mode; refusing to continue in ", StorageModeName(*options_.mode),
          " mode"));
    }
    return *recorded;
  }
  if (options_.mode) return *options_.mode;
  absl::StatusOr<bool> ts = TimescaleAvailable();
  if (!ts.ok()) return ts.status();
  return *ts ? StorageMode::kTimescale : StorageMode::kNative;
}

const Migration* Migrator::Find(int version, StorageMode mode) const {
  for (const Migration& m : migrations_) {
    if (m.version == version && m.AppliesTo(mode)) return &m;
  }
  return nullptr;
}

absl::Status Migrator::Verify(const std::vector<AppliedMigration>& applied,
                              StorageMode mode) const {
  for (const AppliedMigration& a : applied) {
    const Migration* m = Find(a.version, mode);
    if (m == nullptr) {
      return absl::FailedPreconditionError(absl::StrCat(
          "applied migration ", a.version, " (", a.name,
          ") is unknown to this binary; is it older than the database?"));
    }
    if (m->checksum != a.checksum) {
      return absl::FailedPreconditionError(absl::StrCat(
          "applied migration ", a.version, " (", m->file_name,
          ") was edited after it was applied (checksum ", a.checksum,
          " in the database, ", m->checksum,
          " now); add a new migration instead"));
    }
  }
  return absl::OkStatus();
}

absl::Status Migrator::SetSessionSettings() {
  const std::pair<const char*, const std::string*> settings[] = {
      {"telemetry.chunk_interval", &options_.chunk_interval},
      {"telemetry.compress_after", &options_.compress_after},
      {"telemetry.retention", &options_.retention},
      {"telemetry.cagg_schedule", &options_.cagg_schedule},
      {"telemetry.cagg_start_offset", &options_.cagg_start_offset},
      {"telemetry.cagg_end_offset", &options_.cagg_end_offset},
  };
  for (const auto& [name, value] : settings) {
    absl::StatusOr<Result> r = conn_->Query(
        "SELECT set_config($1, $2::interval::text, false)", {name, *value});
    if (!r.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(
          name, " = '", *value, "' is not a valid interval: ",
          r.status().message()));
    }
  }
  return absl::OkStatus();
}

absl::Status Migrator::RunSql(
    const std::string& sql, bool transactional,
    const std::function<absl::Status()>& bookkeeping) {
  std::vector<std::string> statements = SplitSqlStatements(sql);
  if (transactional) {
    if (absl::Status s = conn_->Exec("BEGIN"); !s.ok()) return s;
  }
  absl::Status status;
  for (const std::string& stmt : statements) {
    status = conn_->Exec(stmt);
    if (!status.ok()) break;
  }
  if (status.ok()) status = bookkeeping();
  if (transactional) {
    absl::Status end = conn_->Exec(status.ok() ? "COMMIT" : "ROLLBACK");
    if (status.ok()) status = end;
  }
  return status;
}

absl::StatusOr<int> Migrator::Up() {
  if (absl::Status s = Lock(); !s.ok()) return s;
  absl::Cleanup unlock = [this] { Unlock(); };
  if (absl::Status s = EnsureTable(); !s.ok()) return s;
  absl::StatusOr<std::vector<AppliedMigration>> applied = ReadApplied();
  if (!applied.ok()) return applied.status();
  absl::StatusOr<StorageMode> mode = ResolveMode(*applied);
  if (!mode.ok()) return mode.status();
  if (absl::Status s = Verify(*applied, *mode); !s.ok()) return s;
  if (absl::Status s = SetSessionSettings(); !s.ok()) return s;

  int count = 0;
  for (const Migration& m : migrations_) {
    if (!m.AppliesTo(*mode)) continue;
    bool done = false;
    for (const AppliedMigration& a : *applied) done |= a.version == m.version;
    if (done) continue;
    absl::Time start = absl::Now();
    absl::Status s = RunSql(m.up_sql, m.transactional, [&]() {
      return conn_
          ->Query(
              "INSERT INTO schema_migrations "
              "(version, name, checksum, storage_mode, execution_ms) "
              "VALUES ($1::int, $2, $3, $4, $5::bigint)",
              {std::to_string(m.version), m.name, m.checksum,
               std::string(StorageModeName(*mode)),
               std::to_string(absl::ToInt64Milliseconds(absl::Now() - start))})
          .status();
    });
    if (!s.ok()) {
      return absl::Status(s.code(), absl::StrCat("migration ", m.file_name,
                                                 " failed: ", s.message()));
    }
    ++count;
  }
  return count;
}

absl::StatusOr<int> Migrator::Down(int target_version) {
  if (absl::Status s = Lock(); !s.ok()) return s;
  absl::Cleanup unlock = [this] { Unlock(); };
  if (absl::Status s = EnsureTable(); !s.ok()) return s;
  absl::StatusOr<std::vector<AppliedMigration>> applied = ReadApplied();
  if (!applied.ok()) return applied.status();
  if (applied->empty()) return 0;
  absl::StatusOr<StorageMode> mode = ResolveMode(*applied);
  if (!mode.ok()) return mode.status();
  if (absl::Status s = Verify(*applied, *mode); !s.ok()) return s;

  int count = 0;
  for (auto it = applied->rbegin(); it != applied->rend(); ++it) {
    if (it->version <= target_version) break;
    const Migration* m = Find(it->version, *mode);
    absl::Status s = RunSql(m->down_sql, m->transactional, [&]() {
      return conn_
          ->Query("DELETE FROM schema_migrations WHERE version = $1::int",
                  {std::to_string(m->version)})
          .status();
    });
    if (!s.ok()) {
      return absl::Status(s.code(), absl::StrCat("reverting ", m->file_name,
                                                 " failed: ", s.message()));
    }
    ++count;
  }
  return count;
}

absl::StatusOr<MigrationState> Migrator::Status() {
  MigrationState state;
  absl::StatusOr<Result> exists =
      conn_->Query("SELECT to_regclass('schema_migrations') IS NOT NULL");
  if (!exists.ok()) return exists.status();
  if (exists->GetBool(0, 0)) {
    absl::StatusOr<std::vector<AppliedMigration>> applied = ReadApplied();
    if (!applied.ok()) return applied.status();
    state.applied = *std::move(applied);
  }
  absl::StatusOr<StorageMode> mode = ResolveMode(state.applied);
  if (!mode.ok()) return mode.status();
  if (!state.applied.empty()) state.mode = *mode;
  for (const Migration& m : migrations_) {
    if (!m.AppliesTo(*mode)) continue;
    bool done = false;
    for (const AppliedMigration& a : state.applied) done |= a.version == m.version;
    if (!done) state.pending.push_back(m);
  }
  return state;
}

}  // namespace telemetry::pg
