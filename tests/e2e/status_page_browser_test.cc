// Both status pages in a real browser (Debian's headless Chromium), in both
// storage modes (TimescaleDB wherever the extension is installed): an
// operator issues a device credential and the device sends a CSV with
// telemetryctl, then the gateway's page must show that device and exactly
// what it sent, live (a second send moves the numbers), and the read
// service's page its jobs, the aggregate's watermark and the chunks. A
// screenshot of each page is kept under the build's artifacts/ directory
// (test.sh lists them at the end of its output).
//
// Without Chromium the test skips, unless TELEMETRY_REQUIRE_BROWSER is set
// (test.sh sets it: CI must not pass by skipping).
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "server/common/build_version.h"
#include "server/ingest/ingest_server.h"
#include "server/query/read_server.h"
#include "storage/local/local_servers.h"
#include "tests/support/loopback_gateway.h"
#include "tests/support/loopback_read_service.h"
#include "tests/support/servers_environment.h"

namespace telemetry {
namespace {

using telemetry::testing::MigratedDatabase;
namespace fs = std::filesystem;

constexpr const char* kChromium = "/usr/bin/chromium";

// `command`'s standard output (its stderr is dropped: Chromium logs D-Bus
// noise there), and its exit code in `rc`.
std::string RunShell(const std::string& command, int* rc) {
  std::string out;
  FILE* p = popen(command.c_str(), "r");
  if (p == nullptr) {
    *rc = -1;
    return out;
  }
  char buf[8192];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  const int status = pclose(p);
  *rc = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return out;
}

// Headless Chromium, as root needs it (no sandbox), with a profile of its
// own under the test's directory; bounded by timeout(1).
class Browser {
 public:
  explicit Browser(std::string dir) : dir_(std::move(dir)) {}

  // The document after load, as Chromium parsed it.
  std::string Dom(const std::string& url) {
    int rc = 0;
    std::string dom = RunShell(absl::StrCat(Base(), " --dump-dom '", url, "' 2>/dev/null"), &rc);
    EXPECT_EQ(rc, 0) << "chromium --dump-dom " << url;
    return dom;
  }

  void Screenshot(const std::string& url, const std::string& png) {
    int rc = 0;
    RunShell(absl::StrCat(Base(), " --window-size=1280,1600 --screenshot='", png, "' '", url,
                     "' 2>/dev/null"),
        &rc);
    EXPECT_EQ(rc, 0) << "chromium --screenshot " << url;
  }

