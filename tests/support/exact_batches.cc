#include "tests/support/exact_batches.h"

#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "storage/local/http_get.h"
#include "tests/support/servers_environment.h"

namespace telemetry::testing {
namespace {

// Position of a row: b * per_batch + i.
std::string PositionSql(int64_t base_ms) {
  return absl::StrCat("((extract(epoch FROM \"timestamp\") * 1000)::bigint - ", base_ms, ")");
}

}  // namespace

telemetry::v1::ReadingBatch ExactBatches::Batch(int b) const {
  telemetry::v1::ReadingBatch batch;
  batch.set_idempotency_key(absl::StrCat(key_prefix, b));
  for (int i = 0; i < per_batch; ++i) {
    telemetry::v1::Reading* r = batch.add_readings();
    r->set_sensor_id(absl::StrCat(sensor_prefix, b % 5));
    const int64_t ms = base_ms + int64_t{b} * per_batch + i;
    r->mutable_timestamp()->set_seconds(ms / 1000);
    r->mutable_timestamp()->set_nanos(static_cast<int32_t>(ms % 1000) * 1'000'000);
    r->set_value(b * 1000.0 + i + 0.5);
    r->set_quality(1.0 - i / 1024.0);
    r->set_unit("bar");
  }
  return batch;
}

std::string ExactBatches::WrongRowsSql() const {
  const std::string pos = PositionSql(base_ms);
  return absl::StrCat("SELECT count(*) FROM sensor_readings WHERE value <> (", pos, " / ",
                      per_batch, ") * 1000 + (", pos, " % ", per_batch,
                      ") + 0.5 OR quality <> 1 - (", pos, " % ", per_batch, ") / 1024.0");
}

std::string ExactBatches::RowsOfSql(const std::set<int>& batches) const {
  std::string list;
  for (int b : batches) absl::StrAppend(&list, list.empty() ? "" : ",", b);
  if (list.empty()) list = "-1";
  return absl::StrCat("SELECT count(*) FROM sensor_readings WHERE ", PositionSql(base_ms), " / ",
                      per_batch, " IN (", list, ")");
}

int64_t FreshBaseMs() {
  return absl::ToUnixSeconds(absl::Now() - absl::Hours(2)) * 1000;
}

void ExpectExactlyOnceAndNoStreamOpen(const std::string& db, const ExactBatches& batches,
                                      int count, int metrics_port) {
  EXPECT_EQ(QueryScalar(db, "SELECT count(*) FROM sensor_readings"),
            std::to_string(count * batches.per_batch));
  EXPECT_EQ(QueryScalar(db, batches.WrongRowsSql()), "0");
  EXPECT_TRUE(local::PollUntil(
      [&] {
        auto body = local::HttpGet(metrics_port, "/metrics");
        return body.ok() && local::MetricValue(*body, "telemetry_ingest_active_streams") == 0;
      },
      absl::Seconds(30)))
      << "a stream is still open after every client ended";
}

}  // namespace telemetry::testing
