// The dedupe store through real Redis Sentinels (redis-server --sentinel,
// three of them, quorum 2) in front of a real primary and replica on
// loopback: it finds the primary, follows a failover after the primary is
// killed (what was committed before is still known after), and never
// answers from a server that is not the primary, even when the sentinels
// still name it.
#include <gtest/gtest.h>
#include <hiredis/hiredis.h>

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "storage/local/local_servers.h"
#include "storage/redis/redis_dedupe_store.h"

namespace telemetry {
namespace {

using local::PollUntil;
using local::RedisSentinel;
using local::RedisServer;

constexpr const char* kMaster = "tg-dedupe";

// One command to the Redis (or sentinel) on `port`; the reply's text (a
// string or status), its element count for an array (as "array:N"), or ""
// when unreachable.
std::string Command(int port, const std::vector<std::string>& args) {
  timeval tv{1, 0};
  redisContext* c = redisConnectWithTimeout("127.0.0.1", port, tv);
  if (c == nullptr || c->err) {
    if (c) redisFree(c);
    return "";
  }
  redisSetTimeout(c, tv);
  std::vector<const char*> argv;
  std::vector<size_t> lens;
  for (const auto& a : args) {
    argv.push_back(a.data());
    lens.push_back(a.size());
  }
  auto* r = static_cast<redisReply*>(
      redisCommandArgv(c, static_cast<int>(args.size()), argv.data(), lens.data()));
  std::string out;
  if (r != nullptr) {
    if (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS ||
        r->type == REDIS_REPLY_ERROR) {
      out.assign(r->str, r->len);
    } else if (r->type == REDIS_REPLY_INTEGER) {
      out = absl::StrCat(r->integer);
    } else if (r->type == REDIS_REPLY_ARRAY) {
      out = absl::StrCat("array:", r->elements);
      // get-master-addr-by-name: "array:2 <host> <port>"
      for (size_t i = 0; i < r->elements; ++i) {
        if (r->element[i]->type == REDIS_REPLY_STRING) {
          absl::StrAppend(&out, " ", absl::string_view(r->element[i]->str, r->element[i]->len));
        }
      }
    }
    freeReplyObject(r);
  }
  redisFree(c);
  return out;
}

std::string PrimaryNamedBy(int sentinel_port) {
  return Command(sentinel_port, {"SENTINEL", "get-master-addr-by-name", kMaster});
}

// A primary, its replica and three sentinels that know each other and the
// replica (a failover needs both).
class SentinelTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto primary = RedisServer::Start();
    ASSERT_TRUE(primary.ok()) << primary.status();
    primary_ = *std::move(primary);
    auto replica = RedisServer::Start({.replica_of_port = primary_->port()});
    ASSERT_TRUE(replica.ok()) << replica.status();
    replica_ = *std::move(replica);
    ASSERT_TRUE(PollUntil(
        [&] {
          return absl::StrContains(Command(replica_->port(), {"INFO", "replication"}),
                                   "master_link_status:up");
        },
        absl::Seconds(30)))
        << "the replica never synchronised";
    for (int i = 0; i < 3; ++i) {
      auto s = RedisSentinel::Start(kMaster, primary_->port(), 2);
      ASSERT_TRUE(s.ok()) << s.status();
      sentinels_.push_back(*std::move(s));
    }
    for (const auto& s : sentinels_) {
      ASSERT_TRUE(PollUntil(
          [&] {
            return Command(s->port(), {"SENTINEL", "replicas", kMaster}) == "array:1" &&
                   Command(s->port(), {"SENTINEL", "sentinels", kMaster}) == "array:2";
          },
          absl::Seconds(60)))
          << "sentinel " << s->port() << " did not find the replica and its peers";
    }
  }

  RedisDedupeOptions StoreOptions() const {
    RedisDedupeOptions o;
    for (const auto& s : sentinels_) o.sentinels.push_back({"127.0.0.1", s->port()});
    o.master_name = kMaster;
    o.reconnect_backoff = absl::Milliseconds(100);
    return o;
  }

  static DedupeStore::ClaimOutcome ClaimOutcome(RedisDedupeStore& store, const std::string& key,
                                                const std::string& token,
                                                int64_t* accepted = nullptr) {
    std::vector<DedupeStore::Claim> c = store.TryClaimAll({{key, token}});
    if (accepted != nullptr) *accepted = c[0].committed_accepted;
    return c[0].outcome;
  }

  std::unique_ptr<RedisServer> primary_, replica_;
  std::vector<std::unique_ptr<RedisSentinel>> sentinels_;
};

