// DedupeStore on Redis (hiredis, synchronous, one pipelined connection).
//
// Keys are "<prefix><idempotency key>". Values: "p:<token>" while a delivery
// is in flight (expires after in_flight_ttl, so a crashed gateway does not
// block retries for long) and "c:<accepted>" once committed (expires after
// committed_ttl). The claims of a whole commit group are one Lua script run
// (one round trip, one script call); its completions are pipelined into one
// round trip.
//
// When Redis is unreachable, calls fail fast: after a failed connect the
// store does not try again for `reconnect_backoff`, so a dead Redis costs the
// ingest path nothing but a flag check.
//
// With Redis Sentinel (`sentinels` set) every connect asks each sentinel for
// the current primary of `master_name`, takes the answer with the newest
// configuration (highest config-epoch, so a sentinel that missed a failover
// is outvoted), and checks with ROLE that the server it reached is a
// primary, so a stale answer does not lead to a replica. Asking costs up to
// two connect timeouts per unreachable sentinel, on the caller's thread.
// A server Sentinel demotes drops its clients; a failover shows as a lost
// connection or a -READONLY reply: the call fails (the caller falls back to
// the database's key), and the next connect, after the backoff, finds the
// new primary. ROLE needs the `role` command in the ACL of a restricted
// user; sentinels with a password of their own are not supported.
#ifndef TELEMETRY_STORAGE_REDIS_REDIS_DEDUPE_STORE_H_
#define TELEMETRY_STORAGE_REDIS_REDIS_DEDUPE_STORE_H_

#include <atomic>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "storage/dedupe_store.h"
#include "storage/util/mutex.h"

struct redisContext;
struct redisReply;

namespace telemetry {

struct RedisAddress {
  std::string host;
  int port = 0;
};

struct RedisDedupeOptions {
  std::string host = "127.0.0.1";  // unused with sentinels
  int port = 6379;
  // Sentinels to ask for the primary of `master_name`; empty: host:port is
  // the primary.
  std::vector<RedisAddress> sentinels;
  std::string master_name;
  std::string password;  // empty: no AUTH
  int db = 0;
  std::string key_prefix = "tg:idem:";
  absl::Duration in_flight_ttl = absl::Seconds(60);
  absl::Duration committed_ttl = absl::Hours(24);
  absl::Duration connect_timeout = absl::Milliseconds(200);
  absl::Duration command_timeout = absl::Milliseconds(500);
  absl::Duration reconnect_backoff = absl::Seconds(1);
};

// Parses redis://[:password@]host[:port][/db]. InvalidArgument otherwise.
absl::StatusOr<RedisDedupeOptions> ParseRedisUrl(const std::string& url);

// Parses "host:port,host:port" ([::1]:26379 for IPv6; the port defaults to
// Sentinel's 26379). InvalidArgument for an empty list or a bad entry.
absl::StatusOr<std::vector<RedisAddress>> ParseSentinelList(const std::string& list);

class RedisDedupeStore : public DedupeStore {
 public:
  explicit RedisDedupeStore(RedisDedupeOptions options);
  ~RedisDedupeStore() override;

  std::vector<Claim> TryClaimAll(const std::vector<ClaimRequest>& requests) override;
  bool Complete(const std::vector<Completion>& completions) override;

  // Number of failed Redis operations (connects and commands) so far.
  int64_t errors() const { return errors_.load(std::memory_order_relaxed); }
  // Whether the last operation reached Redis.
  bool healthy() const { return healthy_.load(std::memory_order_relaxed); }

 private:
  bool EnsureConnected() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The primary's address in the newest configuration the sentinels
  // report; NotFound when none names one.
  absl::StatusOr<RedisAddress> AskSentinels() const;
  void Disconnect() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void RecordError() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const RedisDedupeOptions options_;
  Mutex mu_;
  redisContext* ctx_ ABSL_GUARDED_BY(mu_) = nullptr;
  absl::Time next_connect_attempt_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  std::atomic<int64_t> errors_{0};
  std::atomic<bool> healthy_{false};
};

}  // namespace telemetry

#endif  // TELEMETRY_STORAGE_REDIS_REDIS_DEDUPE_STORE_H_
