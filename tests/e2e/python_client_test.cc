// The gateway against a client in another language: tests/e2e/outside_client.py
// (Debian's python3-grpcio, stubs generated from our .proto at build time)
// streams with no window at all, cancels at random moments and resends,
// and half-closes with everything in flight. Afterwards the database holds
// every reading exactly once with the values sent, and no stream is left
// open. The gateway runs in this process so that the sanitizer builds see
// inside it.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "server/ingest/ingest_server.h"
#include "tests/support/exact_batches.h"
#include "tests/support/loopback_gateway.h"
#include "tests/support/servers_environment.h"

namespace telemetry {
namespace {

using telemetry::testing::MigratedDatabase;
using telemetry::testing::QueryScalar;
using telemetry::testing::Redis;

class PythonClientTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    db_ = MigratedDatabase();
    ingest::IngestServerOptions o = telemetry::testing::LoopbackGateway(db_);
    auto s = ingest::IngestServer::Start(o);
    ASSERT_TRUE(s.ok()) << s.status();
    server_ = *std::move(s);
  }
  void TearDown() override {
    if (server_) server_->Shutdown(absl::Seconds(5));
  }

  std::string db_;
  std::unique_ptr<ingest::IngestServer> server_;
};

TEST_P(PythonClientTest, EveryReadingStoredExactlyOnceWithTheValuesSent) {
  constexpr int kBatches = 300;
  const telemetry::testing::ExactBatches batches{
      .key_prefix = absl::StrCat("py-", GetParam(), "-", absl::ToUnixMicros(absl::Now()), "-"),
      .sensor_prefix = "py-",
      .base_ms = telemetry::testing::FreshBaseMs(),
      .per_batch = 20};
  const std::string log = ::testing::TempDir() + "outside_client_" + GetParam() + ".log";
  auto rc = telemetry::local::RunCommand(
      {"/usr/bin/env", "PYTHONPATH=" PYTHON_GEN_DIR, "/usr/bin/python3", OUTSIDE_CLIENT_PY,
       absl::StrCat("--target=127.0.0.1:", server_->port()), "--mode=" + GetParam(),
       "--prefix=" + batches.key_prefix, absl::StrCat("--base_ms=", batches.base_ms),
       absl::StrCat("--batches=", kBatches), "--per_batch=20"},
      "", log);
  std::ifstream in(log);
  std::stringstream out;
  out << in.rdbuf();
  ASSERT_TRUE(rc.ok()) << rc.status();
  EXPECT_EQ(*rc, 0) << out.str();
  EXPECT_NE(out.str().find(absl::StrCat("acked=", kBatches, " refused=0")), std::string::npos)
      << out.str();
  telemetry::testing::ExpectExactlyOnceAndNoStreamOpen(db_, batches, kBatches,
                                                       server_->metrics_port());
}

INSTANTIATE_TEST_SUITE_P(Modes, PythonClientTest,
                         ::testing::Values("deep", "resend", "halfclose"));

}  // namespace
}  // namespace telemetry
