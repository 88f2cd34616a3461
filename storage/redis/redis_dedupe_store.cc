#include "storage/redis/redis_dedupe_store.h"

#include <hiredis/hiredis.h>

#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "storage/util/mutex.h"

namespace telemetry {
namespace {

// Claims every key of a group in one script run (one round trip, one Lua
// call however many keys): a key that holds a value is answered with it, a
// free one is set to its token (ARGV[i]) for ARGV[#KEYS + 1] ms and
// answered nil. All keys of one call live on the one Redis this store
// talks to (a Redis Cluster would need them in one hash slot).
constexpr const char* kClaimScript =
    "local ttl = ARGV[#KEYS + 1] "
    "local out = {} "
    "for i, k in ipairs(KEYS) do "
    "  local v = redis.call('GET', k) "
    "  if v then out[i] = v else redis.call('SET', k, ARGV[i], 'PX', ttl) out[i] = false end "
    "end "
    "return out";

constexpr const char* kReleaseScript =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then "
    "return redis.call('DEL', KEYS[1]) end "
    "return 0";

}  // namespace

RedisDedupeStore::RedisDedupeStore(RedisDedupeOptions options)
    : options_(std::move(options)), redis_(options_) {}

std::vector<DedupeStore::Claim> RedisDedupeStore::TryClaimAll(
    const std::vector<ClaimRequest>& requests) {
  std::vector<Claim> claims(requests.size());  // kUnavailable until answered
  if (requests.empty()) return claims;
  MutexLock lock(&mu_);
  redisContext* ctx = redis_.Get();
  if (ctx == nullptr) return claims;
  std::vector<std::string> args = {"EVAL", kClaimScript, std::to_string(requests.size())};
  args.reserve(3 + 2 * requests.size() + 1);
  for (const ClaimRequest& req : requests) args.push_back(options_.key_prefix + req.key);
  for (const ClaimRequest& req : requests) args.push_back("p:" + req.token);
  args.push_back(std::to_string(absl::ToInt64Milliseconds(options_.in_flight_ttl)));
  AppendRedisCommand(ctx, args);
  RedisReplyPtr r = NextRedisReply(ctx);
  if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != requests.size()) {
    redis_.Fail();  // all stay kUnavailable: the database's key decides
    return claims;
  }
  for (size_t i = 0; i < requests.size(); ++i) {
    const redisReply* e = r->element[i];
    Claim& claim = claims[i];
    if (e->type == REDIS_REPLY_NIL) {
      claim.outcome = ClaimOutcome::kClaimed;
      continue;
    }
    if (e->type != REDIS_REPLY_STRING) {  // not a value this store wrote
      redis_.Fail();
      return std::vector<Claim>(requests.size());  // all kUnavailable
    }
    absl::string_view value(e->str, e->len);
    if (absl::ConsumePrefix(&value, "c:")) {
      claim.outcome = ClaimOutcome::kCommitted;
      (void)absl::SimpleAtoi(value, &claim.committed_accepted);
    } else if (value == "p:" + requests[i].token) {
      claim.outcome = ClaimOutcome::kClaimed;  // our own earlier claim
    } else {
      claim.outcome = ClaimOutcome::kInFlight;
    }
  }
  redis_.Succeeded();
  return claims;
}

bool RedisDedupeStore::Complete(const std::vector<Completion>& completions) {
  if (completions.empty()) return true;
  MutexLock lock(&mu_);
  redisContext* ctx = redis_.Get();
  if (ctx == nullptr) return false;
  const std::string committed_ms =
      std::to_string(absl::ToInt64Milliseconds(options_.committed_ttl));
  for (const Completion& c : completions) {
    if (c.committed) {
      AppendRedisCommand(ctx, {"SET", options_.key_prefix + c.key,
                    absl::StrCat("c:", c.accepted), "PX", committed_ms});
    } else {
      AppendRedisCommand(ctx, {"EVAL", kReleaseScript, "1", options_.key_prefix + c.key,
                    "p:" + c.token});
    }
  }
  for (size_t i = 0; i < completions.size(); ++i) {
    RedisReplyPtr r = NextRedisReply(ctx);
    if (!r || r->type == REDIS_REPLY_ERROR) {
      redis_.Fail();
      return false;
    }
  }
  redis_.Succeeded();
  return true;
}

}  // namespace telemetry
