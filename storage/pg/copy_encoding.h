// Encodes readings in PostgreSQL's binary COPY format.
//
// Pure and allocation-frugal: one growing buffer, no per-row allocation.
// Binary COPY skips the server's text parsing of timestamps and floats, which
// is measurable at hundreds of thousands of rows per second.
// Format: https://www.postgresql.org/docs/15/sql-copy.html (Binary Format).
#ifndef TELEMETRY_STORAGE_PG_COPY_ENCODING_H_
#define TELEMETRY_STORAGE_PG_COPY_ENCODING_H_

#include <cstdint>
#include <string>
#include "absl/strings/string_view.h"

#include "storage/reading_row.h"

namespace telemetry::pg {

// Column list matching EncodeReading's field order.
inline constexpr absl::string_view kReadingCopyColumns =
    "\"timestamp\", sensor_id, sensor_type, value, unit, quality, "
    "sensor_metadata";

// Microseconds between the Unix epoch and PostgreSQL's epoch (2000-01-01).
inline constexpr int64_t kPostgresEpochOffsetUs = 946684800LL * 1000000LL;

class CopyEncoder {
 public:
  // Starts a stream with the binary COPY signature and header.
  CopyEncoder();

  // Appends one tuple of the 7 reading columns.
  void AddReading(const ReadingRow& row);

  // Appends one tuple of the 7 reading columns preceded by an int4 `tag`
  // (the staging table's batch number).
  void AddTaggedReading(int32_t tag, const ReadingRow& row);

  // Appends the trailer and returns the encoded stream. The encoder must not
  // be used afterwards.
  std::string Finish();

  int64_t rows() const { return rows_; }
  size_t size() const { return buf_.size(); }

 private:
  void PutInt16(int16_t v);
  void PutInt32(int32_t v);
  void PutInt64(int64_t v);
  void PutFloat8(double v);
  void PutText(absl::string_view s);
  void PutNull() { PutInt32(-1); }
  void PutFields(const ReadingRow& row);

  std::string buf_;
  int64_t rows_ = 0;
};

}  // namespace telemetry::pg

#endif  // TELEMETRY_STORAGE_PG_COPY_ENCODING_H_
