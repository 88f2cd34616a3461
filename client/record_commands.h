// telemetryctl's record commands: sensors, alerts, maintenance tasks and
// maintenance logs (the read service's QueryService sensor calls,
// AlertService and MaintenanceService).
#ifndef TELEMETRY_CLIENT_RECORD_COMMANDS_H_
#define TELEMETRY_CLIENT_RECORD_COMMANDS_H_

#include <string>
#include <vector>

#include "client/read_commands.h"

namespace telemetry::client {

// `args` is the command and its positional arguments, e.g. {"alerts",
// "ack", "<id>"}. The exit code (0 done, 1 the call failed, 2 misuse), or
// -1 when args[0] is not a record command.
int RunRecordCommand(const std::vector<std::string>& args, const CommandContext& context);

}  // namespace telemetry::client

#endif  // TELEMETRY_CLIENT_RECORD_COMMANDS_H_
