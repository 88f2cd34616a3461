// telemetryctl's read-service commands (latest, range, summary, drift, jobs,
// chunks, refresh, retention, compress), kept apart from the write side.
#ifndef TELEMETRY_CLIENT_READ_COMMANDS_H_
#define TELEMETRY_CLIENT_READ_COMMANDS_H_

#include <google/protobuf/timestamp.pb.h>
#include <grpcpp/channel.h>

#include <memory>
#include <string>

#include "absl/time/time.h"
#include "client/output_format.h"

namespace telemetry::client {

// What the command line decided for every command.
struct CommandContext {
  OutputFormat format = OutputFormat::kCsv;
  bool format_given = false;  // -o was given (else the terminal decided)
  absl::Duration connect_timeout = absl::Seconds(10);
  bool progress = false;  // stderr is a terminal
};

// Runs `command` with its flags; returns the exit code (0 done, 1 the call
// failed, 2 bad arguments), or -1 when `command` is not a read command.
int RunReadCommand(const std::string& command, const CommandContext& context);

// `t` (to the microsecond) as a protobuf Timestamp.
void SetTimestamp(absl::Time t, google::protobuf::Timestamp* ts);

// The channel to the read service (--read_target, READ_ADDRESS), once it
// answers; exits the process with the reason when it cannot be reached.
std::shared_ptr<grpc::Channel> ReadServiceChannel(const CommandContext& context);

}  // namespace telemetry::client

#endif  // TELEMETRY_CLIENT_READ_COMMANDS_H_
