#include "storage/redis/redis_dedupe_store.h"

#include <hiredis/hiredis.h>
#include <sys/time.h>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "storage/util/mutex.h"

namespace telemetry {
namespace {

constexpr const char* kClaimScript =
    "local v = redis.call('GET', KEYS[1]) "
    "if v then return v end "
    "redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) "
    "return false";

constexpr const char* kReleaseScript =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then "
    "return redis.call('DEL', KEYS[1]) end "
    "return 0";



struct ReplyDeleter {
  void operator()(redisReply* r) const { freeReplyObject(r); }
};
using ReplyPtr = std::unique_ptr<redisReply, ReplyDeleter>;

// Sends argv as one binary-safe command (appended to the pipeline).
void Append(redisContext* ctx, const std::vector<std::string>& args) {
  std::vector<const char*> argv;
  std::vector<size_t> lens;
  for (const std::string& a : args) {
    argv.push_back(a.data());
    lens.push_back(a.size());
  }
  redisAppendCommandArgv(ctx, static_cast<int>(args.size()), argv.data(),
                         lens.data());
}

ReplyPtr NextReply(redisContext* ctx) {
  void* reply = nullptr;
  if (redisGetReply(ctx, &reply) != REDIS_OK) return nullptr;
  return ReplyPtr(static_cast<redisReply*>(reply));
}

}  // namespace

absl::StatusOr<RedisDedupeOptions> ParseRedisUrl(const std::string& url) {
  RedisDedupeOptions o;
  absl::string_view rest = url;
  if (!absl::ConsumePrefix(&rest, "redis://")) {
    return absl::InvalidArgumentError(
        "Redis URL must look like redis://[:password@]host[:port][/db]");
  }
  if (size_t at = rest.rfind('@'); at != absl::string_view::npos) {
    absl::string_view userinfo = rest.substr(0, at);
    rest.remove_prefix(at + 1);
    if (size_t colon = userinfo.find(':'); colon != absl::string_view::npos) {
      o.password = std::string(userinfo.substr(colon + 1));
    }
  }
  if (size_t slash = rest.find('/'); slash != absl::string_view::npos) {
    absl::string_view db = rest.substr(slash + 1);
    rest = rest.substr(0, slash);
    if (!db.empty() && !absl::SimpleAtoi(db, &o.db)) {
      return absl::InvalidArgumentError("Redis URL has a non-numeric db");
    }
  }
  absl::string_view host = rest;
  if (absl::StartsWith(rest, "[")) {  // [::1]:6379
    size_t close = rest.find(']');
    if (close == absl::string_view::npos) {
      return absl::InvalidArgumentError("Redis URL has an unclosed [");
    }
    host = rest.substr(1, close - 1);
    rest.remove_prefix(close + 1);
    if (absl::ConsumePrefix(&rest, ":") && !absl::SimpleAtoi(rest, &o.port)) {
      return absl::InvalidArgumentError("Redis URL has a non-numeric port");
    }
  } else if (size_t colon = rest.rfind(':'); colon != absl::string_view::npos) {
    host = rest.substr(0, colon);
    if (!absl::SimpleAtoi(rest.substr(colon + 1), &o.port)) {
      return absl::InvalidArgumentError("Redis URL has a non-numeric port");
    }
  }
  if (!host.empty()) o.host = std::string(host);
  return o;
}

RedisDedupeStore::RedisDedupeStore(RedisDedupeOptions options)
    : options_(std::move(options)) {}

RedisDedupeStore::~RedisDedupeStore() {
  MutexLock lock(&mu_);
  Disconnect();
}

void RedisDedupeStore::Disconnect() {
  if (ctx_) redisFree(ctx_);
  ctx_ = nullptr;
}

void RedisDedupeStore::RecordError() {
  errors_.fetch_add(1, std::memory_order_relaxed);
  healthy_.store(false, std::memory_order_relaxed);
  Disconnect();
  next_connect_attempt_ = absl::Now() + options_.reconnect_backoff;
}

bool RedisDedupeStore::EnsureConnected() {
  if (ctx_) return true;
  if (absl::Now() < next_connect_attempt_) return false;
  ctx_ = redisConnectWithTimeout(options_.host.c_str(), options_.port,
                                 absl::ToTimeval(options_.connect_timeout));
  if (ctx_ == nullptr || ctx_->err) {
    RecordError();
    return false;
  }
  redisSetTimeout(ctx_, absl::ToTimeval(options_.command_timeout));
  std::vector<std::vector<std::string>> setup;
  if (!options_.password.empty()) setup.push_back({"AUTH", options_.password});
  if (options_.db != 0) setup.push_back({"SELECT", std::to_string(options_.db)});
  for (const auto& cmd : setup) Append(ctx_, cmd);
  for (size_t i = 0; i < setup.size(); ++i) {
    ReplyPtr r = NextReply(ctx_);
    if (!r || r->type == REDIS_REPLY_ERROR) {
      RecordError();
      return false;
    }
  }
  return true;
}

std::vector<DedupeStore::Claim> RedisDedupeStore::TryClaimAll(
    const std::vector<ClaimRequest>& requests) {
  std::vector<Claim> claims(requests.size());  // kUnavailable until answered
  if (requests.empty()) return claims;
  MutexLock lock(&mu_);
  if (!EnsureConnected()) return claims;
  const std::string ttl_ms = std::to_string(absl::ToInt64Milliseconds(options_.in_flight_ttl));
  for (const ClaimRequest& req : requests) {
    Append(ctx_, {"EVAL", kClaimScript, "1", options_.key_prefix + req.key, "p:" + req.token,
                  ttl_ms});
  }
  for (size_t i = 0; i < requests.size(); ++i) {
    ReplyPtr r = NextReply(ctx_);
    if (!r || r->type == REDIS_REPLY_ERROR) {
      // The rest stay kUnavailable (the database's key decides for them);
      // any of them Redis did claim expires after in_flight_ttl.
      RecordError();
      return claims;
    }
    Claim& claim = claims[i];
    if (r->type == REDIS_REPLY_NIL) {
      claim.outcome = ClaimOutcome::kClaimed;
      continue;
    }
    absl::string_view value(r->str, r->len);
    if (absl::ConsumePrefix(&value, "c:")) {
      claim.outcome = ClaimOutcome::kCommitted;
      (void)absl::SimpleAtoi(value, &claim.committed_accepted);
    } else if (value == "p:" + requests[i].token) {
      claim.outcome = ClaimOutcome::kClaimed;  // our own earlier claim
    } else {
      claim.outcome = ClaimOutcome::kInFlight;
    }
  }
  healthy_.store(true, std::memory_order_relaxed);
  return claims;
}

bool RedisDedupeStore::Complete(const std::vector<Completion>& completions) {
  if (completions.empty()) return true;
  MutexLock lock(&mu_);
  if (!EnsureConnected()) return false;
  const std::string committed_ms =
      std::to_string(absl::ToInt64Milliseconds(options_.committed_ttl));
  for (const Completion& c : completions) {
    if (c.committed) {
      Append(ctx_, {"SET", options_.key_prefix + c.key,
                    absl::StrCat("c:", c.accepted), "PX", committed_ms});
    } else {
      Append(ctx_, {"EVAL", kReleaseScript, "1", options_.key_prefix + c.key,
                    "p:" + c.token});
    }
  }
  for (size_t i = 0; i < completions.size(); ++i) {
    ReplyPtr r = NextReply(ctx_);
    if (!r || r->type == REDIS_REPLY_ERROR) {
      RecordError();
      return false;
    }
  }
  healthy_.store(true, std::memory_order_relaxed);
  return true;
}

}  // namespace telemetry
