// The Prometheus side of deploy/observability, against the real services:
// both /metrics pages pass `promtool check metrics` (when promtool is
// installed; test.sh installs Debian's prometheus package for it), and every
// metric the alert rules and the Grafana dashboard use is one the services
// actually export, so a renamed metric breaks this test, not a dashboard in
// production.
#include <gtest/gtest.h>

#include <grpcpp/grpcpp.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "server/ingest/ingest_server.h"
#include "server/query/read_server.h"
#include "telemetry/v1/ingest.grpc.pb.h"
#include "telemetry/v1/query.grpc.pb.h"
#include "storage/local/http_get.h"
#include "tests/support/loopback_gateway.h"
#include "tests/support/servers_environment.h"
#include "storage/local/local_servers.h"

namespace telemetry {
namespace {

using telemetry::testing::MigratedDatabase;
using telemetry::local::PollUntil;
using telemetry::testing::Redis;
namespace v1 = telemetry::v1;
namespace fs = std::filesystem;

std::string ReadFile(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Metric family names in a text exposition ("# TYPE <name> <type>").
std::set<std::string> Families(const std::string& exposition) {
  std::set<std::string> names;
  std::istringstream in(exposition);
  std::string line;
  while (std::getline(in, line)) {
    if (absl::StartsWith(line, "# TYPE ")) {
      std::istringstream fields(line.substr(7));
      std::string name;
      fields >> name;
      names.insert(name);
    }
  }
  return names;
}

// Runs `command`; its exit code and combined output.
std::pair<int, std::string> RunShell(const std::string& command) {
  std::string output;
  FILE* p = popen((command + " 2>&1").c_str(), "r");
  if (p == nullptr) return {-1, ""};
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) output.append(buf, n);
  int rc = pclose(p);
  return {WIFEXITED(rc) ? WEXITSTATUS(rc) : -1, output};
}

TEST(MetricsExpositionTest, BothEndpointsPassPromtoolAndCoverEveryMetricTheDeployFilesUse) {
  const std::string db = MigratedDatabase();
  auto gateway = ingest::IngestServer::Start(telemetry::testing::LoopbackGateway(db));
  ASSERT_TRUE(gateway.ok()) << gateway.status();
  query::ReadServerOptions ro;
  ro.listen_address = "127.0.0.1:0";
  ro.metrics_address = "127.0.0.1:0";
  ro.database_url = db;
  ro.transport.plaintext = true;  // loopback
  ro.require_api_auth = false;
  auto reader = query::ReadServer::Start(ro);
  ASSERT_TRUE(reader.ok()) << reader.status();

  // Traffic, so that labelled series (outcomes, methods, jobs) exist.
  auto ingest = v1::IngestService::NewStub(grpc::CreateChannel(
      absl::StrCat("127.0.0.1:", (*gateway)->port()), grpc::InsecureChannelCredentials()));
  v1::ReadingBatch batch;
  batch.set_idempotency_key("metrics-1");
  v1::Reading* r = batch.add_readings();
  r->set_sensor_id("m-1");
  r->mutable_timestamp()->set_seconds(absl::ToUnixSeconds(absl::Now()) - 60);
  r->set_value(1);
  for (int i = 0; i < 2; ++i) {  // committed, then duplicate
    grpc::ClientContext ctx;
    v1::BatchAck ack;
    ASSERT_TRUE(ingest->WriteBatch(&ctx, batch, &ack).ok());
  }
  auto query = v1::QueryService::NewStub(grpc::CreateChannel(
      absl::StrCat("127.0.0.1:", (*reader)->port()), grpc::InsecureChannelCredentials()));
  {
    grpc::ClientContext ctx;
    v1::LatestReadingsRequest req;
    req.set_sensor_id("m-1");
    req.set_limit(5);
    v1::LatestReadingsResponse resp;
    ASSERT_TRUE(query->LatestReadings(&ctx, req, &resp).ok());
    grpc::ClientContext bad;
    req.clear_sensor_id();
    EXPECT_FALSE(query->LatestReadings(&bad, req, &resp).ok());  // an error series
  }
  std::string gateway_page, reader_page;
  ASSERT_TRUE(PollUntil([&] {
    auto g = telemetry::local::HttpGet((*gateway)->metrics_port(), "/metrics");
    auto q = telemetry::local::HttpGet((*reader)->metrics_port(), "/metrics");
    if (!g.ok() || !q.ok()) return false;
    gateway_page = *g;
    reader_page = *q;
    // The lifecycle loop has run its first round (jobs and storage stats).
    return absl::StrContains(reader_page, "telemetry_job_runs_total{") &&
           absl::StrContains(reader_page, "telemetry_storage_bytes ");
  }));

  // Both pages carry the standard process metrics and which build serves.
  for (const auto& [page, service] : {std::pair{&gateway_page, "ingest-gateway"},
                                      std::pair{&reader_page, "read-service"}}) {
    using telemetry::local::MetricValue;
    EXPECT_GT(MetricValue(*page, "process_resident_memory_bytes"), 1 << 20) << service;
    EXPECT_GT(MetricValue(*page, "process_open_fds"), 3) << service;
    EXPECT_GE(MetricValue(*page, "process_max_fds"), MetricValue(*page, "process_open_fds"));
    EXPECT_GT(MetricValue(*page, "process_threads"), 1) << service;
    EXPECT_GE(MetricValue(*page, "process_cpu_seconds_total"), 0) << service;
    const double start = MetricValue(*page, "process_start_time_seconds");
    const double now = static_cast<double>(absl::ToUnixMicros(absl::Now())) / 1e6;
    EXPECT_GT(start, now - 3600) << service;  // this process: started within the hour
    EXPECT_LE(start, now + 1) << service;
    EXPECT_TRUE(std::regex_search(
        *page, std::regex(absl::StrCat("telemetry_build_info\\{service=\"", service,
                                       "\",version=\"[0-9]+\\.[0-9]+\\.[0-9]+\\+[^\"]+\"\\} 1"))))
        << service;
  }

  // promtool's linter over both pages.
  const fs::path dir = fs::path(::testing::TempDir()) / absl::StrCat("metrics-", getpid());
  fs::create_directories(dir);
  std::ofstream(dir / "gateway.prom") << gateway_page;
  std::ofstream(dir / "reader.prom") << reader_page;
  if (fs::exists("/usr/bin/promtool")) {
    for (const char* page : {"gateway.prom", "reader.prom"}) {
      auto [rc, out] = RunShell(absl::StrCat("/usr/bin/promtool check metrics < ", (dir / page).string()));
      EXPECT_EQ(rc, 0) << page << ":\n" << out;
    }
  } else {
    std::printf("promtool not installed: lint skipped (test.sh installs it)\n");
  }

  // Every telemetry_* metric in the alert rules and the dashboard exists.
  std::set<std::string> exported = Families(gateway_page);
  for (const std::string& f : Families(reader_page)) exported.insert(f);
  const fs::path observability = fs::path(TELEMETRY_SOURCE_DIR) / "deploy/observability";
  int checked = 0;
  for (const char* file : {"alerts.yml", "grafana/telemetry-dashboard.json"}) {
    const std::string text = ReadFile(observability / file);
    ASSERT_FALSE(text.empty()) << file;
    static const std::regex kMetric("telemetry_[a-z_]+");
    for (auto it = std::sregex_iterator(text.begin(), text.end(), kMetric);
         it != std::sregex_iterator(); ++it) {
      std::string name = it->str();
      for (const char* suffix : {"_bucket", "_sum", "_count"}) {
        if (absl::EndsWith(name, suffix) && !exported.count(name)) {
          name = name.substr(0, name.size() - std::string(suffix).size());
        }
      }
      // Series that exist only while there is something to report.
      static const std::set<std::string> kOnlyWithData = {
          "telemetry_compression_ratio", "telemetry_aggregate_staleness_seconds",
          "telemetry_aggregate_watermark_timestamp_seconds",
          "telemetry_read_replica_lag_seconds"};
      EXPECT_TRUE(exported.count(name) || kOnlyWithData.count(name))
          << file << " uses " << it->str() << ", which neither service exports";
      ++checked;
    }
  }
  EXPECT_GT(checked, 20);
  (*reader)->Shutdown(absl::Seconds(5));
  (*gateway)->Shutdown(absl::Seconds(5));
}

}  // namespace
}  // namespace telemetry
