// Conversions between SQL text results / parameters and API values, shared by
// the read service's handlers. Timestamps travel as integer microseconds
// since the Unix epoch in both directions, so nothing is lost to floating
// point or time-zone settings:
//   SELECT ... (extract(epoch FROM ts) * 1000000)::bigint ...    -- to us
//   WHERE ts >= 'epoch'::timestamptz + $1::bigint * interval '1 microsecond'
#ifndef TELEMETRY_SERVER_QUERY_SQL_VALUES_H_
#define TELEMETRY_SERVER_QUERY_SQL_VALUES_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/timestamp.pb.h"
#include "storage/pg/connection.h"
#include "storage/pg/sql_time.h"

namespace telemetry::query {

// SQL expressions between bigint microseconds and timestamptz.
using pg::MicrosToTimestampSql;
using pg::TimestampToMicrosSql;

int64_t ToMicros(const google::protobuf::Timestamp& t);
void SetFromMicros(int64_t micros, google::protobuf::Timestamp* t);

// Parses a JSON object (as PostgreSQL prints jsonb) into a Struct.
absl::StatusOr<google::protobuf::Struct> JsonToStruct(absl::string_view json);

// PostgreSQL text[] literal <-> strings.
std::string ToTextArray(const std::vector<std::string>& values);
std::vector<std::string> FromTextArray(absl::string_view literal);

// A timestamp in a request: InvalidArgument naming `field` when unset.
absl::StatusOr<int64_t> RequiredMicros(const google::protobuf::Timestamp* t,
                                       bool has, absl::string_view field);

// Opaque, URL-safe page tokens / cursors made of parts.
std::string EncodeToken(const std::vector<std::string>& parts);
absl::StatusOr<std::vector<std::string>> DecodeToken(absl::string_view token,
                                                     size_t expected_parts);

// Whether `s` is a canonical textual UUID.
bool IsUuid(absl::string_view s);

}  // namespace telemetry::query

#endif  // TELEMETRY_SERVER_QUERY_SQL_VALUES_H_
