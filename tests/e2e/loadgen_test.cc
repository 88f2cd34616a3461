// loadgen's own verification, at a small scale, as a correctness test: a
// fleet with deliberate re-sends and invalid readings through the real
// gateway must end with exactly the distinct valid readings stored.
#include <gtest/gtest.h>

#include <fstream>

#include "absl/strings/str_cat.h"
#include "server/ingest/ingest_server.h"
#include "server/query/read_server.h"
#include "tests/support/loopback_gateway.h"
#include "tests/support/loopback_read_service.h"
#include "tests/support/servers_environment.h"

namespace telemetry {
namespace {

using telemetry::testing::MigratedDatabase;
using telemetry::testing::Redis;

TEST(LoadgenTest, FleetWithRetriesInvalidReadingsAndReadersIsStoredExactly) {
  std::string conninfo = MigratedDatabase();
  auto server = ingest::IngestServer::Start(telemetry::testing::LoopbackGateway(conninfo));
  ASSERT_TRUE(server.ok()) << server.status();
  auto reader = query::ReadServer::Start(telemetry::testing::LoopbackReadService(conninfo));
  ASSERT_TRUE(reader.ok()) << reader.status();

  std::string out = absl::StrCat(::testing::TempDir(), "/loadgen.json");
  std::string cmd = absl::StrCat(
      LOADGEN_PATH, " --plaintext --target=127.0.0.1:", (*server)->port(),
      " --devices=6 --sensors=7 --batch=250 --max_batches=40 --duration=60s",
      " --retry_fraction=0.1 --invalid_fraction=0.02 --seed=7 --quiet --json",
      " --read_concurrency=2 --read_target=127.0.0.1:", (*reader)->port(),
      " --verify_database_url='", conninfo, "' > ", out);
  int rc = std::system(cmd.c_str());
  std::ifstream in(out);
  std::string text((std::istreambuf_iterator<char>(in)), {});
  EXPECT_EQ(rc, 0) << text;
  EXPECT_NE(text.find("\"ok\":true"), std::string::npos) << text;
  EXPECT_NE(text.find("\"sent_readings\":60000"), std::string::npos) << text;
  EXPECT_EQ(text.find("\"resent_batches\":0,"), std::string::npos)
      << "the run should include deliberate re-sends: " << text;
  EXPECT_NE(text.find("\"read_latest_qps\":"), std::string::npos) << text;
  (*reader)->Shutdown(absl::Seconds(2));
  (*server)->Shutdown(absl::Seconds(5));
}

std::string RunCapturingStderr(const std::string& cmd, int* rc) {
  const std::string err = absl::StrCat(::testing::TempDir(), "/loadgen.err");
  const int status = std::system(absl::StrCat(cmd, " 2> ", err, " > /dev/null").c_str());
  *rc = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  std::ifstream in(err);
  return std::string((std::istreambuf_iterator<char>(in)), {});
}

TEST(LoadgenTest, AnUnreachableGatewayEndsTheRunAtOnceSayingWhy) {
  // Port 1 on loopback: nothing listens there. --duration and
  // --connect_timeout far beyond the test's own timeout: only failing on
  // the refusal lets the run end.
  int rc;
  std::string err = RunCapturingStderr(
      absl::StrCat(LOADGEN_PATH, " --plaintext --target=127.0.0.1:1 --duration=1h "
                                 "--connect_timeout=1h --quiet"),
      &rc);
  EXPECT_EQ(rc, 1) << err;
  EXPECT_NE(err.find("cannot reach 127.0.0.1:1"), std::string::npos) << err;
  EXPECT_NE(err.find("Connection refused"), std::string::npos) << err;
}

TEST(LoadgenTest, ReadErrorsAreCountedAndNamed) {
  std::string conninfo = MigratedDatabase();
  auto server = ingest::IngestServer::Start(telemetry::testing::LoopbackGateway(conninfo));
  ASSERT_TRUE(server.ok()) << server.status();
  query::ReadServerOptions ro = telemetry::testing::LoopbackReadService(conninfo);
  ro.require_api_auth = true;  // and loadgen is given no API token
  auto reader = query::ReadServer::Start(ro);
  ASSERT_TRUE(reader.ok()) << reader.status();
  int rc;
  std::string err = RunCapturingStderr(
      absl::StrCat("", LOADGEN_PATH,
                   " --plaintext --target=127.0.0.1:", (*server)->port(),
                   " --devices=1 --sensors=2 --batch=10 --max_batches=20 --duration=60s",
                   " --read_concurrency=1 --read_target=127.0.0.1:", (*reader)->port()),
      &rc);
  EXPECT_NE(rc, 0) << err;
  EXPECT_NE(err.find("read latest failed: UNAUTHENTICATED"), std::string::npos) << err;
  (*reader)->Shutdown(absl::Seconds(2));
  (*server)->Shutdown(absl::Seconds(5));
}

}  // namespace
}  // namespace telemetry
