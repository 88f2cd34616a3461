#include "server/common/status_util.h"

#include "absl/strings/match.h"
#include "storage/pg/connection.h"

namespace telemetry {

std::string PublicMessage(const absl::Status& status) {
  const std::string sqlstate = pg::SqlStateOf(status);
  if (sqlstate.empty()) return std::string(status.message());  // ours: already public
  if (absl::StartsWith(sqlstate, "08")) return "the database is unreachable; retry later";
  if (sqlstate == "25006") {
    return "the database is read-only (a failover may be under way); retry later";
  }
  if (sqlstate == "53100") {
    return "the database is out of disk space (No space left on device); retry once space "
           "is freed";
  }
  if (absl::StartsWith(sqlstate, "53")) return "the database is out of resources; retry later";
  if (sqlstate == "57014") return "the database did not answer in time; retry";
  if (absl::StartsWith(sqlstate, "57P")) return "the database is restarting; retry later";
  if (sqlstate == "40001" || sqlstate == "40P01") {
    return "conflict with a concurrent transaction; retry";
  }
  if (sqlstate == "42501") {
    return "this service's database role lacks a privilege it needs; see the server log";
  }
  if (absl::StartsWith(sqlstate, "22")) return "the database refused a value of this request";
  return "internal database error; see the server log";
}

}  // namespace telemetry
