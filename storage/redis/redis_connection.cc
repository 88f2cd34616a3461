#include "storage/redis/redis_connection.h"

#include <sys/time.h>

#include <optional>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"

namespace telemetry {
namespace {

// "host", "host:port", "[v6]" or "[v6]:port" into *address (fields not
// given keep their value).
absl::Status ParseHostPort(absl::string_view rest, RedisAddress* address) {
  absl::string_view host = rest;
  const bool bracketed = absl::StartsWith(rest, "[");
  if (bracketed) {  // [::1]:6379
    size_t close = rest.find(']');
    if (close == absl::string_view::npos) {
      return absl::InvalidArgumentError("unclosed [");
    }
    host = rest.substr(1, close - 1);
    rest.remove_prefix(close + 1);
    if (absl::ConsumePrefix(&rest, ":") && !absl::SimpleAtoi(rest, &address->port)) {
      return absl::InvalidArgumentError("non-numeric port");
    }
  } else if (size_t colon = rest.rfind(':'); colon != absl::string_view::npos) {
    host = rest.substr(0, colon);
    if (!absl::SimpleAtoi(rest.substr(colon + 1), &address->port)) {
      return absl::InvalidArgumentError("non-numeric port");
    }
  }
  if (address->port <= 0 || address->port > 65535) {
    return absl::InvalidArgumentError("port out of range");
  }
  if (!bracketed && host.find(':') != absl::string_view::npos) {
    return absl::InvalidArgumentError("an IPv6 address needs brackets: [::1]:port");
  }
  if (!host.empty()) address->host = std::string(host);
  return absl::OkStatus();
}

}  // namespace

void AppendRedisCommand(redisContext* ctx, const std::vector<std::string>& args) {
  std::vector<const char*> argv;
  std::vector<size_t> lens;
  argv.reserve(args.size());
  lens.reserve(args.size());
  for (const std::string& a : args) {
    argv.push_back(a.data());
    lens.push_back(a.size());
  }
  redisAppendCommandArgv(ctx, static_cast<int>(args.size()), argv.data(), lens.data());
}

RedisReplyPtr NextRedisReply(redisContext* ctx) {
  void* reply = nullptr;
  if (redisGetReply(ctx, &reply) != REDIS_OK) return nullptr;
  return RedisReplyPtr(static_cast<redisReply*>(reply));
}

absl::StatusOr<RedisConnectionOptions> ParseRedisUrl(const std::string& url) {
  RedisConnectionOptions o;
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
  RedisAddress address{o.host, o.port};
  if (absl::Status st = ParseHostPort(rest, &address); !st.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("Redis URL: ", st.message()));
  }
  o.host = address.host;
  o.port = address.port;
  return o;
}

absl::StatusOr<std::vector<RedisAddress>> ParseSentinelList(const std::string& list) {
  std::vector<RedisAddress> out;
  for (absl::string_view entry : absl::StrSplit(list, ',', absl::SkipWhitespace())) {
    RedisAddress a{"", 26379};
    if (absl::Status st = ParseHostPort(absl::StripAsciiWhitespace(entry), &a); !st.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("sentinel '", entry, "': ", st.message()));
    }
    if (a.host.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("sentinel '", entry, "' has no host"));
    }
    out.push_back(std::move(a));
  }
  if (out.empty()) {
    return absl::InvalidArgumentError("the sentinel list is empty (want host:port[,host:port])");
  }
  return out;
}

RedisConnection::RedisConnection(RedisConnectionOptions options)
    : options_(std::move(options)) {}

RedisConnection::~RedisConnection() { Disconnect(); }

void RedisConnection::Disconnect() {
  if (ctx_) redisFree(ctx_);
  ctx_ = nullptr;
}

void RedisConnection::Fail() {
  errors_.fetch_add(1, std::memory_order_relaxed);
  healthy_.store(false, std::memory_order_relaxed);
  Disconnect();
  next_connect_attempt_ = absl::Now() + options_.reconnect_backoff;
}

