#include "storage/redis/redis_usage_counters.h"

#include <hiredis/hiredis.h>

#include <algorithm>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace telemetry {
namespace {

// Adds ARGV[i] to KEYS[i], keeps it for ARGV[#KEYS + 1] ms, answers the
// new totals in order. A key that cannot be incremented (it holds
// something else) answers -1 and does not stop the others; a read-only
// replica refuses the first INCRBY, and the whole script with it.
constexpr const char* kAddScript =
    "local ttl = ARGV[#KEYS + 1] "
    "local out = {} "
    "for i, k in ipairs(KEYS) do "
    "  local total = redis.pcall('INCRBY', k, ARGV[i]) "
    "  if type(total) == 'table' and total.err then "
    "    if string.sub(total.err, 1, 8) == 'READONLY' then return redis.error_reply(total.err) end "
    "    out[i] = -1 "
    "  else "
    "    out[i] = total "
    "    redis.call('PEXPIRE', k, ttl) "
    "  end "
    "end "
    "return out";

}  // namespace

RedisUsageCounters::RedisUsageCounters(RedisUsageOptions options)
    : options_(std::move(options)), redis_(options_) {}

absl::StatusOr<std::vector<int64_t>> RedisUsageCounters::AddAll(
    const std::vector<UsageDelta>& deltas) {
  std::vector<int64_t> totals;
  if (deltas.empty()) return totals;
  const std::string ttl_ms = std::to_string(absl::ToInt64Milliseconds(options_.ttl));
  const size_t chunk = std::max<size_t>(1, options_.keys_per_script);
  MutexLock lock(&mu_);
  redisContext* ctx = redis_.Get();
  if (ctx == nullptr) return absl::UnavailableError("Redis is unreachable");
  for (size_t begin = 0; begin < deltas.size(); begin += chunk) {
    const size_t end = std::min(deltas.size(), begin + chunk);
    std::vector<std::string> args = {"EVAL", kAddScript, std::to_string(end - begin)};
    args.reserve(3 + 2 * (end - begin) + 1);
    for (size_t i = begin; i < end; ++i) args.push_back(options_.key_prefix + deltas[i].key);
    for (size_t i = begin; i < end; ++i) args.push_back(std::to_string(deltas[i].amount));
    args.push_back(ttl_ms);
    AppendRedisCommand(ctx, args);
  }
  totals.reserve(deltas.size());
  bool ok = true;
  for (size_t begin = 0; begin < deltas.size(); begin += chunk) {
    const size_t n = std::min(deltas.size(), begin + chunk) - begin;
    RedisReplyPtr r = NextRedisReply(ctx);
    if (!r) {  // the connection is gone: no more replies to read
      redis_.Fail();
      return absl::UnknownError("Redis did not answer the usage report");
    }
    if (r->type != REDIS_REPLY_ARRAY || r->elements != n) {
      ok = false;  // keep reading, so the pipeline stays in step
      continue;
    }
    for (size_t i = 0; i < n; ++i) {
      const redisReply* e = r->element[i];
      if (e->type != REDIS_REPLY_INTEGER) {
        ok = false;
        break;
      }
      totals.push_back(e->integer);
    }
  }
  if (!ok) {
    // A -READONLY replica, a script error: find the primary again.
    redis_.Fail();
    return absl::UnknownError("Redis refused the usage report");
  }
  redis_.Succeeded();
  return totals;
}

}  // namespace telemetry
