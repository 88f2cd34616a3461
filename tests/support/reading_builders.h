// The readings and batches the end-to-end tests send, built one way.
#ifndef TELEMETRY_TESTS_SUPPORT_READING_BUILDERS_H_
#define TELEMETRY_TESTS_SUPPORT_READING_BUILDERS_H_

#include <cstdint>
#include <string>

#include "telemetry/v1/ingest.pb.h"

namespace telemetry::testing {

// `sensor` at `us` (microseconds since the epoch) with `value`; no
// optional field set.
telemetry::v1::Reading ReadingAt(const std::string& sensor, int64_t us, double value);

// The i-th reading of `sensor`: i milliseconds after a base one hour before
// the first call in this process (so an index names the same instant for
// the whole test binary), value sin(i)·100, with type, unit and quality.
telemetry::v1::Reading IndexedReading(const std::string& sensor, int i);

// Readings first .. first+n-1 of `sensor` (IndexedReading) under `key`.
telemetry::v1::ReadingBatch IndexedBatch(const std::string& key, const std::string& sensor,
                                         int first, int n);

}  // namespace telemetry::testing

#endif  // TELEMETRY_TESTS_SUPPORT_READING_BUILDERS_H_