 private:
  std::string Base() const {
    return absl::StrCat("timeout 120 ", kChromium,
                        " --headless --no-sandbox --disable-gpu --disable-dev-shm-usage"
                        " --no-first-run --user-data-dir='",
                        dir_, "/chromium-profile'");
  }
  const std::string dir_;
};

// The text of the element with id `id` (up to its first child tag), or
// nullopt when there is no such element.
std::optional<std::string> ElementText(const std::string& dom, const std::string& id) {
  const size_t at = dom.find(absl::StrCat("id=\"", id, "\""));
  if (at == std::string::npos) return std::nullopt;
  const size_t open = dom.find('>', at);
  const size_t close = dom.find('<', open);
  if (open == std::string::npos || close == std::string::npos) return std::nullopt;
  return dom.substr(open + 1, close - open - 1);
}

// The rows of the table with id `id`, each as its cells' texts.
std::vector<std::vector<std::string>> TableRows(const std::string& dom, const std::string& id) {
  std::vector<std::vector<std::string>> rows;
  const size_t at = dom.find(absl::StrCat("<table id=\"", id, "\""));
  if (at == std::string::npos) return rows;
  const size_t end = dom.find("</table>", at);
  size_t pos = dom.find("<tbody>", at);
  while (pos != std::string::npos && pos < end) {
    const size_t tr = dom.find("<tr>", pos);
    if (tr == std::string::npos || tr > end) break;
    const size_t tr_end = dom.find("</tr>", tr);
    std::vector<std::string> cells;
    size_t td = dom.find("<td>", tr);
    while (td != std::string::npos && td < tr_end) {
      const size_t td_end = dom.find("</td>", td);
      cells.push_back(dom.substr(td + 4, td_end - td - 4));
      td = dom.find("<td>", td_end);
    }
    rows.push_back(std::move(cells));
    pos = tr_end;
  }
  return rows;
}

void ExpectPng(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  ASSERT_TRUE(in) << "no screenshot at " << path;
  char magic[8] = {};
  in.read(magic, sizeof magic);
  EXPECT_EQ(std::string(magic, 8), std::string("\x89PNG\r\n\x1a\n", 8)) << path;
  // A rendered page, not a blank window (a white 1280x1600 PNG is ~10 KiB).
  EXPECT_GT(fs::file_size(path), 20'000u) << path;
  std::printf("status page screenshot: %s\n", path.c_str());
}

class StatusPageBrowserTest : public ::testing::TestWithParam<pg::StorageMode> {
 protected:
  void SetUp() override {
    if (access(kChromium, X_OK) != 0) {
      if (std::getenv("TELEMETRY_REQUIRE_BROWSER") != nullptr) {
        FAIL() << kChromium << " is missing and TELEMETRY_REQUIRE_BROWSER is set "
               << "(deploy/dev/common.sh installs Debian's chromium)";
      }
      GTEST_SKIP() << "Debian's chromium is not installed";
    }
    if (GetParam() == pg::StorageMode::kTimescale &&
        !telemetry::local::PostgresServer::TimescaleInstalled()) {
      GTEST_SKIP() << "TimescaleDB is not installed for this PostgreSQL";
    }
    mode_name_ = std::string(pg::StorageModeName(GetParam()));
    dir_ = absl::StrCat(::testing::TempDir(), "/status-page-", mode_name_, "-", getpid());
    fs::create_directories(dir_);
    artifacts_ = TELEMETRY_ARTIFACT_DIR;
    fs::create_directories(artifacts_);
    db_ = MigratedDatabase(GetParam());
  }

  // `telemetryctl args` with the environment `env`; its stdout. (send exits
  // 1 when some reading was rejected.)
  std::string Ctl(const std::string& env, const std::string& args, int expected_rc = 0) {
    int rc = 0;
    std::string out = RunShell(absl::StrCat(env, " ", TELEMETRYCTL_PATH, " ", args, " 2>>'", dir_,
                                       "/ctl.err'"),
                          &rc);
    EXPECT_EQ(rc, expected_rc) << "telemetryctl " << args << " (stderr in " << dir_ << "/ctl.err)";
    return out;
  }

  // A CSV of `n` readings of sensor `sensor`, one every `step` seconds back
  // from `offset` seconds before base_s_; `future` more a day ahead (each
  // refused by the gateway).
  std::string Csv(const std::string& name, const std::string& sensor, int n, int offset,
                  int future, int step = 1) {
    const std::string path = absl::StrCat(dir_, "/", name);
    std::ofstream out(path);
    out << "sensor_id,timestamp,value\n";
    const int64_t end = base_s_ - offset;
    for (int i = 0; i < n; ++i) {
      out << sensor << "," << end - int64_t{i} * step << "," << 20 + i % 7 << "\n";
    }
    for (int i = 0; i < future; ++i) out << sensor << "," << end + 86400 + i << ",1\n";
    return path;
  }

  std::string mode_name_, dir_, artifacts_, db_;
  const int64_t base_s_ = absl::ToUnixSeconds(absl::Now()) - 60;  // one clock for every file
};

TEST_P(StatusPageBrowserTest, TheGatewayPageShowsTheDeviceAndWhatItSentLive) {
  ingest::IngestServerOptions o = telemetry::testing::LoopbackGateway(db_);
  o.require_device_auth = true;
  const std::string token =
      std::string(absl::StripAsciiWhitespace(Ctl(absl::StrCat("DATABASE_URL='", db_, "'"),
                                                 "device add press-7 --sensors='press-7-*'")));
  ASSERT_EQ(token.size(), 43u) << token;
  const std::string token_file = absl::StrCat(dir_, "/press-7.token");
  std::ofstream(token_file) << token << "\n";
  auto gateway = ingest::IngestServer::Start(o);
  ASSERT_TRUE(gateway.ok()) << gateway.status();
  const std::string device_env =
      absl::StrCat("INGEST_ADDRESS=127.0.0.1:", (*gateway)->port(),
                   " TELEMETRY_PLAINTEXT=1 TELEMETRY_TOKEN_FILE='", token_file, "'");
  const std::string url = absl::StrCat("http://127.0.0.1:", (*gateway)->metrics_port(), "/status");
  Browser browser(dir_);

  // Before any batch: the device table says so.
  std::string dom = browser.Dom(url);
  EXPECT_EQ(ElementText(dom, "version"), std::string(BuildVersion()));
  EXPECT_EQ(ElementText(dom, "storage-mode"), mode_name_);
  EXPECT_EQ(ElementText(dom, "dep-postgres"), "reachable");
  EXPECT_EQ(ElementText(dom, "auth"), "required");
  EXPECT_EQ(ElementText(dom, "devices"), "No batch since the gateway started.");

  Ctl(device_env, absl::StrCat("send --file=", Csv("first.csv", "press-7-temp", 500, 0, 1)), 1);
  dom = browser.Dom(url);
  EXPECT_EQ(ElementText(dom, "readings-stored"), "500");
  EXPECT_EQ(ElementText(dom, "readings-rejected"), "1");
  EXPECT_EQ(ElementText(dom, "dep-redis"), "reachable");
  auto rows = TableRows(dom, "devices");
  ASSERT_EQ(rows.size(), 1u) << dom;
  ASSERT_EQ(rows[0].size(), 7u);
  EXPECT_EQ(rows[0][0], "press-7");
  EXPECT_TRUE(absl::StrContains(rows[0][1], " ago)")) << rows[0][1];
  EXPECT_GT(std::stod(rows[0][2]), 0) << "rate " << rows[0][2];
  EXPECT_EQ(rows[0][3], "500");  // stored
  EXPECT_EQ(rows[0][5], "1");    // rejected: the reading a day ahead

  // Live: the same page, reloaded, moves with the next send; a resend of
  // the first file stores nothing more and shows as resent.
  Ctl(device_env, absl::StrCat("send --file=", Csv("second.csv", "press-7-temp", 250, 500, 0)));
  Ctl(device_env, absl::StrCat("send --file=", dir_, "/first.csv"), 1);
  dom = browser.Dom(url);
  EXPECT_EQ(ElementText(dom, "readings-stored"), "750");
  rows = TableRows(dom, "devices");
  ASSERT_EQ(rows.size(), 1u) << dom;
  EXPECT_EQ(rows[0][3], "750");
  EXPECT_EQ(rows[0][4], "500");  // resent, already stored
  EXPECT_EQ(telemetry::testing::QueryScalar(db_, "SELECT count(*) FROM sensor_readings"), "750");

  const std::string png = absl::StrCat(artifacts_, "/status-ingest-gateway-", mode_name_, ".png");
  browser.Screenshot(url, png);
  ExpectPng(png);
  (*gateway)->Shutdown(absl::Seconds(1));
}

TEST_P(StatusPageBrowserTest, TheReadServicePageShowsJobsFreshnessAndChunks) {
  auto gateway = ingest::IngestServer::Start(telemetry::testing::LoopbackGateway(db_));
  ASSERT_TRUE(gateway.ok()) << gateway.status();
  const std::string env = absl::StrCat("INGEST_ADDRESS=127.0.0.1:", (*gateway)->port(),
                                       " TELEMETRY_PLAINTEXT=1");
  // Three hours back, one reading every 10 s, so that the aggregate has
  // whole hours to materialise.
  Ctl(env, absl::StrCat("send --file=", Csv("hours.csv", "line-1", 3 * 3600 / 10, 0, 0, 10)));

  auto reader = query::ReadServer::Start(telemetry::testing::LoopbackReadService(db_));
  ASSERT_TRUE(reader.ok()) << reader.status();
  const std::string url = absl::StrCat("http://127.0.0.1:", (*reader)->metrics_port(), "/status");
  Browser browser(dir_);
  std::string dom = browser.Dom(url);
  EXPECT_EQ(ElementText(dom, "version"), std::string(BuildVersion()));
  EXPECT_EQ(ElementText(dom, "storage-mode"), mode_name_);
  EXPECT_TRUE(absl::StartsWith(ElementText(dom, "dep-postgres").value_or(""), "reachable"))
      << dom;

  // Materialise everything, then let the stats read it (the page itself
  // never queries).
  ASSERT_TRUE((*reader)->jobs().Refresh(std::nullopt, std::nullopt).ok());
  (*reader)->jobs().CollectStats();
  dom = browser.Dom(url);
  const std::string watermark = ElementText(dom, "watermark").value_or("");
  EXPECT_TRUE(absl::StrContains(watermark, "Z (")) << watermark;
  EXPECT_FALSE(ElementText(dom, "stats-error").has_value()) << dom;
  EXPECT_NE(ElementText(dom, "stats-collected").value_or("not yet"), "not yet");
  const int chunks = std::stoi(ElementText(dom, "chunk-count").value_or("0"));
  EXPECT_GE(chunks, 1) << dom;
  EXPECT_FALSE(TableRows(dom, "chunks").empty()) << dom;
  const auto jobs = TableRows(dom, "jobs");
  ASSERT_FALSE(jobs.empty()) << dom;
  bool refresh_job = false;
  for (const auto& j : jobs) refresh_job = refresh_job || absl::StrContains(j[0], "refresh");
  EXPECT_TRUE(refresh_job) << dom;
  EXPECT_EQ(ElementText(dom, "jobs-failing"), "none");

  const std::string png = absl::StrCat(artifacts_, "/status-read-service-", mode_name_, ".png");
  browser.Screenshot(url, png);
  ExpectPng(png);
  (*reader)->Shutdown(absl::Seconds(1));
  (*gateway)->Shutdown(absl::Seconds(1));
}

INSTANTIATE_TEST_SUITE_P(BothModes, StatusPageBrowserTest,
                         ::testing::Values(pg::StorageMode::kNative, pg::StorageMode::kTimescale),
                         [](const ::testing::TestParamInfo<pg::StorageMode>& param_info) {
                           return std::string(pg::StorageModeName(param_info.param));
                         });

}  // namespace
}  // namespace telemetry
