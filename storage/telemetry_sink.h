// Where committed readings go. The ingest pipeline talks only to this
// interface, so its batching and acknowledgement logic is unit-tested against
// an in-memory fake and integration-tested against PostgreSQL.
#ifndef TELEMETRY_STORAGE_TELEMETRY_SINK_H_
#define TELEMETRY_STORAGE_TELEMETRY_SINK_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "storage/reading_row.h"

namespace telemetry {

class TelemetrySink {
 public:
  struct BatchResult {
    uint32_t inserted = 0;    // rows newly stored
    uint32_t duplicates = 0;  // rows whose (sensor_id, timestamp) was stored
  };

  virtual ~TelemetrySink() = default;

  // Writes every batch in one transaction: all are committed or none is.
  // Rows whose (sensor_id, timestamp) is already stored, or appears earlier
  // in the group, are skipped and counted as duplicates; they never fail the
  // write. `may_contain_duplicates` is a hint: when false the sink may try a
  // faster path first (it still must handle a duplicate correctly).
  //
  // On success returns one result per batch, in order. On failure nothing was
  // committed and the status code says whether a retry can help
  // (Unavailable/Aborted/ResourceExhausted) or not.
  //
  // Not thread-safe: each flusher thread owns its own sink.
  virtual absl::StatusOr<std::vector<BatchResult>> WriteBatches(
      absl::Span<const std::vector<ReadingRow>* const> batches,
      bool may_contain_duplicates) = 0;
};

}  // namespace telemetry

#endif  // TELEMETRY_STORAGE_TELEMETRY_SINK_H_
