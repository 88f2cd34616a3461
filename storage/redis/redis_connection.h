// One synchronous hiredis connection to the Redis primary, found directly or
// through Sentinel, shared by the gateway's Redis clients (the dedupe store,
// the cluster-wide device usage counters) so that each follows failovers
// the same way.
//
// When Redis is unreachable, Get() fails fast: after a failed connect the
// connection does not try again for `reconnect_backoff`, so a dead Redis
// costs the caller nothing but a clock read.
//
// With Redis Sentinel (`sentinels` set) every connect asks each sentinel for
// the current primary of `master_name`, takes the answer with the newest
// configuration (highest config-epoch, so a sentinel that missed a failover
// is outvoted), and checks with ROLE that the server it reached is a
// primary, so a stale answer does not lead to a replica. Asking costs up to
// two connect timeouts per unreachable sentinel, on the caller's thread.
// A server Sentinel demotes drops its clients; a failover shows as a lost
// connection or a -READONLY reply: the caller reports it with Fail(), and
// the next connect, after the backoff, finds the new primary. ROLE needs
// the `role` command in the ACL of a restricted user; sentinels with a
// password of their own are not supported.
//
// Not thread-safe: its owner serialises calls (and the commands sent on the
// context). errors() and healthy() may be read from any thread.
#ifndef TELEMETRY_STORAGE_REDIS_REDIS_CONNECTION_H_
#define TELEMETRY_STORAGE_REDIS_REDIS_CONNECTION_H_

#include <hiredis/hiredis.h>

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace telemetry {

struct RedisAddress {
  std::string host;
  int port = 0;
};

struct RedisConnectionOptions {
  std::string host = "127.0.0.1";  // unused with sentinels
  int port = 6379;
  // Sentinels to ask for the primary of `master_name`; empty: host:port is
  // the primary.
  std::vector<RedisAddress> sentinels;
  std::string master_name;
  std::string password;  // empty: no AUTH
  int db = 0;
  absl::Duration connect_timeout = absl::Milliseconds(200);
  absl::Duration command_timeout = absl::Milliseconds(500);
  absl::Duration reconnect_backoff = absl::Seconds(1);
};

// Parses redis://[:password@]host[:port][/db]. InvalidArgument otherwise.
absl::StatusOr<RedisConnectionOptions> ParseRedisUrl(const std::string& url);

// Parses "host:port,host:port" ([::1]:26379 for IPv6; the port defaults to
// Sentinel's 26379). InvalidArgument for an empty list or a bad entry.
absl::StatusOr<std::vector<RedisAddress>> ParseSentinelList(const std::string& list);

struct RedisReplyDeleter {
  void operator()(redisReply* r) const { freeReplyObject(r); }
};
using RedisReplyPtr = std::unique_ptr<redisReply, RedisReplyDeleter>;

// Appends `args` as one binary-safe command to the context's pipeline.
void AppendRedisCommand(redisContext* ctx, const std::vector<std::string>& args);
// The next reply of the pipeline; null when the connection failed.
RedisReplyPtr NextRedisReply(redisContext* ctx);

class RedisConnection {
 public:
  explicit RedisConnection(RedisConnectionOptions options);
  ~RedisConnection();
  RedisConnection(const RedisConnection&) = delete;
  RedisConnection& operator=(const RedisConnection&) = delete;

  // The connected context (connecting first if need be), or null while
  // Redis is unreachable or within the backoff after a failure.
  redisContext* Get();
  // The last command failed or answered what it should not have: counts an
  // error, drops the connection and starts the backoff.
  void Fail();
  // The last command reached Redis and was answered as expected.
  void Succeeded() { healthy_.store(true, std::memory_order_relaxed); }

  // Number of failed Redis operations (connects and commands) so far.
  int64_t errors() const { return errors_.load(std::memory_order_relaxed); }
  // Whether the last operation reached Redis.
  bool healthy() const { return healthy_.load(std::memory_order_relaxed); }
  const RedisConnectionOptions& options() const { return options_; }

 private:
  // The primary's address in the newest configuration the sentinels
  // report; NotFound when none names one.
  absl::StatusOr<RedisAddress> AskSentinels() const;
  void Disconnect();

  const RedisConnectionOptions options_;
  redisContext* ctx_ = nullptr;
  absl::Time next_connect_attempt_ = absl::InfinitePast();
  std::atomic<int64_t> errors_{0};
  std::atomic<bool> healthy_{false};
};

}  // namespace telemetry

#endif  // TELEMETRY_STORAGE_REDIS_REDIS_CONNECTION_H_
