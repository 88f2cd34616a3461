// The Redis dedupe store against a real redis-server.
#include "storage/redis/redis_dedupe_store.h"

#include <gtest/gtest.h>

#include "tests/support/servers_environment.h"

namespace telemetry {
namespace {

using Outcome = DedupeStore::ClaimOutcome;
using telemetry::testing::Redis;

RedisDedupeOptions Options(const std::string& prefix) {
  auto url = ParseRedisUrl(Redis().Url());
  EXPECT_TRUE(url.ok());
  RedisDedupeOptions o(*url);
  o.key_prefix = prefix;
  o.reconnect_backoff = absl::ZeroDuration();
  return o;
}

TEST(RedisDedupeStoreTest, AGroupIsClaimedInOneCallWithEachKeyAnsweredForItself) {
  RedisDedupeStore store(Options("tg:"));
  ASSERT_EQ(store.TryClaim("done", "a").outcome, Outcome::kClaimed);
  ASSERT_TRUE(store.Complete({{"done", "a", true, 7}}));
  ASSERT_EQ(store.TryClaim("busy", "other").outcome, Outcome::kClaimed);
  std::vector<DedupeStore::Claim> claims =
      store.TryClaimAll({{"free", "g"}, {"done", "g"}, {"busy", "g"}, {"free2", "g2"}});
  ASSERT_EQ(claims.size(), 4u);
  EXPECT_EQ(claims[0].outcome, Outcome::kClaimed);
  EXPECT_EQ(claims[1].outcome, Outcome::kCommitted);
  EXPECT_EQ(claims[1].committed_accepted, 7u);
  EXPECT_EQ(claims[2].outcome, Outcome::kInFlight);
  EXPECT_EQ(claims[3].outcome, Outcome::kClaimed);
  // Each free key now holds its own token: another delivery finds it busy,
  // the same one re-claims it.
  EXPECT_EQ(store.TryClaim("free", "x").outcome, Outcome::kInFlight);
  EXPECT_EQ(store.TryClaim("free2", "g2").outcome, Outcome::kClaimed);
}

TEST(RedisDedupeStoreTest, ClaimCommitAndDuplicate) {
  RedisDedupeStore store(Options("t1:"));
  EXPECT_EQ(store.TryClaim("k", "tok1").outcome, Outcome::kClaimed);
  EXPECT_EQ(store.TryClaim("k", "tok2").outcome, Outcome::kInFlight);
  EXPECT_EQ(store.TryClaim("k", "tok1").outcome, Outcome::kClaimed)
      << "the holder's own token re-claims";
  ASSERT_TRUE(store.Complete({{"k", "tok1", true, 42}}));
  auto c = store.TryClaim("k", "tok3");
  EXPECT_EQ(c.outcome, Outcome::kCommitted);
  EXPECT_EQ(c.committed_accepted, 42u);
  EXPECT_TRUE(store.healthy());
}

TEST(RedisDedupeStoreTest, ReleaseOnlyByTheHolder) {
  RedisDedupeStore store(Options("t2:"));
  ASSERT_EQ(store.TryClaim("k", "owner").outcome, Outcome::kClaimed);
  ASSERT_TRUE(store.Complete({{"k", "intruder", false, 0}}));
  EXPECT_EQ(store.TryClaim("k", "other").outcome, Outcome::kInFlight);
  ASSERT_TRUE(store.Complete({{"k", "owner", false, 0}}));
  EXPECT_EQ(store.TryClaim("k", "other").outcome, Outcome::kClaimed);
}

TEST(RedisDedupeStoreTest, InFlightClaimsExpire) {
  RedisDedupeOptions o = Options("t3:");
  o.in_flight_ttl = absl::Milliseconds(50);
  RedisDedupeStore store(o);
  ASSERT_EQ(store.TryClaim("k", "a").outcome, Outcome::kClaimed);
  EXPECT_TRUE(telemetry::local::PollUntil(
      [&] { return store.TryClaim("k", "b").outcome == Outcome::kClaimed; },
      absl::Seconds(5)));
}

TEST(RedisDedupeStoreTest, UnavailableWhileRedisIsDownThenRecovers) {
  RedisDedupeStore store(Options("t4:"));
  ASSERT_EQ(store.TryClaim("a", "t").outcome, Outcome::kClaimed);
  ASSERT_TRUE(Redis().Stop().ok());
  EXPECT_EQ(store.TryClaim("b", "t").outcome, Outcome::kUnavailable);
  EXPECT_FALSE(store.Complete({{"a", "t", true, 1}}));
  EXPECT_FALSE(store.healthy());
  EXPECT_GE(store.errors(), 2);
  ASSERT_TRUE(Redis().Restart().ok());
  EXPECT_EQ(store.TryClaim("b", "t").outcome, Outcome::kClaimed);
  EXPECT_TRUE(store.healthy());
}

TEST(RedisUrlTest, ParsesHostPortPasswordAndDb) {
  auto o = ParseRedisUrl("redis://:s3cret@[::1]:6380/2");
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(o->host, "::1");
  EXPECT_EQ(o->port, 6380);
  EXPECT_EQ(o->password, "s3cret");
  EXPECT_EQ(o->db, 2);
  EXPECT_FALSE(ParseRedisUrl("http://x").ok());
  EXPECT_FALSE(ParseRedisUrl("redis://h:port").ok());
}

}  // namespace
}  // namespace telemetry
