// Store and forward at the edge, end to end: the real edge-agent binary
// against a real gateway, PostgreSQL and Redis. The agent is killed with
// SIGKILL at random moments and restarted, or left without a gateway for a
// while; every time, the table ends with exactly the distinct valid
// readings of the input: nothing lost, nothing twice.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "server/ingest/ingest_server.h"
#include "storage/local/process.h"
#include "tests/support/loopback_gateway.h"
#include "tests/support/servers_environment.h"

namespace telemetry {
namespace {

using telemetry::local::PollUntil;
using telemetry::testing::MigratedDatabase;
using telemetry::testing::QueryScalar;

// The i-th reading's value: a multiple of 1/4 below 1,000, which StrCat's
// six digits print exactly, and whose sums are exact in a double.
double Value(int i) { return (i % 4000) * 0.25; }

// A CSV input of `readings` readings over 20 sensors named `prefix`-N, one
// in `invalid_every` with a NaN value (refused by the gateway, reading by
// reading). Returns how many are valid; adds their values to *value_sum
// when given (every value is a multiple of 1/4, so the sums are exact).
int64_t WriteInput(const std::string& path, const std::string& prefix, int readings,
                   int invalid_every, double* value_sum = nullptr) {
  std::ofstream out(path);
  out << "sensor_id,timestamp,value\n";
  const int64_t base = absl::ToUnixSeconds(absl::Now()) - 86'400;
  int64_t valid = 0;
  for (int i = 0; i < readings; ++i) {
    const bool invalid = i % invalid_every == invalid_every - 1;
    out << prefix << "-" << i % 20 << "," << base + i / 20 << ".5,"
        << (invalid ? std::string("nan") : absl::StrCat(Value(i))) << "\n";
    valid += !invalid;
    if (!invalid && value_sum != nullptr) *value_sum += Value(i);
  }
  return valid;
}

int64_t Stored(const std::string& db, const std::string& prefix) {
  return std::stoll(QueryScalar(
      db, absl::StrCat("SELECT count(*) FROM sensor_readings WHERE sensor_id LIKE '", prefix,
                       "-%'")));
}
// The sum of the stored values: a batch resent as garbage, or a reading
// stored with another's value, changes it (a second copy of a reading
// cannot exist: the primary key refuses it).
double StoredValueSum(const std::string& db, const std::string& prefix) {
  return std::stod(QueryScalar(
      db, absl::StrCat("SELECT coalesce(sum(value), 0) FROM sensor_readings WHERE sensor_id LIKE '",
                       prefix, "-%'")));
}

std::vector<std::string> AgentArgs(int port, const std::string& input, const std::string& spool,
                                   double max_readings_per_second = 0) {
  return {EDGE_AGENT_PATH,
          absl::StrCat("--max_readings_per_second=", max_readings_per_second),
          "--plaintext",
          absl::StrCat("--target=127.0.0.1:", port),
          "--input=" + input,
          "--spool=" + spool,
          "--batch_size=200",
          "--flush_interval=100ms",
          "--window=4",
          "--start_jitter=0s",
          "--drain_timeout=120s",
          "--progress_interval=200ms"};
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  return std::string((std::istreambuf_iterator<char>(in)), {});
}

class EdgeSpoolTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = local::MakeTempDir("edge-spool");
    ASSERT_FALSE(dir_.empty());
    db_ = MigratedDatabase();
  }
  void TearDown() override {
    (void)local::StopProcess(&agent_, SIGKILL, absl::Seconds(10));
    if (gateway_) gateway_->Shutdown(absl::Seconds(5));
    std::filesystem::remove_all(dir_);
  }
  void StartGateway(int port) {
    ingest::IngestServerOptions o = telemetry::testing::LoopbackGateway(db_);
    o.listen_address = absl::StrCat("127.0.0.1:", port);
    auto s = ingest::IngestServer::Start(o);
    ASSERT_TRUE(s.ok()) << s.status();
    gateway_ = *std::move(s);
  }

  // telemetryctl send --spool of `input` to the gateway on `port`: its exit
  // code (-1 if it outlives two minutes; TearDown then ends it).
  int SpooledSend(int port, const std::string& input, const std::string& spool,
                  const std::string& timeout, const std::string& log) {
    agent_ = local::SpawnProcess(
        {TELEMETRYCTL_PATH, "send", "--plaintext", absl::StrCat("--target=127.0.0.1:", port),
         "--file=" + input, "--spool=" + spool, "--batch_size=300", "--timeout=" + timeout},
        log);
    if (agent_ <= 0) return -100;
    const int rc = local::WaitForExit(agent_, absl::Seconds(120));
    if (rc != -1) agent_ = -1;
    return rc;
  }

