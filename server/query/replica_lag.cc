#include "server/query/replica_lag.h"

#include <libpq-fe.h>

#include <cstring>

namespace telemetry::query {

std::optional<bool> OnHotStandby(pg::Connection& conn) {
  const char* value = PQparameterStatus(conn.raw(), "in_hot_standby");
  if (value == nullptr) return std::nullopt;
  return std::strcmp(value, "on") == 0;
}

absl::StatusOr<ReplicaLag> ReadReplicaLag(pg::Connection& conn) {
  // Microseconds, as an integer: NULL on a primary and when unbounded.
  auto r = conn.Query(
      "SELECT pg_is_in_recovery(), CASE "
      "WHEN NOT pg_is_in_recovery() THEN NULL "
      "WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() "
      "AND EXISTS (SELECT 1 FROM pg_stat_wal_receiver) THEN 0 "
      "ELSE GREATEST(0, (EXTRACT(EPOCH FROM clock_timestamp() - "
      "pg_last_xact_replay_timestamp()) * 1000000)::bigint) END");
  if (!r.ok()) return r.status();
  ReplicaLag out;
  if (r->rows() != 1) return out;
  out.standby = r->GetBool(0, 0);
  if (out.standby && !r->IsNull(0, 1)) out.lag = absl::Microseconds(r->GetInt(0, 1));
  return out;
}

}  // namespace telemetry::query
