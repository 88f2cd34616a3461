// What the two storage modes do differently, behind one interface with one
// implementation each (native_schema_mode.cc: plain PostgreSQL with day
// partitions and the service's own jobs; timescale_schema_mode.cc: a
// hypertable, a continuous aggregate and TimescaleDB's policies). Every
// other C++ file is mode-blind: it asks the SchemaMode of the database.
//
// The SQL side has the same split (migrations *.native.sql and
// *.timescale.sql). Where both modes answer the same question, both define
// the same function, so no C++ has to choose: telemetry_summary_watermark()
// (hours before it are materialised) and telemetry_summary_stale_ranges(lo,
// hi) (hours the aggregate holds wrongly or not at all).
//
// Implementations are stateless singletons. Thread-safe.
#ifndef TELEMETRY_STORAGE_PG_SCHEMA_MODE_H_
#define TELEMETRY_STORAGE_PG_SCHEMA_MODE_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "storage/pg/connection.h"
#include "storage/pg/migration.h"

namespace telemetry::pg {

// One partition (native) or chunk (timescale) of sensor_readings.
struct StorageChunk {
  std::string name;
  std::optional<int64_t> range_start_us, range_end_us;  // [start, end)
  bool compressed = false;
  int64_t total_bytes = 0;
  int64_t estimated_rows = 0;
};

struct StorageLayout {
  std::vector<StorageChunk> chunks;  // oldest first
  int64_t total_bytes = 0;
  double compression_ratio = 0;  // compressed / uncompressed bytes (0: none)
};

// A background job the database runs (TimescaleDB's policies).
struct DatabaseJob {
  std::string name;
  absl::Duration schedule;
  std::optional<int64_t> last_start_us;
  std::optional<double> last_run_seconds;
  std::string last_status;  // "success", "failure", or the database's word
  std::string last_error;   // of the last failure, when readable
  int64_t successes = 0;
  int64_t failures = 0;
  std::optional<int64_t> next_start_us;
};

class SchemaMode {
 public:
  // The implementation of `mode` (lives forever).
  static const SchemaMode& For(StorageMode mode);

  virtual ~SchemaMode() = default;
  virtual StorageMode mode() const = 0;

  // Partition upkeep. Whether the writer must make a day's partition before
  // its rows are written (native: or the DEFAULT partition catches them;
  // TimescaleDB makes its chunks itself).
  virtual bool MakesDayPartitions() const = 0;
  // Makes the partitions of days [first_day, last_day] (days since the
  // epoch, UTC), moving what the default partition caught. A no-op where
  // chunks are automatic.
  virtual absl::Status EnsureDayPartitions(Connection& conn, int64_t first_day,
                                           int64_t last_day) const = 0;

  // Whether the read service runs the aggregate refresh and retention on
  // its own schedule (native) rather than the database's policies.
  virtual bool ServiceRunsJobs() const = 0;

  // Re-materialises the hourly aggregate over [start, end) (unset: open
  // ended). Returns the hours refreshed when known, else 0. Aborted: another
  // refresh is running. `wait`: how long to wait for a refresh the database
  // runs on the caller's behalf.
  virtual absl::StatusOr<int64_t> RefreshAggregate(Connection& conn,
                                                   std::optional<int64_t> start_us,
                                                   std::optional<int64_t> end_us,
                                                   absl::Duration wait) const = 0;

  // Drops data past retention (`retention` where the service keeps it; the
  // policy's own drop_after otherwise). Says what it dropped.
  virtual absl::StatusOr<std::string> DropExpired(Connection& conn,
                                                  absl::Duration retention) const = 0;

  // OK where chunks can be compressed; else FailedPrecondition saying why
  // (asked before a connection is taken).
  virtual absl::Status CompressionAvailable() const = 0;
  // Compresses the chunks past the compression policy's compress_after.
  // REQUIRES: CompressionAvailable().
  virtual absl::StatusOr<std::string> CompressDue(Connection& conn) const = 0;

  // The database's own background jobs (none where ServiceRunsJobs()).
  virtual absl::StatusOr<std::vector<DatabaseJob>> DatabaseJobs(Connection& conn) const = 0;

  // Partitions or chunks with their sizes and row estimates.
  virtual absl::StatusOr<StorageLayout> Layout(Connection& conn) const = 0;
};

}  // namespace telemetry::pg

#endif  // TELEMETRY_STORAGE_PG_SCHEMA_MODE_H_
