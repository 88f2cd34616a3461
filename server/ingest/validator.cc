#include "server/ingest/validator.h"

#include <cmath>
#include <optional>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "server/common/metadata_json.h"
#include "server/common/text_checks.h"

namespace telemetry::ingest {
namespace {

using telemetry::v1::Reading;
using telemetry::v1::RejectedReading;

// Earliest/latest instants google.protobuf.Timestamp allows (0001-01-01 to
// 9999-12-31); anything outside is malformed rather than merely too old.
constexpr int64_t kMinTimestampSeconds = -62135596800LL;
constexpr int64_t kMaxTimestampSeconds = 253402300799LL;

struct Rejection {
  std::string field;
  std::string reason;
};

// Converts one reading, or explains why it cannot be stored.
std::optional<Rejection> ConvertReading(const Reading& r,
                                        const ValidationOptions& options,
                                        absl::Time now, ReadingRow* row) {
  if (std::string why = CheckText(r.sensor_id(), "sensor_id",
                                  kMaxIdBytes, /*required=*/true);
      !why.empty()) {
    return Rejection{"sensor_id", why};
  }
  if (!r.has_timestamp()) return Rejection{"timestamp", "timestamp is missing"};
  const auto& ts = r.timestamp();
  if (ts.seconds() < kMinTimestampSeconds ||
      ts.seconds() > kMaxTimestampSeconds || ts.nanos() < 0 ||
      ts.nanos() > 999'999'999) {
    return Rejection{"timestamp", "timestamp is not a valid point in time"};
  }
  absl::Time when = absl::FromUnixSeconds(ts.seconds()) +
                    absl::Nanoseconds(ts.nanos());
  if (when > now + options.max_future_skew) {
    return Rejection{
        "timestamp",
        absl::StrCat("timestamp is more than ",
                     absl::FormatDuration(options.max_future_skew),
                     " in the future")};
  }
  if (when < now - options.max_age) {
    return Rejection{
        "timestamp",
        absl::StrCat("timestamp is older than the retention period (",
                     absl::FormatDuration(options.max_age), ")")};
  }
  if (std::string why = CheckText(r.sensor_type(), "sensor_type",
                                  kMaxTypeBytes, /*required=*/false);
      !why.empty()) {
    return Rejection{"sensor_type", why};
  }
  if (!std::isfinite(r.value())) {
    return Rejection{"value", "value is not a finite number"};
  }
  if (std::string why =
          CheckText(r.unit(), "unit", kMaxTypeBytes, /*required=*/false);
      !why.empty()) {
    return Rejection{"unit", why};
  }
  if (r.has_quality() && !(r.quality() >= 0.0 && r.quality() <= 1.0)) {
    return Rejection{"quality", "quality must be between 0 and 1"};
  }
  std::optional<std::string> metadata;
  if (r.has_metadata()) {
    absl::StatusOr<std::string> json = MetadataToJson(
        r.metadata(), options.max_metadata_bytes, options.max_metadata_depth);
    if (!json.ok()) {
      return Rejection{"metadata", std::string(json.status().message())};
    }
    metadata = *std::move(json);
  }

  row->timestamp_us = absl::ToUnixMicros(when);  // truncates to microseconds
  row->sensor_id = r.sensor_id();
  if (!r.sensor_type().empty()) row->sensor_type = r.sensor_type();
  row->value = r.value();
  if (!r.unit().empty()) row->unit = r.unit();
  if (r.has_quality()) row->quality = r.quality();
  row->metadata_json = std::move(metadata);
  return std::nullopt;
}

}  // namespace

ValidatedBatch ValidateBatch(const telemetry::v1::ReadingBatch& batch,
                             const ValidationOptions& options, absl::Time now) {
  ValidatedBatch out;
  const std::string& key = batch.idempotency_key();
  if (key.empty()) {
    out.status = absl::InvalidArgumentError("idempotency_key is required");
    return out;
  }
  if (key.size() > options.max_idempotency_key_bytes) {
    out.status = absl::InvalidArgumentError(
        absl::StrCat("idempotency_key is ", key.size(),
                     " bytes long; the limit is ",
                     options.max_idempotency_key_bytes));
    return out;
  }
  if (HasControlCharacter(key)) {
    out.status = absl::InvalidArgumentError(
        "idempotency_key contains a control character");
    return out;
  }
  const size_t n = static_cast<size_t>(batch.readings_size());
  if (n > options.max_batch_readings) {
    out.status = absl::InvalidArgumentError(
        absl::StrCat("batch has ", n, " readings; the limit is ",
                     options.max_batch_readings));
    return out;
  }

  out.rows.reserve(n);
  // (sensor_id, microsecond) -> index of the first reading with that key.
  absl::flat_hash_map<std::pair<std::string_view, int64_t>, uint32_t> first;
  first.reserve(n);
  for (uint32_t i = 0; i < n; ++i) {
    const Reading& r = batch.readings(static_cast<int>(i));
    ReadingRow row;
    std::optional<Rejection> rejection = ConvertReading(r, options, now, &row);
    if (!rejection) {
      auto [it, inserted] =
          first.emplace(std::make_pair(std::string_view(r.sensor_id()),
                                       row.timestamp_us),
                        i);
      if (!inserted) {
        rejection = Rejection{
            "timestamp",
            absl::StrCat("duplicate of reading ", it->second,
                         " in this batch (same sensor_id and timestamp)")};
      }
    }
    if (rejection) {
      telemetry::v1::RejectedReading* rej = &out.rejections.emplace_back();
      rej->set_index(i);
      rej->set_field(rejection->field);
      rej->set_reason(rejection->reason);
      continue;
    }
    out.rows.push_back(std::move(row));
  }
  return out;
}

}  // namespace telemetry::ingest
