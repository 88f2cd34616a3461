// PostgreSQL implementation of TelemetrySink: binary COPY into
// sensor_readings, falling back to a staging table + INSERT ... ON CONFLICT
// DO NOTHING when duplicates are possible or the COPY hit one.
//
// One transaction per group:
//   BEGIN; register unseen sensors; COPY ...; COMMIT
// Fast path (no duplicate expected): COPY straight into sensor_readings. If
// that trips the primary key (23505), the transaction is rolled back and
// the group is written through the staging path, which counts, per batch,
// how many rows were new. Deadlocks and serialization failures are retried a
// few times before they reach the caller.
//
// In native storage mode the writer makes sure a daily partition exists for
// every day it writes (the DEFAULT partition would accept the rows, but then
// they would have to be moved later).
#ifndef TELEMETRY_STORAGE_PG_COPY_WRITER_H_
#define TELEMETRY_STORAGE_PG_COPY_WRITER_H_

#include <memory>
#include <string>
#include "absl/strings/string_view.h"
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "absl/time/time.h"
#include "storage/pg/connection.h"
#include "storage/pg/migration.h"
#include "storage/telemetry_sink.h"
#include "storage/util/mutex.h"

namespace telemetry::pg {

// What the writer reports for metrics; implemented by the server.
class WriteObserver {
 public:
  enum class Path { kCopy, kStaging };
  virtual ~WriteObserver() = default;
  virtual void OnCommitted(Path path, int64_t rows, absl::Duration elapsed) = 0;
  virtual void OnDuplicateFallback() = 0;  // COPY hit a unique violation
  virtual void OnDatabaseError(const absl::Status& status) = 0;
};

// Caches shared by every writer of one process: which sensors are known to be
// registered and which daily partitions exist. Bounded; cleared when full.
class WriterCaches {
 public:
  explicit WriterCaches(size_t max_sensors = 1'000'000)
      : max_sensors_(max_sensors) {}
  bool SensorKnown(absl::string_view sensor_id) const;
  void AddSensors(const std::vector<std::string>& sensor_ids);
  bool DayKnown(int64_t day) const;
  void AddDays(int64_t first_day, int64_t last_day);

 private:
  const size_t max_sensors_;
  mutable Mutex mu_;
  absl::flat_hash_set<std::string> sensors_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_set<int64_t> days_ ABSL_GUARDED_BY(mu_);
};

struct CopyWriterOptions {
  std::string conninfo;
  StorageMode mode = StorageMode::kNative;
  absl::Duration statement_timeout = absl::Seconds(30);
  // After a failed connect, calls fail fast for this long before retrying.
  absl::Duration reconnect_backoff = absl::Milliseconds(250);
  int max_deadlock_retries = 3;
};

class CopyWriter : public TelemetrySink {
 public:
  // `caches` and `observer` (nullable) must outlive the writer.
  CopyWriter(CopyWriterOptions options, WriterCaches* caches,
             WriteObserver* observer);
  ~CopyWriter() override;

  absl::StatusOr<std::vector<BatchResult>> WriteBatches(
      absl::Span<const std::vector<ReadingRow>* const> batches,
      bool may_contain_duplicates) override;

  // Creates the daily partitions for [first, last] (native mode; no-op in
  // timescale mode). Used at start-up to pre-create upcoming days.
  absl::Status EnsurePartitions(absl::Time first, absl::Time last);

 private:
  struct Row {
    int32_t batch;
    const ReadingRow* row;
  };
  absl::Status EnsureConnected();
  absl::Status EnsurePartitionsForDays(int64_t first_day, int64_t last_day);
  absl::StatusOr<std::vector<BatchResult>> WriteOnce(
      absl::Span<const std::vector<ReadingRow>* const> batches,
      bool may_contain_duplicates);
  absl::Status RegisterSensors(const std::vector<std::string>& sensor_ids,
                               const std::vector<std::string>& types);
  absl::Status CopyDirect(const std::vector<Row>& rows);
  absl::StatusOr<std::vector<int64_t>> CopyViaStaging(
      const std::vector<Row>& rows, size_t batch_count);
  absl::Status Fail(absl::Status status);

  const CopyWriterOptions options_;
  WriterCaches* caches_;
  WriteObserver* observer_;
  std::unique_ptr<Connection> conn_;
  bool staging_ready_ = false;
  absl::Time next_connect_attempt_ = absl::InfinitePast();
  absl::Status last_connect_error_;
};

// Encodes a list of strings as a PostgreSQL text-array literal, e.g.
// {"a","b\"c"}, for binding as one $n parameter.
std::string ToTextArrayLiteral(const std::vector<std::string>& values);

}  // namespace telemetry::pg

#endif  // TELEMETRY_STORAGE_PG_COPY_WRITER_H_