absl::StatusOr<RedisAddress> RedisConnection::AskSentinels() const {
  // Every sentinel, not the first that answers: one that missed the last
  // failover still names the old primary, which may be back, empty and
  // saying it is a primary until the others reconfigure it. The answer
  // with the newest configuration (the highest config-epoch, Sentinel's
  // own rule) wins; ties go to the earlier sentinel in the list.
  std::optional<RedisAddress> best;
  int64_t best_epoch = -1;
  for (const RedisAddress& sentinel : options_.sentinels) {
    redisContext* c = redisConnectWithTimeout(sentinel.host.c_str(), sentinel.port,
                                              absl::ToTimeval(options_.connect_timeout));
    if (c == nullptr || c->err) {
      if (c) redisFree(c);
      continue;
    }
    // A sentinel answers from memory: the connect timeout bounds its reply
    // too, so that a hung one costs little (this runs on the write path).
    redisSetTimeout(c, absl::ToTimeval(options_.connect_timeout));
    // The address from get-master-addr-by-name: during a failover it is
    // already the promoted replica's, while SENTINEL master still shows the
    // old primary's (with the new epoch).
    AppendRedisCommand(c, {"SENTINEL", "get-master-addr-by-name", options_.master_name});
    AppendRedisCommand(c, {"SENTINEL", "master", options_.master_name});
    RedisReplyPtr addr = NextRedisReply(c);
    RedisReplyPtr master = NextRedisReply(c);
    redisFree(c);
    // Nil or an error: this sentinel does not know the name; try the next.
    if (!addr || addr->type != REDIS_REPLY_ARRAY || addr->elements != 2 ||
        addr->element[0]->type != REDIS_REPLY_STRING ||
        addr->element[1]->type != REDIS_REPLY_STRING || !master ||
        master->type != REDIS_REPLY_ARRAY) {
      continue;
    }
    RedisAddress primary{std::string(addr->element[0]->str, addr->element[0]->len), 0};
    if (!absl::SimpleAtoi(absl::string_view(addr->element[1]->str, addr->element[1]->len),
                          &primary.port)) {
      continue;
    }
    int64_t epoch = -1;
    for (size_t f = 0; f + 1 < master->elements; f += 2) {
      const redisReply* key = master->element[f];
      const redisReply* value = master->element[f + 1];
      if (key->type == REDIS_REPLY_STRING && value->type == REDIS_REPLY_STRING &&
          absl::string_view(key->str, key->len) == "config-epoch" &&
          !absl::SimpleAtoi(absl::string_view(value->str, value->len), &epoch)) {
        epoch = -1;
      }
    }
    if (!best.has_value() || epoch > best_epoch) {
      best = std::move(primary);
      best_epoch = epoch;
    }
  }
  if (!best.has_value()) return absl::NotFoundError("no sentinel named a primary");
  return *std::move(best);
}

redisContext* RedisConnection::Get() {
  if (ctx_) return ctx_;
  if (absl::Now() < next_connect_attempt_) return nullptr;
  const bool via_sentinel = !options_.sentinels.empty();
  RedisAddress target{options_.host, options_.port};
  if (via_sentinel) {
    absl::StatusOr<RedisAddress> primary = AskSentinels();
    if (!primary.ok()) {
      Fail();
      return nullptr;
    }
    target = *std::move(primary);
  }
  ctx_ = redisConnectWithTimeout(target.host.c_str(), target.port,
                                 absl::ToTimeval(options_.connect_timeout));
  if (ctx_ == nullptr || ctx_->err) {
    Fail();
    return nullptr;
  }
  redisSetTimeout(ctx_, absl::ToTimeval(options_.command_timeout));
  std::vector<std::vector<std::string>> setup;
  if (!options_.password.empty()) setup.push_back({"AUTH", options_.password});
  if (options_.db != 0) setup.push_back({"SELECT", std::to_string(options_.db)});
  // A sentinel's answer may be stale (a failover under way, or a demoted
  // primary not yet reconfigured): only a server that says it is the
  // primary is used.
  if (via_sentinel) setup.push_back({"ROLE"});
  for (const auto& cmd : setup) AppendRedisCommand(ctx_, cmd);
  for (size_t i = 0; i < setup.size(); ++i) {
    RedisReplyPtr r = NextRedisReply(ctx_);
    if (!r || r->type == REDIS_REPLY_ERROR) {
      Fail();
      return nullptr;
    }
    if (setup[i][0] == "ROLE") {
      const bool primary = r->type == REDIS_REPLY_ARRAY && r->elements > 0 &&
                           r->element[0]->type == REDIS_REPLY_STRING &&
                           absl::string_view(r->element[0]->str, r->element[0]->len) == "master";
      if (!primary) {
        Fail();
        return nullptr;
      }
    }
  }
  return ctx_;
}

}  // namespace telemetry
