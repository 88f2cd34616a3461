// Several gateway addresses in one target: what OpenChannel accepts and
// what it refuses, before gRPC sees it.
#include "client/channel.h"

#include <gtest/gtest.h>

namespace telemetry::client {
namespace {

TEST(ChannelTargetTest, OneAddressOrNameIsUnchanged) {
  EXPECT_EQ(*ChannelTarget("127.0.0.1:50051"), "127.0.0.1:50051");
  EXPECT_EQ(*ChannelTarget("gateways.example:50051"), "gateways.example:50051");
  EXPECT_EQ(*ChannelTarget("dns:///gateways.example:50051"), "dns:///gateways.example:50051");
  EXPECT_EQ(*ChannelTarget(" 127.0.0.1:50051 "), "127.0.0.1:50051");
  // A URI list is gRPC's own syntax, passed through.
  EXPECT_EQ(*ChannelTarget("ipv4:127.0.0.1:1,127.0.0.1:2"), "ipv4:127.0.0.1:1,127.0.0.1:2");
}

TEST(ChannelTargetTest, AListOfIpAddressesBecomesOneUri) {
  EXPECT_EQ(*ChannelTarget("127.0.0.1:50051,127.0.0.2:50061"),
            "ipv4:127.0.0.1:50051,127.0.0.2:50061");
  EXPECT_EQ(*ChannelTarget("127.0.0.1:1, 127.0.0.1:2,"), "ipv4:127.0.0.1:1,127.0.0.1:2");
  EXPECT_EQ(*ChannelTarget("[::1]:50051,[::1]:50061"), "ipv6:[::1]:50051,[::1]:50061");
}

TEST(ChannelTargetTest, RefusesWhatOneUriCannotHold) {
  for (const char* bad : {"", " , ", "127.0.0.1:1,gateway:2", "127.0.0.1:1,127.0.0.1",
                          "127.0.0.1:1,127.0.0.1:0", "127.0.0.1:1,127.0.0.1:70000",
                          "127.0.0.1:1,[::1]:2", "127.0.0.1:1,::1:2"}) {
    absl::StatusOr<std::string> target = ChannelTarget(bad);
    EXPECT_EQ(target.status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
}

}  // namespace
}  // namespace telemetry::client
