// telemetryctl's read-service commands (latest, range, summary, drift, jobs,
// chunks, refresh), kept apart from the write-side commands.
#ifndef TELEMETRY_CLIENT_READ_COMMANDS_H_
#define TELEMETRY_CLIENT_READ_COMMANDS_H_

#include <string>

namespace telemetry::client {

// Help text listing the commands below.
extern const char kReadCommandsUsage[];

// Runs `command` with its flags; returns the exit code, or -1 when
// `command` is not a read command.
int RunReadCommand(const std::string& command);

}  // namespace telemetry::client

#endif  // TELEMETRY_CLIENT_READ_COMMANDS_H_
