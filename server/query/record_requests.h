// What the record services (alerts, maintenance) share: request checks in
// one wording, constraint failures turned into statuses a client can act
// on, and newest-first keyset pages. Pure but for the row helpers' use of
// pg::Result. Thread-safe.
#ifndef TELEMETRY_SERVER_QUERY_RECORD_REQUESTS_H_
#define TELEMETRY_SERVER_QUERY_RECORD_REQUESTS_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/timestamp.pb.h"
#include "server/common/text_checks.h"
#include "storage/pg/connection.h"
#include "storage/pg/connection_pool.h"

namespace telemetry::query {

inline absl::Status Invalid(absl::string_view what) {
  return absl::InvalidArgumentError(std::string(what));
}

// InvalidArgument saying why `value` is unacceptable for `field`, or OK
// (telemetry::CheckText).
absl::Status CheckField(absl::string_view value, absl::string_view field, size_t max_bytes,
                        bool required);

// Turns a constraint failure into the status a client can act on: a missing
// referenced row is NotFound(`missing_what`), a check constraint (a status
// lifecycle) FailedPrecondition, a malformed value InvalidArgument.
absl::Status Explain(const absl::Status& s, absl::string_view missing_what);

// A list call's page size: 100 by default, at most 1000.
int PageLimit(uint32_t page_size);

// Microseconds of `t` as a query parameter, or "" (NULL) when absent.
std::string OptionalMicros(const google::protobuf::Timestamp& t, bool has);

// NULL for an empty string.
pg::Param NonEmpty(const std::string& s);

// The record of `table` (a constant of ours, never input) with id `id`,
// selecting `columns`: InvalidArgument for an id that is not a UUID,
// NotFound "<what> <id> not found" when there is none.
absl::StatusOr<pg::Result> SelectRecord(pg::ConnectionPool& pool, absl::string_view table,
                                        absl::string_view columns, const std::string& id,
                                        absl::string_view what);

// Sets the status of that record and returns it, with the same errors plus
// the database's status rules as FailedPrecondition (Explain).
absl::StatusOr<pg::Result> UpdateRecordStatus(pg::ConnectionPool& pool, absl::string_view table,
                                              absl::string_view columns, const std::string& id,
                                              const std::string& status, absl::string_view what);

// A newest-first page keyed by (time, uuid): the position after the
// previous page (NULL on the first) and the page size. One row more than the
// page is fetched to learn whether another page follows.
struct KeysetPage {
  pg::Param after_us, after_id;
  int limit = 100;

  static absl::StatusOr<KeysetPage> From(const std::string& token, uint32_t page_size);
  std::string FetchParam() const { return std::to_string(limit + 1); }
  int Kept(const pg::Result& r) const;
  // The next page's token, or "" when this page is the last.
  std::string NextToken(const pg::Result& r, const google::protobuf::Timestamp& last_time,
                        const std::string& last_id) const;
};

}  // namespace telemetry::query

#endif  // TELEMETRY_SERVER_QUERY_RECORD_REQUESTS_H_
