// The cluster-wide device usage counters against a real redis-server.
#include "storage/redis/redis_usage_counters.h"

#include <gtest/gtest.h>
#include <hiredis/hiredis.h>

#include "absl/strings/str_cat.h"
#include "tests/support/servers_environment.h"

namespace telemetry {
namespace {

using telemetry::testing::Redis;

RedisUsageOptions Options(const std::string& prefix) {
  auto url = ParseRedisUrl(Redis().Url());
  EXPECT_TRUE(url.ok());
  RedisUsageOptions o(*url);
  o.key_prefix = prefix;
  o.reconnect_backoff = absl::ZeroDuration();
  return o;
}

TEST(RedisUsageCountersTest, TwoGatewaysAddToOneTotalPerDevice) {
  RedisUsageCounters a(Options("u1:")), b(Options("u1:"));
  auto first = a.AddAll({{"dev-1", 10}, {"dev-2", 5}});
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(*first, (std::vector<int64_t>{10, 5}));
  auto second = b.AddAll({{"dev-1", 7}});
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(*second, (std::vector<int64_t>{17}));
  // A zero asks for the total without adding.
  auto third = a.AddAll({{"dev-2", 0}, {"dev-1", 1}});
  ASSERT_TRUE(third.ok()) << third.status();
  EXPECT_EQ(*third, (std::vector<int64_t>{5, 18}));
  EXPECT_TRUE(a.healthy());
}

TEST(RedisUsageCountersTest, ManyDevicesAreAnsweredInOrderAcrossScriptChunks) {
  RedisUsageOptions o = Options("u2:");
  o.keys_per_script = 7;  // 1000 devices: 143 pipelined script runs
  RedisUsageCounters counters(o);
  std::vector<UsageDelta> deltas;
  for (int i = 0; i < 1000; ++i) deltas.push_back({absl::StrCat("d", i), i});
  ASSERT_TRUE(counters.AddAll(deltas).ok());
  auto totals = counters.AddAll(deltas);
  ASSERT_TRUE(totals.ok()) << totals.status();
  ASSERT_EQ(totals->size(), 1000u);
  for (int i = 0; i < 1000; ++i) EXPECT_EQ((*totals)[i], 2 * i) << i;
}

TEST(RedisUsageCountersTest, CountersExpireAfterTheirTimeToLive) {
  RedisUsageOptions o = Options("u3:");
  o.ttl = absl::Seconds(2);  // long enough to see, under a sanitizer's pace too
  RedisUsageCounters counters(o);
  ASSERT_TRUE(counters.AddAll({{"d", 50}}).ok());
  redisContext* c = redisConnect("127.0.0.1", Redis().port());
  ASSERT_TRUE(c != nullptr && c->err == 0);
  auto* ttl = static_cast<redisReply*>(redisCommand(c, "PTTL u3:d"));
  ASSERT_NE(ttl, nullptr);
  EXPECT_GT(ttl->integer, 0);
  EXPECT_LE(ttl->integer, 2000);
  freeReplyObject(ttl);
  // (Asked directly: every report, even of zero, keeps the counter alive.)
  EXPECT_TRUE(telemetry::local::PollUntil(
      [&] {
        auto* exists = static_cast<redisReply*>(redisCommand(c, "EXISTS u3:d"));
        const bool gone = exists != nullptr && exists->integer == 0;
        if (exists != nullptr) freeReplyObject(exists);
        return gone;
      },
      absl::Seconds(20)));
  redisFree(c);
  auto total = counters.AddAll({{"d", 0}});
  ASSERT_TRUE(total.ok()) << total.status();
  EXPECT_EQ((*total)[0], 0);  // a new count: its gateways take a new baseline
}

TEST(RedisUsageCountersTest, AKeyHoldingSomethingElseFailsOnlyThatDevice) {
  RedisUsageCounters counters(Options("u4:"));
  redisContext* c = redisConnect("127.0.0.1", Redis().port());
  ASSERT_TRUE(c != nullptr && c->err == 0);
  freeReplyObject(redisCommand(c, "SET u4:d not-a-number"));
  auto totals = counters.AddAll({{"ok", 1}, {"d", 1}, {"ok2", 3}});
  ASSERT_TRUE(totals.ok()) << totals.status();
  EXPECT_EQ(*totals, (std::vector<int64_t>{1, -1, 3}));
  EXPECT_TRUE(counters.healthy());  // the connection answered; it is kept
  auto* kept = static_cast<redisReply*>(redisCommand(c, "GET u4:d"));
  ASSERT_NE(kept, nullptr);
  EXPECT_STREQ(kept->str, "not-a-number");  // left as it was
  freeReplyObject(kept);
  redisFree(c);
}

TEST(RedisUsageCountersTest, FailsWhileRedisIsDownThenRecovers) {
  RedisUsageCounters counters(Options("u5:"));
  ASSERT_TRUE(counters.AddAll({{"d", 1}}).ok());
  ASSERT_TRUE(Redis().Stop().ok());
  // Sent on the old connection: it may have counted.
  EXPECT_EQ(counters.AddAll({{"d", 1}}).status().code(), absl::StatusCode::kUnknown);
  EXPECT_FALSE(counters.healthy());
  // No connection: nothing sent.
  EXPECT_EQ(counters.AddAll({{"d", 1}}).status().code(), absl::StatusCode::kUnavailable);
  ASSERT_TRUE(Redis().Restart().ok());
  auto after = counters.AddAll({{"d", 1}});
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_TRUE(counters.healthy());
}

}  // namespace
}  // namespace telemetry
