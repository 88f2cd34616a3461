// The pure parts of caller authentication: token digests, token issue, and
// which sensors a device pattern allows. (The store and both services are
// exercised end to end in e2e/security_test.cc.)
#include "server/common/credentials.h"

#include <gtest/gtest.h>

#include "absl/container/flat_hash_set.h"

namespace telemetry {
namespace {

TEST(CredentialsTest, Sha256HexMatchesTheStandardVectors) {
  EXPECT_EQ(Sha256Hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(Sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
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

}  // namespace
}  // namespace telemetry
