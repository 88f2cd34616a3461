// telemetryctl send: streams CSV readings to the ingest gateway.
#ifndef TELEMETRY_CLIENT_SEND_COMMAND_H_
#define TELEMETRY_CLIENT_SEND_COMMAND_H_

#include <cstdint>
#include <string>

#include "absl/time/time.h"

namespace telemetry::client {

struct SendOptions {
  std::string target;       // the gateway
  std::string file = "-";   // CSV input, - for stdin
  size_t batch_size = 1000;
  absl::Duration timeout = absl::Minutes(5);          // for the acks, once all is sent
  absl::Duration connect_timeout = absl::Seconds(10);  // for the first connection
  bool progress = false;    // draw a progress line (stderr is a terminal)
  size_t max_reported = 100;  // rejections and unparsable lines listed; the rest counted
};

// The exit code: 0 when every reading was stored (or was a duplicate), 1 when
// any was rejected, unparsable or not acknowledged, 2 for unusable input.
int RunSend(const SendOptions& options);

// send --spool=DIR: the same input through the edge agent's spool
// (client/edge_agent.h): what a killed run spooled, and what a run that
// timed out left unanswered, is sent by the next run with the same spool;
// a file is read on from where the spooled part ends. Exit codes as
// RunEdgeAgent's.
int RunSpooledSend(const SendOptions& options, const std::string& spool_directory);

}  // namespace telemetry::client

#endif  // TELEMETRY_CLIENT_SEND_COMMAND_H_