TEST_F(SentinelTest, FollowsAFailoverAndKeepsWhatWasCommitted) {
  RedisDedupeStore store(StoreOptions());
  ASSERT_EQ(ClaimOutcome(store, "batch-a", "t1"), DedupeStore::ClaimOutcome::kClaimed);
  ASSERT_TRUE(store.Complete({{"batch-a", "t1", /*committed=*/true, /*accepted=*/5}}));
  EXPECT_EQ(Command(primary_->port(), {"GET", "tg:idem:batch-a"}), "c:5");
  // On the replica too before the crash (replication is asynchronous).
  ASSERT_EQ(Command(primary_->port(), {"WAIT", "1", "5000"}), "1");

  ASSERT_TRUE(primary_->Kill().ok());
  // Until Sentinel promotes the replica, claims fail (the caller falls back
  // to the database's key); then they reach the new primary by themselves.
  ASSERT_TRUE(PollUntil(
      [&] { return ClaimOutcome(store, "batch-b", "t2") == DedupeStore::ClaimOutcome::kClaimed; },
      absl::Seconds(60)))
      << "the store never reached a promoted primary";
  EXPECT_TRUE(absl::StartsWith(Command(replica_->port(), {"ROLE"}), "array:3 master"));
  EXPECT_GT(store.errors(), 0);
  int64_t accepted = 0;
  EXPECT_EQ(ClaimOutcome(store, "batch-a", "t3", &accepted),
            DedupeStore::ClaimOutcome::kCommitted);
  EXPECT_EQ(accepted, 5);

  // The old primary comes back empty, as a primary, until the sentinels
  // turn it into a replica: a store connecting now must still use the new
  // primary (it would answer "claimed" for batch-a on the empty one), even
  // while a sentinel that has not heard of the failover yet (often the
  // first in the list, on a loaded machine) still names the old one.
  ASSERT_TRUE(primary_->Restart().ok());
  RedisDedupeStore fresh(StoreOptions());
  EXPECT_EQ(ClaimOutcome(fresh, "batch-a", "t4", &accepted),
            DedupeStore::ClaimOutcome::kCommitted);
  EXPECT_EQ(accepted, 5);
  // In the end every sentinel names the promoted replica.
  for (const auto& s : sentinels_) {
    EXPECT_TRUE(PollUntil(
        [&] {
          return absl::StrContains(PrimaryNamedBy(s->port()),
                                   absl::StrCat(" ", replica_->port()));
        },
        absl::Seconds(30)))
        << "sentinel " << s->port();
  }
}

TEST_F(SentinelTest, ASentinelThatMissedTheFailoverIsOutvoted) {
  RedisDedupeStore store(StoreOptions());
  ASSERT_EQ(ClaimOutcome(store, "batch-a", "t1"), DedupeStore::ClaimOutcome::kClaimed);
  ASSERT_TRUE(store.Complete({{"batch-a", "t1", /*committed=*/true, /*accepted=*/5}}));
  ASSERT_EQ(Command(primary_->port(), {"WAIT", "1", "5000"}), "1");
  // The first sentinel in the store's list is away while the other two
  // (a majority of three) fail over to the replica.
  ASSERT_TRUE(sentinels_[0]->Stop().ok());
  ASSERT_TRUE(primary_->Kill().ok());
  ASSERT_TRUE(PollUntil(
      [&] {
        return absl::StrContains(PrimaryNamedBy(sentinels_[1]->port()),
                                 absl::StrCat(" ", replica_->port()));
      },
      absl::Seconds(60)))
      << "the two sentinels did not promote the replica";
  // The old primary is back, empty and a primary; so is the first
  // sentinel, still naming it (until its peers tell it otherwise).
  ASSERT_TRUE(primary_->Restart().ok());
  ASSERT_TRUE(sentinels_[0]->Restart().ok());
  if (!absl::StrContains(PrimaryNamedBy(sentinels_[0]->port()),
                         absl::StrCat(" ", primary_->port()))) {
    // Its peers told it within milliseconds (their hellos come every 2 s):
    // nothing stale to outvote this time.
    GTEST_SKIP() << "the restarted sentinel learned of the failover before the check";
  }
  RedisDedupeStore fresh(StoreOptions());
  int64_t accepted = 0;
  EXPECT_EQ(ClaimOutcome(fresh, "batch-a", "t2", &accepted),
            DedupeStore::ClaimOutcome::kCommitted)
      << "the store used the empty old primary a stale sentinel named";
  EXPECT_EQ(accepted, 5);
}

TEST_F(SentinelTest, NeverUsesAServerThatIsNotThePrimaryEvenWhenTheSentinelsNameIt) {
  // The primary turns replica (of an unrelated Redis holding a committed
  // key) behind the sentinels' back: for a while they still name it. A
  // claim that only reads (every key already set) would succeed there and
  // answer from a replica; the store must refuse the server instead.
  auto elsewhere = RedisServer::Start();
  ASSERT_TRUE(elsewhere.ok()) << elsewhere.status();
  ASSERT_EQ(Command((*elsewhere)->port(), {"SET", "tg:idem:batch-x", "c:9"}), "OK");
  ASSERT_EQ(Command(primary_->port(),
                    {"REPLICAOF", "127.0.0.1", absl::StrCat((*elsewhere)->port())}),
            "OK");
  ASSERT_TRUE(PollUntil(
      [&] { return Command(primary_->port(), {"GET", "tg:idem:batch-x"}) == "c:9"; },
      absl::Seconds(30)))
      << "the demoted primary never synchronised";
  ASSERT_TRUE(absl::StrContains(PrimaryNamedBy(sentinels_[0]->port()),
                                absl::StrCat(" ", primary_->port())));
  RedisDedupeStore store(StoreOptions());
  EXPECT_EQ(ClaimOutcome(store, "batch-x", "t1"), DedupeStore::ClaimOutcome::kUnavailable);
  EXPECT_EQ(store.errors(), 1);  // the refused connect
}

TEST(SentinelListTest, ParsesHostsAndPortsAndRefusesBadEntries) {
  auto list = ParseSentinelList("127.0.0.1:26379, [::1]:26380,sentinel-3");
  ASSERT_TRUE(list.ok()) << list.status();
  ASSERT_EQ(list->size(), 3u);
  EXPECT_EQ((*list)[0].host, "127.0.0.1");
  EXPECT_EQ((*list)[0].port, 26379);
  EXPECT_EQ((*list)[1].host, "::1");
  EXPECT_EQ((*list)[1].port, 26380);
  EXPECT_EQ((*list)[2].host, "sentinel-3");
  EXPECT_EQ((*list)[2].port, 26379);  // Sentinel's default
  for (const char* bad : {"", " , ", "h:port", "h:0", "h:70000", "[::1:2", ":26379", "::1"}) {
    auto r = ParseSentinelList(bad);
    EXPECT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
}

}  // namespace
}  // namespace telemetry
