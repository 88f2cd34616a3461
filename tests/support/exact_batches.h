// Batches whose every stored value can be checked from its key alone, for
// tests that must prove "exactly the values sent, each once" after clients
// misbehaved: batch b, reading i is at base_ms + b * per_batch + i ms with
// value b * 1000 + i + 0.5 and quality 1 - i / 1024 (exact in binary).
// tests/e2e/outside_client.py builds the same batches in Python.
#ifndef TELEMETRY_TESTS_SUPPORT_EXACT_BATCHES_H_
#define TELEMETRY_TESTS_SUPPORT_EXACT_BATCHES_H_

#include <cstdint>
#include <set>
#include <string>

#include "telemetry/v1/ingest.pb.h"

namespace telemetry::testing {

struct ExactBatches {
  std::string key_prefix;     // idempotency key = key_prefix + b
  std::string sensor_prefix;  // sensor id = sensor_prefix + (b % 5)
  int64_t base_ms = 0;        // see FreshBaseMs()
  int per_batch = 20;

  telemetry::v1::ReadingBatch Batch(int b) const;
  // SQL counting rows of sensor_readings whose value or quality is not
  // what their timestamp implies (0 when every stored value is exact).
  std::string WrongRowsSql() const;
  // SQL counting the rows of batches `batches`.
  std::string RowsOfSql(const std::set<int>& batches) const;
};

// Two hours ago, on a whole second: inside retention, never in the future.
int64_t FreshBaseMs();

// Expects `db` to hold batches [0, count) of `batches`, each reading once
// with the values sent, and nothing else; and the gateway whose /metrics is
// on `metrics_port` to have no stream left open (polled: a stream ends a
// moment after its client does). For tests of misbehaving clients.
void ExpectExactlyOnceAndNoStreamOpen(const std::string& db, const ExactBatches& batches,
                                      int count, int metrics_port);

}  // namespace telemetry::testing

#endif  // TELEMETRY_TESTS_SUPPORT_EXACT_BATCHES_H_
