// edge-agent: store and forward for a device. Reads CSV readings from a file
// or stdin, spools every batch to disk before sending it, and streams from
// the spool; killed, rebooted or cut off for hours, it resends exactly what
// the gateway has not answered (docs/spool.md).
//
//   sensor-reader | edge-agent --spool=/var/lib/edge-agent/spool
//       --target=gateway:50051 --token_file=/etc/agent/token
#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <thread>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "client/channel_flags.h"
#include "client/edge_agent.h"
#include "server/common/flags_env.h"

ABSL_FLAG(std::string, target, "", "The gateway(s) (env INGEST_ADDRESS; default 127.0.0.1:50051)");
ABSL_FLAG(std::string, input, "-", "CSV readings (the columns telemetryctl send reads); - is stdin");
ABSL_FLAG(std::string, spool, "", "The spool directory (env EDGE_SPOOL_DIR); required");
ABSL_FLAG(int, spool_max_mib, 256, "Disk the spool may use");
ABSL_FLAG(int, spool_segment_kib, 4096, "Spool segment size: the unit of deletion and of dropping");
ABSL_FLAG(std::string, spool_when_full, "block",
          "block (reading waits for answers to free space) or drop_oldest (the oldest segment "
          "is dropped, and counted)");
ABSL_FLAG(std::string, spool_sync, "batch",
          "batch (fdatasync per batch: survives power loss), interval (every "
          "--spool_sync_interval: power loss may lose that much) or none (the OS decides)");
ABSL_FLAG(absl::Duration, spool_sync_interval, absl::Milliseconds(100),
          "How often the spool is synced and answered batches are recorded");
ABSL_FLAG(int, batch_size, 500, "Readings per batch");
ABSL_FLAG(absl::Duration, flush_interval, absl::Seconds(1),
          "A batch goes out this long after its first reading even when not full");
ABSL_FLAG(int, window, 8, "Batches in flight on the stream");
ABSL_FLAG(double, max_readings_per_second, 0,
          "The most the agent sends per second (a backlog drains at this rate; 0: unlimited)");
ABSL_FLAG(absl::Duration, start_jitter, absl::Seconds(3),
          "A random delay up to this before the first send, so a fleet that comes back at "
          "once does not arrive at once");
ABSL_FLAG(absl::Duration, drain_timeout, absl::Minutes(5),
          "At the end of the input: how long to wait for the answers (the rest stays spooled)");
ABSL_FLAG(absl::Duration, progress_interval, absl::Seconds(10),
          "A status line on stderr this often (0: none)");

namespace {

std::atomic<bool> g_stop{false};

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "edge-agent --spool=DIR [--input=FILE|-] [--target=HOST:PORT]: spool and stream readings");
  absl::ParseCommandLine(argc, argv);
  using telemetry::client::SpoolOptions;
  telemetry::client::EdgeAgentOptions o;
  o.target = telemetry::FlagOrEnv(FLAGS_target, "INGEST_ADDRESS", "127.0.0.1:50051");
  o.input = absl::GetFlag(FLAGS_input);
  o.spool.directory = telemetry::FlagOrEnv(FLAGS_spool, "EDGE_SPOOL_DIR");
  if (o.spool.directory.empty()) {
    std::cerr << "edge-agent: --spool=DIR is required\n";
    return 2;
  }
  o.spool.max_bytes = static_cast<uint64_t>(std::max(1, absl::GetFlag(FLAGS_spool_max_mib))) << 20;
  o.spool.segment_bytes =
      static_cast<uint64_t>(std::max(4, absl::GetFlag(FLAGS_spool_segment_kib))) << 10;
  const std::string when_full = absl::GetFlag(FLAGS_spool_when_full);
  if (when_full == "block") {
    o.spool.when_full = SpoolOptions::WhenFull::kBlock;
  } else if (when_full == "drop_oldest") {
    o.spool.when_full = SpoolOptions::WhenFull::kDropOldest;
  } else {
    std::cerr << "edge-agent: --spool_when_full is block or drop_oldest\n";
    return 2;
  }
  const std::string sync = absl::GetFlag(FLAGS_spool_sync);
  if (sync == "batch") {
    o.spool.sync = SpoolOptions::Sync::kEveryBatch;
  } else if (sync == "interval") {
    o.spool.sync = SpoolOptions::Sync::kInterval;
  } else if (sync == "none") {
    o.spool.sync = SpoolOptions::Sync::kNone;
  } else {
    std::cerr << "edge-agent: --spool_sync is batch, interval or none\n";
    return 2;
  }
  o.spool.sync_interval = absl::GetFlag(FLAGS_spool_sync_interval);
  o.batch_size = static_cast<size_t>(std::max(1, absl::GetFlag(FLAGS_batch_size)));
  o.flush_interval = absl::GetFlag(FLAGS_flush_interval);
  o.stream.stream.max_in_flight = std::max(1, absl::GetFlag(FLAGS_window));
  o.stream.max_readings_per_second = absl::GetFlag(FLAGS_max_readings_per_second);
  o.stream.start_jitter = absl::GetFlag(FLAGS_start_jitter);
  o.drain_timeout = absl::GetFlag(FLAGS_drain_timeout);
  o.progress_interval = absl::GetFlag(FLAGS_progress_interval);

  // SIGINT/SIGTERM: stop reading, spool what was read, drain briefly, exit.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  std::thread([signals] {
    int signal = 0;
    if (sigwait(&signals, &signal) == 0) g_stop = true;
  }).detach();
  o.stop = &g_stop;

  const int code = telemetry::client::RunEdgeAgent(o);
  std::cout.flush();
  std::cerr.flush();
  // The signal thread (and a reader stuck on stdin) are still running.
  std::_Exit(code);
}
