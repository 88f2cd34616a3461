// One validated reading, in the shape of a `sensor_readings` row.
//
// This is the storage layer's own type: the server converts API messages into
// it after validation, so storage never sees unvalidated input and never
// depends on the wire format.
#ifndef TELEMETRY_STORAGE_READING_ROW_H_
#define TELEMETRY_STORAGE_READING_ROW_H_

#include <cstdint>
#include <optional>
#include <string>

namespace telemetry {

struct ReadingRow {
  int64_t timestamp_us = 0;  // microseconds since the Unix epoch, UTC
  std::string sensor_id;
  std::optional<std::string> sensor_type;
  double value = 0;
  std::optional<std::string> unit;
  std::optional<double> quality;
  std::optional<std::string> metadata_json;  // a JSON object, already valid
};

}  // namespace telemetry

#endif  // TELEMETRY_STORAGE_READING_ROW_H_