  std::string dir_, db_;
  std::unique_ptr<ingest::IngestServer> gateway_;
  pid_t agent_ = -1;
};

TEST_F(EdgeSpoolTest, KilledFiftyTimesAtRandomMomentsTheAgentStoresEverythingOnce) {
  const std::string input = dir_ + "/readings.csv", spool = dir_ + "/spool";
  // Paced (its first second's worth at once), so that 50 short lives never
  // finish the input: every kill finds the agent at work, reading,
  // spooling, sending or recovering.
  double value_sum = 0;
  const int64_t valid = WriteInput(input, "kill", 200'000, 97, &value_sum);
  const int port = local::FreeLoopbackPort();
  StartGateway(port);
  if (HasFatalFailure()) return;

  const unsigned seed = static_cast<unsigned>(absl::ToUnixMicros(absl::Now()));
  std::mt19937 random(seed);
  std::uniform_int_distribution<int> pause_ms(10, 300);
  int killed_running = 0, runs = 0;
  for (; killed_running < 50 && runs < 100; ++runs) {
    agent_ = local::SpawnProcess(AgentArgs(port, input, spool, 10'000),
                                 absl::StrCat(dir_, "/agent-", runs, ".log"));
    ASSERT_GT(agent_, 0);
    absl::SleepFor(absl::Milliseconds(pause_ms(random)));  // the moment of the kill, not a wait
    if (local::WaitForExit(agent_, absl::ZeroDuration()) == -1) ++killed_running;
    ASSERT_TRUE(local::StopProcess(&agent_, SIGKILL, absl::Seconds(10)).ok());
  }
  ASSERT_EQ(killed_running, 50) << "the agent ended by itself in " << runs - killed_running
                                << " of " << runs << " runs";
  // A last run to the end of the input; it sends what the others left.
  const std::string last_log = dir_ + "/agent-last.log";
  agent_ = local::SpawnProcess(AgentArgs(port, input, spool), last_log);
  ASSERT_GT(agent_, 0);
  const int rc = local::WaitForExit(agent_, absl::Seconds(300));
  if (rc != -1) agent_ = -1;  // else TearDown ends it
  std::printf("edge agent killed with SIGKILL %d times in %d runs (seed %u); %lld valid readings\n",
              killed_running, runs, seed, static_cast<long long>(valid));
  // The last run exits 1 if it was the one to send some of the NaNs.
  const std::string summary = ReadFile(last_log);
  EXPECT_EQ(rc, summary.find(" 0 rejected,") != std::string::npos ? 0 : 1) << summary;
  EXPECT_NE(summary.find(" 0 batches refused; spool: 0 batches pending, 0 dropped"),
            std::string::npos)
      << summary;
  EXPECT_EQ(Stored(db_, "kill"), valid) << "seed " << seed;
  EXPECT_EQ(StoredValueSum(db_, "kill"), value_sum);
}

// Under a sanitizer freed memory is held back before reuse, so RSS says
// nothing about what the agent holds. (gcc defines __SANITIZE_*__; clang
// answers __has_feature.)
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr bool kSanitized = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
constexpr bool kSanitized = true;
#else
constexpr bool kSanitized = false;
#endif
#else
constexpr bool kSanitized = false;
#endif

TEST_F(EdgeSpoolTest, AGatewayAwayForAWhileGetsTheWholeBacklogOnceFromDiskNotMemory) {
  const std::string input = dir_ + "/readings.csv", spool = dir_ + "/spool";
  constexpr int kReadings = 400'000;  // 2,000 batches, about 15 MB on disk
  double value_sum = 0;
  const int64_t valid = WriteInput(input, "outage", kReadings, 1'000'000, &value_sum);
  const int port = local::FreeLoopbackPort();  // nothing listens yet
  const std::string log = dir_ + "/agent.log";
  agent_ = local::SpawnProcess(AgentArgs(port, input, spool), log);
  ASSERT_GT(agent_, 0);
  // The agent spools while the gateway is away: its memory when the
  // backlog is small, and when it is all of the input.
  ASSERT_TRUE(PollUntil([&] { return ReadFile(log).find("backlog 1") != std::string::npos; },
                        absl::Seconds(120), absl::Milliseconds(20)))
      << ReadFile(log);
  const int64_t rss_early_kib = local::ResidentKib(agent_);
  const std::string all_read = absl::StrCat("read ", kReadings, " readings; backlog 2000 batches");
  ASSERT_TRUE(PollUntil([&] { return ReadFile(log).find(all_read) != std::string::npos; },
                        absl::Seconds(240), absl::Milliseconds(100)))
      << ReadFile(log);
  const int64_t rss_kib = local::ResidentKib(agent_);
  int64_t spool_bytes = 0;
  for (const auto& e : std::filesystem::directory_iterator(spool)) {
    if (e.is_regular_file()) spool_bytes += static_cast<int64_t>(e.file_size());
  }
  std::printf("backlog of 2000 batches: %lld bytes spooled; agent RSS %lld KiB early, %lld KiB "
              "with the whole backlog\n",
              static_cast<long long>(spool_bytes), static_cast<long long>(rss_early_kib),
              static_cast<long long>(rss_kib));
  EXPECT_GT(spool_bytes, 10 << 20);
  if (!kSanitized) {
    // The backlog is on disk: the agent holds a window and a segment, not it.
    EXPECT_LT((rss_kib - rss_early_kib) * 1024, spool_bytes / 2);
  }
  StartGateway(port);
  if (HasFatalFailure()) return;
  const int rc = local::WaitForExit(agent_, absl::Seconds(300));
  if (rc != -1) agent_ = -1;  // else TearDown ends it
  EXPECT_EQ(rc, 0) << ReadFile(log);
  EXPECT_EQ(Stored(db_, "outage"), valid);
  EXPECT_EQ(StoredValueSum(db_, "outage"), value_sum);
}

// telemetryctl send --spool: a run that finds no gateway leaves its batches
// spooled and says so; the next run with the same spool sends them (and
// nothing of the file twice); a third finds nothing left to do.
TEST_F(EdgeSpoolTest, SendWithASpoolFinishesInTheNextRunWhatTheLastCouldNotSend) {
  const std::string input = dir_ + "/readings.csv", spool = dir_ + "/spool";
  double value_sum = 0;
  const int64_t valid = WriteInput(input, "send", 5'000, 50, &value_sum);
  const int port = local::FreeLoopbackPort();
  auto send = [&](const std::string& timeout, const std::string& log) {
    return SpooledSend(port, input, spool, timeout, log);
  };
  const std::string away = dir_ + "/send-away.log";
  EXPECT_EQ(send("1s", away), 1) << ReadFile(away);
  EXPECT_NE(ReadFile(away).find("17 batches pending"), std::string::npos) << ReadFile(away);
  EXPECT_EQ(Stored(db_, "send"), 0);

  StartGateway(port);
  if (HasFatalFailure()) return;
  const std::string back = dir_ + "/send-back.log";
  // It exits 1 as send does: the NaNs were rejected, and it says why.
  EXPECT_EQ(send("60s", back), 1) << ReadFile(back);
  EXPECT_NE(ReadFile(back).find(absl::StrCat("rejected ", 5'000 - valid, " readings: ")),
            std::string::npos)
      << ReadFile(back);
  EXPECT_NE(ReadFile(back).find("0 batches pending"), std::string::npos) << ReadFile(back);
  EXPECT_EQ(Stored(db_, "send"), valid);

  const std::string again = dir_ + "/send-again.log";
  EXPECT_EQ(send("60s", again), 0) << ReadFile(again);
  EXPECT_EQ(Stored(db_, "send"), valid);
  EXPECT_EQ(StoredValueSum(db_, "send"), value_sum);
}

// A file rewritten in place keeps its device and inode (cp over it, a
// truncating writer): the spool's cursor must not send the new content
// from the old offset, which would skip its beginning.
TEST_F(EdgeSpoolTest, AFileRewrittenInPlaceIsReadFromItsStart) {
  const std::string input = dir_ + "/readings.csv", spool = dir_ + "/spool";
  const int port = local::FreeLoopbackPort();
  StartGateway(port);
  if (HasFatalFailure()) return;
  auto send = [&](const std::string& log) { return SpooledSend(port, input, spool, "60s", log); };
  ASSERT_GT(WriteInput(input, "first", 3'000, 1'000'000), 0);
  struct stat before {};
  ASSERT_EQ(::stat(input.c_str(), &before), 0);
  EXPECT_EQ(send(dir_ + "/send-1.log"), 0) << ReadFile(dir_ + "/send-1.log");
  EXPECT_EQ(Stored(db_, "first"), 3'000);

  // The same inode, new and longer content (so the old offset still fits).
  double value_sum = 0;
  const int64_t valid = WriteInput(input, "second", 6'000, 1'000'000, &value_sum);
  struct stat after {};
  ASSERT_EQ(::stat(input.c_str(), &after), 0);
  ASSERT_EQ(after.st_ino, before.st_ino) << "the test means a rewrite in place";
  const std::string log = dir_ + "/send-2.log";
  EXPECT_EQ(send(log), 0) << ReadFile(log);
  EXPECT_NE(ReadFile(log).find("reading it from its start"), std::string::npos) << ReadFile(log);
  EXPECT_EQ(Stored(db_, "second"), valid);
  EXPECT_EQ(StoredValueSum(db_, "second"), value_sum);
}

}  // namespace
}  // namespace telemetry
