// Fuzzes request validation with arbitrary ReadingBatch messages: whatever
// arrives, validation must not crash, must account for every reading, and
// must only pass on rows the database will accept.
#include <google/protobuf/stubs/logging.h>
#include <google/protobuf/util/json_util.h>

#include <cmath>
#include <cstddef>
#include <cstdint>

#include "server/ingest/validator.h"

namespace {

#define FUZZ_CHECK(cond) \
  do {                   \
    if (!(cond)) __builtin_trap(); \
  } while (0)

// True if any key or string in `s` holds a NUL: PostgreSQL's JSONB refuses
// the \u0000 escape, so what the validator passes must decode without one.
// (A text search for "\\u0000" would also match an escaped backslash
// followed by "u0000", which is a legal six-character string.)
bool ValueHasNul(const google::protobuf::Value& v);
bool StructHasNul(const google::protobuf::Struct& s) {
  for (const auto& [key, value] : s.fields()) {
    if (key.find('\0') != std::string::npos || ValueHasNul(value)) return true;
  }
  return false;
}
bool ValueHasNul(const google::protobuf::Value& v) {
  switch (v.kind_case()) {
    case google::protobuf::Value::kStringValue:
      return v.string_value().find('\0') != std::string::npos;
    case google::protobuf::Value::kStructValue:
      return StructHasNul(v.struct_value());
    case google::protobuf::Value::kListValue:
      for (const auto& e : v.list_value().values()) {
        if (ValueHasNul(e)) return true;
      }
      return false;
    default:
      return false;
  }
}

bool HasControl(const std::string& s) {
  for (char c : s) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) return true;
  }
  return false;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  // Invalid UTF-8 in string fields is an expected parse failure; do not log it.
  google::protobuf::SetLogHandler(nullptr);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  telemetry::v1::ReadingBatch batch;
  if (!batch.ParseFromArray(data, static_cast<int>(size))) return 0;
  telemetry::ingest::ValidationOptions options;
  options.max_batch_readings = 500;
  const absl::Time now = absl::FromUnixSeconds(1'800'000'000);
  telemetry::ingest::ValidatedBatch v = telemetry::ingest::ValidateBatch(batch, options, now);
  if (!v.status.ok()) {
    FUZZ_CHECK(v.rows.empty() && v.rejections.empty());
    FUZZ_CHECK(v.status.code() == absl::StatusCode::kInvalidArgument);
    return 0;
  }
  FUZZ_CHECK(v.rows.size() + v.rejections.size() ==
             static_cast<size_t>(batch.readings_size()));
  uint32_t last = 0;
  for (size_t i = 0; i < v.rejections.size(); ++i) {
    const auto& r = v.rejections[i];
    FUZZ_CHECK(r.index() < static_cast<uint32_t>(batch.readings_size()));
    FUZZ_CHECK(i == 0 || r.index() > last);
    FUZZ_CHECK(!r.reason().empty() && !r.field().empty());
    last = r.index();
  }
  for (const telemetry::ReadingRow& row : v.rows) {
    FUZZ_CHECK(!row.sensor_id.empty() && row.sensor_id.size() <= 255);
    FUZZ_CHECK(!HasControl(row.sensor_id));
    FUZZ_CHECK(std::isfinite(row.value));
    if (row.quality) FUZZ_CHECK(*row.quality >= 0 && *row.quality <= 1);
    if (row.unit) FUZZ_CHECK(row.unit->size() <= 50 && !HasControl(*row.unit));
    if (row.sensor_type) FUZZ_CHECK(row.sensor_type->size() <= 50);
    FUZZ_CHECK(absl::FromUnixMicros(row.timestamp_us) <= now + options.max_future_skew);
    FUZZ_CHECK(absl::FromUnixMicros(row.timestamp_us) >= now - options.max_age - absl::Seconds(1));
    if (row.metadata_json) {
      // What reaches the JSONB column is valid JSON without NUL escapes.
      FUZZ_CHECK(row.metadata_json->size() <= options.max_metadata_bytes);
      google::protobuf::Struct parsed;
      FUZZ_CHECK(google::protobuf::util::JsonStringToMessage(*row.metadata_json, &parsed).ok());
      FUZZ_CHECK(!StructHasNul(parsed));
    }
  }
  return 0;
}
