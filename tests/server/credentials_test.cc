// The pure parts of caller authentication: token digests, token issue,
// which sensors a device pattern allows, and the store's reload behaviour
// over a fake source. (The store and both services are exercised end to end
// in e2e/security_test.cc.)
#include "server/common/credentials.h"

#include <gtest/gtest.h>

#include <thread>

#include "absl/container/flat_hash_set.h"
#include "absl/time/clock.h"
#include "storage/util/mutex.h"

namespace telemetry {
namespace {

TEST(CredentialsTest, Sha256HexMatchesTheStandardVectors) {
  EXPECT_EQ(Sha256Hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(Sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(CredentialsTest, TheBearerSchemeIsCaseInsensitive) {
  EXPECT_EQ(BearerTokenFromHeader("Bearer abc"), "abc");
  EXPECT_EQ(BearerTokenFromHeader("bearer abc"), "abc");
  EXPECT_EQ(BearerTokenFromHeader("BEARER  abc"), "abc");
  EXPECT_EQ(BearerTokenFromHeader("Basic abc"), "");
  EXPECT_EQ(BearerTokenFromHeader("Bearerabc"), "");
  EXPECT_EQ(BearerTokenFromHeader("Bearer"), "");
  EXPECT_EQ(BearerTokenFromHeader(""), "");
}

TEST(CredentialsTest, NewBearerTokensAre256BitsAndDistinct) {
  absl::flat_hash_set<std::string> seen;
  for (int i = 0; i < 100; ++i) {
    auto t = NewBearerToken();
    ASSERT_TRUE(t.ok());
    EXPECT_EQ(t->size(), 43u);  // 32 bytes in unpadded base64url
    EXPECT_EQ(t->find_first_not_of(
                  "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"),
              std::string::npos);
    EXPECT_TRUE(seen.insert(*t).second);
  }
}

TEST(CredentialsTest, PatternsAreExactIdsOrPrefixesEndingInStar) {
  DeviceIdentity d{"dev", {"pump-1", "valve-*"}};
  EXPECT_TRUE(d.MayWrite("pump-1"));
  EXPECT_FALSE(d.MayWrite("pump-10"));  // exact, not a prefix
  EXPECT_FALSE(d.MayWrite("pump-"));
  EXPECT_TRUE(d.MayWrite("valve-"));
  EXPECT_TRUE(d.MayWrite("valve-7/a"));
  EXPECT_FALSE(d.MayWrite("valv"));
  EXPECT_FALSE(d.MayWrite(""));
  EXPECT_TRUE((DeviceIdentity{"all", {"*"}}.MayWrite("anything")));
  EXPECT_FALSE((DeviceIdentity{"none", {}}.MayWrite("anything")));
}

// A source whose loads after the first block until released.
class GatedSource : public CredentialSource {
 public:
  absl::StatusOr<Snapshot> Load() override {
    MutexLock lock(&mu_);
    ++loads_;
    if (loads_ > 1) mu_.Await(absl::Condition(&released_));
    Snapshot s;
    s.devices_by_id["generation-" + std::to_string(loads_)] =
        std::make_shared<DeviceIdentity>(DeviceIdentity{"d", {"*"}});
    return s;
  }
  void Release() {
    MutexLock lock(&mu_);
    released_ = true;
  }
  int loads() {
    MutexLock lock(&mu_);
    return loads_;
  }

 private:
  Mutex mu_;
  int loads_ = 0;
  bool released_ = false;
};

TEST(CredentialStoreTest, ASlowReloadDoesNotHoldUpOtherCalls) {
  auto owned = std::make_unique<GatedSource>();
  GatedSource* source = owned.get();
  // Refresh zero: every call wants a reload.
  CredentialStore store(std::move(owned), absl::ZeroDuration());
  auto first = store.Current(false);
  ASSERT_TRUE(first.ok());
  EXPECT_TRUE((*first)->devices_by_id.contains("generation-1"));

  std::thread loader([&] {
    auto second = store.Current(false);  // blocks in the gated load
    ASSERT_TRUE(second.ok());
    EXPECT_TRUE((*second)->devices_by_id.contains("generation-2"));
  });
  // Wait (bounded) until the loader is inside the source.
  for (absl::Time deadline = absl::Now() + absl::Seconds(10);
       source->loads() < 2 && absl::Now() < deadline;) {
    absl::SleepFor(absl::Milliseconds(1));
  }
  ASSERT_EQ(source->loads(), 2);
  // Meanwhile another call gets the previous snapshot at once.
  auto meanwhile = store.Current(true);
  ASSERT_TRUE(meanwhile.ok());
  EXPECT_TRUE((*meanwhile)->devices_by_id.contains("generation-1"));
  EXPECT_EQ(source->loads(), 2);
  source->Release();
  loader.join();
}

// Counts its loads; each snapshot names its load.
class CountingSource : public CredentialSource {
 public:
  absl::StatusOr<Snapshot> Load() override {
    MutexLock lock(&mu_);
    ++loads_;
    Snapshot s;
    s.devices_by_id["load-" + std::to_string(loads_)] =
        std::make_shared<DeviceIdentity>(DeviceIdentity{"d", {"*"}});
    return s;
  }
  int loads() {
    MutexLock lock(&mu_);
    return loads_;
  }

 private:
  Mutex mu_;
  int loads_ ABSL_GUARDED_BY(mu_) = 0;
};

TEST(CredentialStoreTest, TheBackgroundRefreshReloadsWithNoCallAtAll) {
  auto owned = std::make_unique<CountingSource>();
  CountingSource* source = owned.get();
  CredentialStore store(std::move(owned), absl::Milliseconds(100));
  store.StartBackgroundRefresh();
  // No call asks: the snapshot is still reloaded (what lets open streams
  // see a revocation), and a call finds it fresh without loading itself.
  for (absl::Time deadline = absl::Now() + absl::Seconds(10);
       source->loads() < 3 && absl::Now() < deadline;) {
    absl::SleepFor(absl::Milliseconds(5));  // polling with a deadline
  }
  EXPECT_GE(source->loads(), 3);
  auto snap = store.Current(false);
  ASSERT_TRUE(snap.ok());
  EXPECT_FALSE((*snap)->devices_by_id.contains("load-1"));
}

}  // namespace
}  // namespace telemetry
