// The edge agent: reads readings (CSV, as `telemetryctl send` does) from a
// file or stdin, batches them, spools every batch to disk and streams from
// the spool (SpooledStream). Used by the `edge-agent` binary and by
// `telemetryctl send --spool=DIR`.
//
// Exactly once across crashes: each spooled batch carries the input offset
// after it (the cursor), in the same checksummed record. A restarted agent
// sends what the spool still holds, then reads a file on from that offset
// (the same file: its inode is part of the cursor). Stdin cannot be
// re-read: what the agent had read from a pipe but not yet spooled is gone
// with the process, as it would be with any reader of a pipe.
#ifndef TELEMETRY_CLIENT_EDGE_AGENT_H_
#define TELEMETRY_CLIENT_EDGE_AGENT_H_

#include <atomic>
#include <cstdint>
#include <string>

#include "absl/time/time.h"
#include "client/spool.h"
#include "client/spooled_stream.h"

namespace telemetry::client {

struct EdgeAgentOptions {
  std::string program_name = "edge-agent";  // what messages start with
  std::string target;      // the gateway(s), as OpenChannelFromFlags takes them
  std::string input = "-";  // a CSV file, or - for stdin
  size_t batch_size = 500;
  // A batch goes out when it is full or this long after its first reading
  // (a slow sensor on stdin still gets its readings out).
  absl::Duration flush_interval = absl::Seconds(1);
  SpoolOptions spool;
  SpooledStreamOptions stream;
  // At the end of the input: how long to wait for the backlog's answers
  // (what is left stays spooled for the next run).
  absl::Duration drain_timeout = absl::Minutes(5);
  // A status line on stderr this often (0: none): backlog and answers.
  absl::Duration progress_interval = absl::Seconds(10);
  // Set (e.g. by a signal handler's thread) to stop reading and drain for
  // at most stop_drain_timeout.
  std::atomic<bool>* stop = nullptr;
  absl::Duration stop_drain_timeout = absl::Seconds(5);
};

// Runs to the end of the input (or *stop) and prints a summary on stdout.
// Exit code: 0 when every reading read (and every one spooled by an earlier
// run) was stored or was a duplicate; 1 when some were rejected (reasons
// counted on stderr), unparsable (listed by line), dropped by a full spool,
// refused as a whole batch, or are still in the spool; 2 for unusable
// options or input.
int RunEdgeAgent(const EdgeAgentOptions& options);

}  // namespace telemetry::client

#endif  // TELEMETRY_CLIENT_EDGE_AGENT_H_
