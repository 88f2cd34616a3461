// What the gateway's status page says about its device rate limit: where
// it holds, and when it has fallen back to this gateway alone.
#include "server/ingest/gateway_status.h"

#include <prometheus/registry.h>

#include "gtest/gtest.h"

namespace telemetry::ingest {
namespace {

class GatewayStatusTest : public ::testing::Test {
 protected:
  // The value and health of the field with element id `id`.
  StatusField Field(const GatewayStatusInputs& partial, const std::string& id) {
    GatewayStatusInputs in = partial;
    in.metrics = &metrics_;
    in.activity = &activity_;
    for (const StatusSection& s : GatewayStatus(in, absl::Now()).sections) {
      for (const StatusField& f : s.fields) {
        if (f.id == id) return f;
      }
    }
    ADD_FAILURE() << "no field " << id;
    return {};
  }

  prometheus::Registry registry_;
  IngestMetrics metrics_{registry_};
  DeviceActivity activity_;
};

TEST_F(GatewayStatusTest, TheDeviceRateSaysWhereItHolds) {
  GatewayStatusInputs in;
  EXPECT_EQ(Field(in, "device-rate").value, "none");
  in.device_rate = 1500;
  EXPECT_EQ(Field(in, "device-rate").value, "1,500 readings/s per device at each gateway");
  in.device_rate_cluster_wide = true;
  EXPECT_EQ(Field(in, "device-rate").value,
            "1,500 readings/s per device across the cluster (usage shared in Redis)");
  in.usage_reports_ok = true;
  EXPECT_EQ(Field(in, "device-rate").health, Health::kNeutral);
  in.usage_reports_ok = false;
  const StatusField fallen_back = Field(in, "device-rate");
  EXPECT_EQ(fallen_back.value,
            "1,500 readings/s per device at each gateway for now: usage cannot be reported "
            "to Redis");
  EXPECT_EQ(fallen_back.health, Health::kWarning);
  in.device_auth = false;
  EXPECT_EQ(Field(in, "device-rate").value, "none (device authentication is off)");
}

}  // namespace
}  // namespace telemetry::ingest
