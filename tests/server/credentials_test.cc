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

// Serves the tokens it holds now; its loads can be held at a gate.
class MutableSource : public CredentialSource {
 public:
  absl::StatusOr<Snapshot> Load() override {
    MutexLock lock(&mu_);
    ++loads_;
    mu_.Await(absl::Condition(&open_));
    Snapshot s;
    for (const std::string& t : tokens_) {
      s.devices_by_token[Sha256Hex(t)] =
          std::make_shared<DeviceIdentity>(DeviceIdentity{"dev-" + t, {"*"}});
    }
    return s;
  }
  void Issue(const std::string& token) {
    MutexLock lock(&mu_);
    tokens_.push_back(token);
  }
  void SetOpen(bool open) {
    MutexLock lock(&mu_);
    open_ = open;
  }
  int loads() {
    MutexLock lock(&mu_);
    return loads_;
  }

 private:
  Mutex mu_;
  std::vector<std::string> tokens_ ABSL_GUARDED_BY(mu_);
  bool open_ ABSL_GUARDED_BY(mu_) = true;
  int loads_ ABSL_GUARDED_BY(mu_) = 0;
};

// One asynchronous answer.
struct Answer {
  Notification done;
  CredentialStore::DeviceResult result = absl::UnknownError("not answered");
  absl::AnyInvocable<void(CredentialStore::DeviceResult) &&> Callback() {
    return [this](CredentialStore::DeviceResult r) {
      result = std::move(r);
      done.Notify();
    };
  }
  bool Wait() { return done.WaitForNotificationWithTimeout(absl::Seconds(10)); }
};

TEST(CredentialStoreTest, AsyncAuthenticationNeverWaitsForTheDatabase) {
  auto owned = std::make_unique<MutableSource>();
  MutableSource* source = owned.get();
  source->Issue("known");
  source->SetOpen(false);  // the database hangs
  CredentialStore store(std::move(owned), absl::Hours(1));
  store.StartBackgroundRefresh();
  // No snapshot yet: the call returns at once and is answered after the
  // first load, on the refresher's thread.
  Answer first;
  store.AuthenticateDeviceAsync("", "known", first.Callback());
  EXPECT_FALSE(first.done.HasBeenNotified());
  source->SetOpen(true);
  ASSERT_TRUE(first.Wait());
  ASSERT_TRUE(first.result.ok()) << first.result.status();
  EXPECT_EQ((*first.result)->device_id, "dev-known");

  // Known: answered before the call returns.
  Answer again;
  store.AuthenticateDeviceAsync("", "known", again.Callback());
  EXPECT_TRUE(again.done.HasBeenNotified());
  EXPECT_TRUE(again.result.ok());
}

TEST(CredentialStoreTest, UnknownTokensReloadAtMostOncePerGap) {
  auto owned = std::make_unique<MutableSource>();
  MutableSource* source = owned.get();
  CredentialStore store(std::move(owned), absl::Hours(1), /*lookup_reload_gap=*/absl::Hours(1));
  store.StartBackgroundRefresh();
  Answer warm;  // no snapshot yet: waits for the first load
  store.AuthenticateDeviceAsync("", "nobody", warm.Callback());
  ASSERT_TRUE(warm.Wait());
  EXPECT_TRUE(absl::IsUnauthenticated(warm.result.status()));
  // Within the gap an unknown token is refused at once, without a load (a
  // flood of bad tokens costs at most one query per gap).
  const int loads = source->loads();
  for (int i = 0; i < 50; ++i) {
    Answer flood;
    store.AuthenticateDeviceAsync("", "garbage-" + std::to_string(i), flood.Callback());
    ASSERT_TRUE(flood.done.HasBeenNotified());
    EXPECT_TRUE(absl::IsUnauthenticated(flood.result.status()));
  }
  EXPECT_EQ(source->loads(), loads);
}

TEST(CredentialStoreTest, ATokenIssuedAfterTheLastLoadWorksAtOnce) {
  auto owned = std::make_unique<MutableSource>();
  MutableSource* source = owned.get();
  CredentialStore store(std::move(owned), absl::Hours(1),
                        /*lookup_reload_gap=*/absl::Milliseconds(50));
  store.StartBackgroundRefresh();
  Answer warm;
  store.AuthenticateDeviceAsync("", "nobody", warm.Callback());
  ASSERT_TRUE(warm.Wait());
  // Issued now: with an hour's refresh only a lookup's reload can find it;
  // refused at most within the gap, then found.
  source->Issue("fresh");
  std::string device;
  for (absl::Time deadline = absl::Now() + absl::Seconds(10);
       device.empty() && absl::Now() < deadline;) {
    Answer fresh;
    store.AuthenticateDeviceAsync("", "fresh", fresh.Callback());
    ASSERT_TRUE(fresh.Wait());
    if (fresh.result.ok()) {
      device = (*fresh.result)->device_id;
    } else {
      EXPECT_TRUE(absl::IsUnauthenticated(fresh.result.status()));
      absl::SleepFor(absl::Milliseconds(10));  // polling with a deadline
    }
  }
  EXPECT_EQ(device, "dev-fresh");
}

TEST(CredentialStoreTest, StopAnswersLookupsWaitingForAHungLoad) {
  auto owned = std::make_unique<MutableSource>();
  MutableSource* source = owned.get();
  source->SetOpen(false);  // the first load hangs
  auto store = std::make_unique<CredentialStore>(std::move(owned), absl::Hours(1));
  store->StartBackgroundRefresh();
  Answer waiting;
  store->AuthenticateDeviceAsync("", "anyone", waiting.Callback());
  ASSERT_TRUE(
      [&] {
        for (absl::Time deadline = absl::Now() + absl::Seconds(10); absl::Now() < deadline;) {
          if (source->loads() == 1) return true;
          absl::SleepFor(absl::Milliseconds(1));
        }
        return false;
      }())
      << "the refresher is inside the load";
  EXPECT_FALSE(waiting.done.HasBeenNotified());
  store->Stop();  // a shutdown must not wait for the database
  ASSERT_TRUE(waiting.done.HasBeenNotified());
  EXPECT_TRUE(absl::IsUnavailable(waiting.result.status()));
  Answer late;  // after Stop: answered at once
  store->AuthenticateDeviceAsync("", "anyone", late.Callback());
  EXPECT_TRUE(late.done.HasBeenNotified());
  source->SetOpen(true);  // let the refresher finish so the store can be destroyed
  store.reset();
}

TEST(CredentialStoreTest, TheFirstAsyncLookupStartsTheRefresherInsteadOfLoading) {
  auto owned = std::make_unique<MutableSource>();
  MutableSource* source = owned.get();
  owned->Issue("known");
  source->SetOpen(false);  // a load would block the caller
  CredentialStore store(std::move(owned), absl::Hours(1));
  Answer a;
  store.AuthenticateDeviceAsync("", "known", a.Callback());  // returns: no load here
  EXPECT_FALSE(a.done.HasBeenNotified());
  source->SetOpen(true);
  ASSERT_TRUE(a.Wait());
  EXPECT_TRUE(a.result.ok()) << a.result.status();
}

TEST(CredentialStoreTest, NoCredentialAtAllIsRefusedAtOnce) {
  CredentialStore store(std::make_unique<MutableSource>(), absl::Hours(1));
  store.StartBackgroundRefresh();
  Answer a;
  store.AuthenticateDeviceAsync("", "", a.Callback());
  EXPECT_TRUE(a.done.HasBeenNotified());
  EXPECT_TRUE(absl::IsUnauthenticated(a.result.status()));
}

}  // namespace
}  // namespace telemetry
