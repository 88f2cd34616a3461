#include "client/csv_readings.h"

#include <google/protobuf/util/json_util.h>

#include <cmath>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "storage/util/fnv.h"

namespace telemetry::client {

bool ReadCsvRecord(std::istream& in, std::vector<std::string>* cells) {
  cells->clear();
  std::string cell;
  bool in_quotes = false;
  bool any = false;
  char c;
  while (in.get(c)) {
    any = true;
    if (in_quotes) {
      if (c == '"') {
        if (in.peek() == '"') {
          in.get(c);
          cell += '"';
        } else {
          in_quotes = false;
        }
      } else {
        cell += c;
      }
    } else if (c == '"') {
      in_quotes = true;
    } else if (c == ',') {
      cells->push_back(std::move(cell));
      cell.clear();
    } else if (c == '\n') {
      break;
    } else if (c != '\r') {
      cell += c;
    }
  }
  if (!any) return false;
  cells->push_back(std::move(cell));
  return true;
}

absl::StatusOr<CsvReadingParser> CsvReadingParser::Create(
    const std::vector<std::string>& header) {
  CsvReadingParser p;
  p.columns_ = header.size();
  for (size_t i = 0; i < header.size(); ++i) {
    std::string name = absl::AsciiStrToLower(absl::StripAsciiWhitespace(header[i]));
    int* slot = name == "sensor_id"     ? &p.sensor_id_
                : name == "timestamp"   ? &p.timestamp_
                : name == "value"       ? &p.value_
                : name == "sensor_type" ? &p.sensor_type_
                : name == "unit"        ? &p.unit_
                : name == "quality"     ? &p.quality_
                : name == "metadata"    ? &p.metadata_
                                        : nullptr;
    if (slot == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("unknown CSV column '", header[i], "'"));
    }
    *slot = static_cast<int>(i);
  }
  if (p.sensor_id_ < 0 || p.timestamp_ < 0 || p.value_ < 0) {
    return absl::InvalidArgumentError(
        "the CSV header must name sensor_id, timestamp and value");
  }
  return p;
}

absl::StatusOr<telemetry::v1::Reading> CsvReadingParser::Parse(
    const std::vector<std::string>& cells) const {
  if (cells.size() != columns_) {
    return absl::InvalidArgumentError(absl::StrCat(
        "expected ", columns_, " cells, found ", cells.size()));
  }
  auto cell = [&](int i) -> const std::string& {
    return cells[static_cast<size_t>(i)];
  };
  telemetry::v1::Reading r;
  r.set_sensor_id(cell(sensor_id_));

  const std::string ts(absl::StripAsciiWhitespace(cell(timestamp_)));
  // google.protobuf.Timestamp's range: 0001-01-01 to 9999-12-31.
  constexpr double kMinSeconds = -62135596800.0, kMaxSeconds = 253402300799.0;
  absl::Time t;
  double seconds;
  std::string err;
  if (absl::SimpleAtod(ts, &seconds)) {
    if (!(seconds >= kMinSeconds && seconds <= kMaxSeconds)) {
      return absl::InvalidArgumentError(
          absl::StrCat("timestamp '", ts, "' is outside years 1-9999"));
    }
    t = absl::FromUnixMicros(static_cast<int64_t>(std::llround(seconds * 1e6)));
  } else if (!absl::ParseTime(absl::RFC3339_full, ts, &t, &err)) {
    return absl::InvalidArgumentError(
        absl::StrCat("timestamp '", ts, "' is neither RFC 3339 nor Unix seconds"));
  } else if (t < absl::FromUnixSeconds(static_cast<int64_t>(kMinSeconds)) ||
             t > absl::FromUnixSeconds(static_cast<int64_t>(kMaxSeconds))) {
    return absl::InvalidArgumentError(
        absl::StrCat("timestamp '", ts, "' is outside years 1-9999"));
  }
  int64_t us = absl::ToUnixMicros(t);
  r.mutable_timestamp()->set_seconds(us >= 0 ? us / 1000000 : (us - 999999) / 1000000);
  r.mutable_timestamp()->set_nanos(
      static_cast<int32_t>((us - r.timestamp().seconds() * 1000000) * 1000));

  double value;
  if (!absl::SimpleAtod(absl::StripAsciiWhitespace(cell(value_)), &value)) {
    return absl::InvalidArgumentError(
        absl::StrCat("value '", cell(value_), "' is not a number"));
  }
  r.set_value(value);
  if (sensor_type_ >= 0) r.set_sensor_type(cell(sensor_type_));
  if (unit_ >= 0) r.set_unit(cell(unit_));
  if (quality_ >= 0 && !cell(quality_).empty()) {
    double q;
    if (!absl::SimpleAtod(absl::StripAsciiWhitespace(cell(quality_)), &q)) {
      return absl::InvalidArgumentError(
          absl::StrCat("quality '", cell(quality_), "' is not a number"));
    }
    r.set_quality(q);
  }
  if (metadata_ >= 0 && !cell(metadata_).empty()) {
    auto st = google::protobuf::util::JsonStringToMessage(cell(metadata_),
                                                          r.mutable_metadata());
    if (!st.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("metadata is not a JSON object: ", st.ToString()));
    }
  }
  return r;
}

std::string ContentKey(const telemetry::v1::ReadingBatch& batch) {
  return absl::StrCat("csv:", Fnv1a64Hex(batch.SerializeAsString()), ":",
                      batch.readings_size());
}

}  // namespace telemetry::client
