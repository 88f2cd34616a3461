// Parsing of readings from CSV, for `telemetryctl send`.
//
// The first line is a header naming the columns, in any order:
//   sensor_id,timestamp,value[,sensor_type][,unit][,quality][,metadata]
// timestamp is RFC 3339 (2026-11-24T08:00:00.123Z) or Unix seconds
// (1764000000.5); metadata is a JSON object; empty optional cells are absent.
// Quoting follows RFC 4180 ("a ""quoted"" cell", embedded commas/newlines).
#ifndef TELEMETRY_CLIENT_CSV_READINGS_H_
#define TELEMETRY_CLIENT_CSV_READINGS_H_

#include <istream>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "telemetry/v1/ingest.pb.h"

namespace telemetry::client {

// Splits one CSV record from `in` into cells. Returns false at end of input.
// A record may span lines when a quoted cell contains a newline.
bool ReadCsvRecord(std::istream& in, std::vector<std::string>* cells);

class CsvReadingParser {
 public:
  // Takes the header record; InvalidArgument if a required column is missing
  // or a column is unknown.
  static absl::StatusOr<CsvReadingParser> Create(
      const std::vector<std::string>& header);

  // Converts one data record; InvalidArgument names the bad column.
  absl::StatusOr<telemetry::v1::Reading> Parse(
      const std::vector<std::string>& cells) const;

 private:
  int sensor_id_ = -1, timestamp_ = -1, value_ = -1, sensor_type_ = -1,
      unit_ = -1, quality_ = -1, metadata_ = -1;
  size_t columns_ = 0;
};

// An idempotency key derived from the batch's content ("csv:<hash>:<n>"),
// so that sending the same file again is answered as duplicates. The hash
// is FNV-1a over the serialised batch: stable across runs and machines.
std::string ContentKey(const telemetry::v1::ReadingBatch& batch);

}  // namespace telemetry::client

#endif  // TELEMETRY_CLIENT_CSV_READINGS_H_
