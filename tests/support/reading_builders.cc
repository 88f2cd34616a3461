#include "tests/support/reading_builders.h"

#include <cmath>

#include "absl/time/clock.h"

namespace telemetry::testing {

telemetry::v1::Reading ReadingAt(const std::string& sensor, int64_t us, double value) {
  telemetry::v1::Reading r;
  r.set_sensor_id(sensor);
  int64_t seconds = us / 1'000'000, micros = us % 1'000'000;
  if (micros < 0) {
    --seconds;
    micros += 1'000'000;
  }
  r.mutable_timestamp()->set_seconds(seconds);
  r.mutable_timestamp()->set_nanos(static_cast<int32_t>(micros * 1000));
  r.set_value(value);
  return r;
}

telemetry::v1::Reading IndexedReading(const std::string& sensor, int i) {
  static const int64_t base_ms = absl::ToUnixMillis(absl::Now()) - 3'600'000;
  telemetry::v1::Reading r = ReadingAt(sensor, (base_ms + i) * 1000, std::sin(i) * 100);
  r.set_sensor_type("temperature");
  r.set_unit("celsius");
  r.set_quality(0.5);
  return r;
}

telemetry::v1::ReadingBatch IndexedBatch(const std::string& key, const std::string& sensor,
                                         int first, int n) {
  telemetry::v1::ReadingBatch b;
  b.set_idempotency_key(key);
  for (int i = first; i < first + n; ++i) *b.add_readings() = IndexedReading(sensor, i);
  return b;
}

}  // namespace telemetry::testing
