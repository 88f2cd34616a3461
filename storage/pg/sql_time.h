// SQL fragments that move instants between PostgreSQL timestamps and
// microseconds since the Unix epoch (how every layer above holds time).
// Header only. Thread-safe.
#ifndef TELEMETRY_STORAGE_PG_SQL_TIME_H_
#define TELEMETRY_STORAGE_PG_SQL_TIME_H_

#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace telemetry::pg {

// timestamptz from parameter $`param_index` (bigint microseconds).
inline std::string MicrosToTimestampSql(int param_index) {
  return absl::StrCat("('epoch'::timestamptz + $", param_index,
                      "::bigint * interval '1 microsecond')");
}

// bigint microseconds of a timestamptz expression.
inline std::string TimestampToMicrosSql(absl::string_view column) {
  return absl::StrCat("(extract(epoch FROM ", column, ") * 1000000)::bigint");
}

}  // namespace telemetry::pg

#endif  // TELEMETRY_STORAGE_PG_SQL_TIME_H_
