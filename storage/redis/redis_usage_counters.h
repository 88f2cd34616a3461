// UsageCounters on Redis: one integer key per device, "<prefix><device>",
// added to with INCRBY and kept for `ttl` after its last addition. A report
// is one Lua script run per chunk of keys, the chunks pipelined: one round
// trip however many devices. All keys live on the one Redis primary the
// connection follows (a Redis Cluster would need them in one hash slot).
#ifndef TELEMETRY_STORAGE_REDIS_REDIS_USAGE_COUNTERS_H_
#define TELEMETRY_STORAGE_REDIS_REDIS_USAGE_COUNTERS_H_

#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/time/time.h"
#include "storage/redis/redis_connection.h"
#include "storage/usage_counters.h"
#include "storage/util/mutex.h"

namespace telemetry {

struct RedisUsageOptions : RedisConnectionOptions {
  RedisUsageOptions() = default;
  explicit RedisUsageOptions(RedisConnectionOptions connection)
      : RedisConnectionOptions(std::move(connection)) {}

  std::string key_prefix = "tg:use:";
  // Longer than any gap between two reports of an active device (a counter
  // that expires only costs its gateways one interval of accounting).
  absl::Duration ttl = absl::Minutes(10);
  // Keys per script run (bounds how long one run holds Redis).
  size_t keys_per_script = 500;
};

class RedisUsageCounters : public UsageCounters {
 public:
  explicit RedisUsageCounters(RedisUsageOptions options);

  absl::StatusOr<std::vector<int64_t>> AddAll(const std::vector<UsageDelta>& deltas) override;

  // Whether the last report reached Redis. (An atomic: no lock.)
  bool healthy() const { return ABSL_TS_UNCHECKED_READ(redis_).healthy(); }

 private:
  const RedisUsageOptions options_;
  Mutex mu_;
  RedisConnection redis_ ABSL_GUARDED_BY(mu_);
};

}  // namespace telemetry

#endif  // TELEMETRY_STORAGE_REDIS_REDIS_USAGE_COUNTERS_H_
