// telemetryctl's read commands against the running read service, and an export sent back.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "server/query/drift_stats.h"
#include "server/query/query_service.h"
#include "server/query/sql_values.h"
#include "storage/local/http_get.h"
#include "storage/pg/connection.h"
#include "tests/e2e/read_service_fixture.h"

namespace telemetry::testing {
namespace {

TEST_F(ReadServiceTest, TelemetryctlReadCommandsAndExportRoundTrip) {
  std::string read = absl::StrCat("--read_target=127.0.0.1:", reader_->port());
  int rc;
  std::string latest = RunCli(absl::StrCat("latest --sensor=s0 --limit=3 ", read), &rc);
  EXPECT_EQ(rc, 0) << latest;
  EXPECT_EQ(std::count(latest.begin(), latest.end(), '\n'), 4) << latest;  // header + 3
  std::string refresh = RunCli(absl::StrCat("refresh --all ", read), &rc);
  EXPECT_EQ(rc, 0) << refresh;
  EXPECT_NE(refresh.find("refreshed "), std::string::npos) << refresh;
  std::string summary = RunCli(
      absl::StrCat("summary --sensors=s0,s1 --start=-6h --end=now ", read), &rc);
  EXPECT_EQ(rc, 0) << summary;
  EXPECT_NE(summary.find(",360,"), std::string::npos) << summary;
  EXPECT_NE(summary.find(",aggregate"), std::string::npos) << summary;
  std::string jobs = RunCli(absl::StrCat("jobs ", read), &rc);
  EXPECT_EQ(rc, 0) << jobs;
  EXPECT_NE(jobs.find("storage mode: native"), std::string::npos) << jobs;
  std::string retention = RunCli(absl::StrCat("retention ", read), &rc);
  EXPECT_EQ(rc, 0) << retention;
  EXPECT_NE(retention.find("dropped"), std::string::npos) << retention;
  std::string drift = RunCli(
      absl::StrCat("drift --sensor=s1 --reference_start=-6h --reference_end=-3h "
                   "--current_start=-3h --current_end=now ", read),
      &rc);
  EXPECT_EQ(rc, 0) << drift;
  EXPECT_NE(drift.find("ks_statistic"), std::string::npos) << drift;

  // Export one sensor's range and send it back: every reading is a duplicate.
  std::string csv = absl::StrCat(::testing::TempDir(), "/export.csv");
  std::string exported = RunCli(
      absl::StrCat("range --sensor=s2 --start=-6h --end=now --file=", csv, " ", read), &rc);
  EXPECT_EQ(rc, 0) << exported;
  EXPECT_NE(exported.find("exported 1800 readings"), std::string::npos) << exported;
  std::string sent = RunCli(
      absl::StrCat("send --file=", csv, " --target=127.0.0.1:", gateway_->port()), &rc);
  EXPECT_EQ(rc, 0) << sent;
  EXPECT_NE(sent.find("sent 1800 readings: 0 accepted, 1800 duplicates"), std::string::npos)
      << sent;
}

}  // namespace
}  // namespace telemetry::testing
