// How far behind its primary the server a read connection is on may be.
//
// A read service pointed at a standby (READ_DATABASE_URL with
// target_session_attrs=prefer-standby) answers from data that can miss the
// newest writes. Callers of HourlySummary are told so in the answer, and
// operators see it as a metric; both come from here.
//
// The bound: a standby that has replayed all the WAL it received, while its
// WAL receiver is connected, is as fresh as the stream (zero). Otherwise it
// is behind by at most the time since the last transaction it replayed was
// committed on the primary. (pg_last_xact_replay_timestamp alone would read
// an idle primary as a growing lag; the receive = replay check alone would
// read a standby cut off from its primary as current.) A standby that has
// replayed no transaction since it started, and is not caught up with a
// connected receiver, cannot bound its lag: `lag` is unset.
//
// Only functions and views every role may read (pg_stat_wal_receiver shows
// its pid to any role), so the least-privilege reader role can ask.
#ifndef TELEMETRY_SERVER_QUERY_REPLICA_LAG_H_
#define TELEMETRY_SERVER_QUERY_REPLICA_LAG_H_

#include <optional>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "storage/pg/connection.h"

namespace telemetry::query {

struct ReplicaLag {
  bool standby = false;  // false: a primary answered; lag is meaningless
  // The standby's bound (see above); unset: a standby that cannot tell.
  std::optional<absl::Duration> lag;
};

// Whether `conn` is on a hot standby, from the in_hot_standby parameter the
// server reports to libpq (PostgreSQL 14+; updated at promotion), without
// a round trip. nullopt when it is not reported (an older server, or a
// pooler that does not pass it on): then ask ReadReplicaLag.
std::optional<bool> OnHotStandby(pg::Connection& conn);

// One round trip on `conn`.
absl::StatusOr<ReplicaLag> ReadReplicaLag(pg::Connection& conn);

}  // namespace telemetry::query

#endif  // TELEMETRY_SERVER_QUERY_REPLICA_LAG_H_
