// Minimal structured logging: one JSON object per line on stderr.
//
//   Log(LogLevel::kInfo, "gateway started", {{"grpc", addr}, {"mode", m}});
//
// Never pass a secret (passwords, tokens, full connection strings) as a
// field; use pg::RedactConninfo for connection strings.
#ifndef TELEMETRY_SERVER_COMMON_LOG_H_
#define TELEMETRY_SERVER_COMMON_LOG_H_

#include <initializer_list>
#include <string>
#include <utility>

#include "absl/strings/string_view.h"

namespace telemetry {

enum class LogLevel { kDebug, kInfo, kWarning, kError };

using LogField = std::pair<absl::string_view, std::string>;

void Log(LogLevel level, absl::string_view message,
         std::initializer_list<LogField> fields = {});

// Escapes `s` for use inside a JSON string literal (no surrounding quotes).
std::string JsonEscape(absl::string_view s);

}  // namespace telemetry

#endif  // TELEMETRY_SERVER_COMMON_LOG_H_
