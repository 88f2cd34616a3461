// Parsing of versioned SQL migration files. Pure functions, no I/O.
//
// A migration file is named NNNN_name.sql (every storage mode) or
// NNNN_name.<mode>.sql (only that mode: native or timescale) and holds:
//
//   -- free comment lines
//   -- transaction: none          (optional: run each statement on its own,
//                                   outside any transaction block)
//   -- +migrate up
//   ...statements...
//   -- +migrate down
//   ...statements...
//
// The checksum covers the whole file, so editing an applied migration is
// detected and refused.
#ifndef TELEMETRY_STORAGE_PG_MIGRATION_H_
#define TELEMETRY_STORAGE_PG_MIGRATION_H_

#include <string>
#include "absl/strings/string_view.h"
#include <vector>

#include "absl/status/statusor.h"

namespace telemetry::pg {

enum class StorageMode { kNative, kTimescale };

absl::string_view StorageModeName(StorageMode mode);
absl::StatusOr<StorageMode> ParseStorageMode(absl::string_view name);

struct Migration {
  int version = 0;
  std::string name;       // file name without version prefix and suffixes
  std::string file_name;  // as embedded
  // Empty when the migration applies to every mode.
  std::string mode;
  bool transactional = true;
  std::string up_sql;
  std::string down_sql;
  std::string checksum;  // hex FNV-1a 64 of the file content

  bool AppliesTo(StorageMode m) const {
    return mode.empty() || mode == StorageModeName(m);
  }
};

absl::StatusOr<Migration> ParseMigration(absl::string_view file_name,
                                         absl::string_view content);

// Parses every embedded migration file, sorted by version. Fails on a file
// that does not parse or on two files with the same version and mode.
absl::StatusOr<std::vector<Migration>> LoadEmbeddedMigrations();

// Splits SQL text into statements on top-level semicolons, honouring quotes,
// quoted identifiers, dollar-quoted bodies and comments. Statements that are
// empty or only comments are dropped.
std::vector<std::string> SplitSqlStatements(absl::string_view sql);

std::string ChecksumHex(absl::string_view content);

}  // namespace telemetry::pg

#endif  // TELEMETRY_STORAGE_PG_MIGRATION_H_
