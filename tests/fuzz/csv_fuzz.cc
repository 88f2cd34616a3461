// Fuzzes the CSV reading parser of `telemetryctl send`: arbitrary input,
// with a header drawn from the input too, must never crash, and every record
// it accepts must carry the columns it claims.
#include <cstddef>
#include <cstdint>
#include <sstream>
#include <string>

#include "client/csv_readings.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::istringstream in(std::string(reinterpret_cast<const char*>(data), size));
  std::vector<std::string> cells;
  if (!telemetry::client::ReadCsvRecord(in, &cells)) return 0;
  auto parser = telemetry::client::CsvReadingParser::Create(cells);
  if (!parser.ok()) {
    // Fall back to the canonical header so the record path is fuzzed too.
    parser = telemetry::client::CsvReadingParser::Create(
        {"sensor_id", "timestamp", "value", "sensor_type", "unit", "quality", "metadata"});
    if (!parser.ok()) __builtin_trap();
  }
  for (int n = 0; n < 1000 && telemetry::client::ReadCsvRecord(in, &cells); ++n) {
    auto reading = parser->Parse(cells);
    if (reading.ok() && (reading->timestamp().nanos() < 0 ||
                         reading->timestamp().nanos() > 999'999'999)) {
      __builtin_trap();  // the parser must produce a well-formed Timestamp
    }
  }
  return 0;
}
