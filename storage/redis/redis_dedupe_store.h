// DedupeStore on Redis (hiredis, synchronous, one pipelined connection).
//
// Keys are "<prefix><idempotency key>". Values: "p:<token>" while a delivery
// is in flight (expires after in_flight_ttl, so a crashed gateway does not
// block retries for long) and "c:<accepted>" once committed (expires after
// committed_ttl). The claims of a whole commit group are one Lua script run
// (one round trip, one script call); its completions are pipelined into one
// round trip.
//
// The connection (redis_connection.h) fails fast while Redis is away and
// follows Sentinel failovers; a failed call returns kUnavailable or false,
// and the caller falls back to the database's key.
#ifndef TELEMETRY_STORAGE_REDIS_REDIS_DEDUPE_STORE_H_
#define TELEMETRY_STORAGE_REDIS_REDIS_DEDUPE_STORE_H_

#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/time/time.h"
#include "storage/dedupe_store.h"
#include "storage/redis/redis_connection.h"
#include "storage/util/mutex.h"

namespace telemetry {

struct RedisDedupeOptions : RedisConnectionOptions {
  RedisDedupeOptions() = default;
  explicit RedisDedupeOptions(RedisConnectionOptions connection)
      : RedisConnectionOptions(std::move(connection)) {}

  std::string key_prefix = "tg:idem:";
  absl::Duration in_flight_ttl = absl::Seconds(60);
  absl::Duration committed_ttl = absl::Hours(24);
};

class RedisDedupeStore : public DedupeStore {
 public:
  explicit RedisDedupeStore(RedisDedupeOptions options);

  std::vector<Claim> TryClaimAll(const std::vector<ClaimRequest>& requests) override;
  bool Complete(const std::vector<Completion>& completions) override;

  // Number of failed Redis operations (connects and commands) so far, and
  // whether the last one reached Redis. (Atomics of the connection: no lock.)
  int64_t errors() const { return ABSL_TS_UNCHECKED_READ(redis_).errors(); }
  bool healthy() const { return ABSL_TS_UNCHECKED_READ(redis_).healthy(); }

 private:
  const RedisDedupeOptions options_;
  Mutex mu_;
  RedisConnection redis_ ABSL_GUARDED_BY(mu_);
};

}  // namespace telemetry

#endif  // TELEMETRY_STORAGE_REDIS_REDIS_DEDUPE_STORE_H_
