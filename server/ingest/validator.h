// Validation of incoming batches: turns a ReadingBatch into storable rows and
// per-reading rejections. Pure (the clock is a parameter), so every rule is
// unit-tested; the same rules are exercised end to end through the server.
//
// A bad reading never fails its batch: it is reported in `rejections` and the
// rest is stored. Only batch-level problems (missing key, too many readings)
// fail the whole batch, with InvalidArgument.
#ifndef TELEMETRY_SERVER_INGEST_VALIDATOR_H_
#define TELEMETRY_SERVER_INGEST_VALIDATOR_H_

#include <cstddef>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "storage/reading_row.h"
#include "telemetry/v1/ingest.pb.h"

namespace telemetry::ingest {

struct ValidationOptions {
  size_t max_batch_readings = 10'000;
  size_t max_idempotency_key_bytes = 128;
  // How far ahead of the gateway's clock a reading's timestamp may be.
  absl::Duration max_future_skew = absl::Minutes(5);
  // Readings older than this are refused (they would be dropped by retention
  // at once). Should equal the storage retention.
  absl::Duration max_age = absl::Hours(24 * 180);
  size_t max_metadata_bytes = 16 * 1024;  // serialised JSON
  int max_metadata_depth = 16;
};

struct ValidatedBatch {
  // Non-OK only for batch-level problems; then `rows` is empty.
  absl::Status status;
  std::vector<ReadingRow> rows;
  std::vector<telemetry::v1::RejectedReading> rejections;  // index order
};

ValidatedBatch ValidateBatch(const telemetry::v1::ReadingBatch& batch,
                             const ValidationOptions& options, absl::Time now);

}  // namespace telemetry::ingest

#endif  // TELEMETRY_SERVER_INGEST_VALIDATOR_H_
