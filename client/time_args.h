// The time arguments telemetryctl accepts (--start, --end, ...), in the
// forms operators type: what psql prints, what date(1) prints, and offsets.
#ifndef TELEMETRY_CLIENT_TIME_ARGS_H_
#define TELEMETRY_CLIENT_TIME_ARGS_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace telemetry::client {

// Parses, relative to `now`:
//   now                          now
//   -7d  -90m  -2h  -1h30m  -45s  an offset into the past (d = 24 h, w = 7 d)
//   2026-12-01                   midnight UTC of that day
//   2026-12-01 07:00[:00[.123]]  psql's form, UTC unless an offset follows
//   2026-12-01T07:00:00Z         RFC 3339, any offset, optional fraction
//   1764000000[.5]               Unix seconds
// Times without an offset are UTC. InvalidArgument names the accepted forms.
absl::StatusOr<absl::Time> ParseTimeArg(absl::string_view arg, absl::Time now);

// The accepted forms, one line, for error messages and help.
extern const char kTimeArgForms[];

// RFC 3339 in UTC with the fraction trimmed: 2026-12-01T07:00:00.25Z.
std::string FormatRfc3339(absl::Time t);

}  // namespace telemetry::client

#endif  // TELEMETRY_CLIENT_TIME_ARGS_H_
