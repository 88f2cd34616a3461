// Minimal structured logging: one JSON object per line on stderr.
//
//   Log(LogLevel::kInfo, "gateway started", {{"grpc", addr}, {"mode", m}});
//
// Never pass a secret (passwords, tokens, full connection strings) as a
// field; use pg::RedactConninfo for connection strings.
#ifndef TELEMETRY_SERVER_COMMON_LOG_H_
#define TELEMETRY_SERVER_COMMON_LOG_H_

#include <cstdint>
#include <initializer_list>
#include <string>
#include <utility>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "storage/util/mutex.h"

namespace telemetry {

enum class LogLevel { kDebug, kInfo, kWarning, kError };

using LogField = std::pair<absl::string_view, std::string>;

void Log(LogLevel level, absl::string_view message,
         std::initializer_list<LogField> fields = {});

// Lets at most `burst` lines through per `interval` from one call site, so a
// flood of bad requests cannot flood the log (or the disk under it):
//
//   static LogRateLimiter limit(10, absl::Seconds(1));
//   int64_t left_out;
//   if (limit.Allow(&left_out)) Log(..., {{"left_out", absl::StrCat(left_out)}});
//
// `left_out` counts the lines dropped since the last one allowed. Thread-safe.
class LogRateLimiter {
 public:
  LogRateLimiter(int burst, absl::Duration interval) : burst_(burst), interval_(interval) {}
  bool Allow(int64_t* left_out);

 private:
  const int burst_;
  const absl::Duration interval_;
  Mutex mu_;
  absl::Time window_start_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  int in_window_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t dropped_ ABSL_GUARDED_BY(mu_) = 0;
};

// Escapes `s` for use inside a JSON string literal (no surrounding quotes).
std::string JsonEscape(absl::string_view s);

}  // namespace telemetry

#endif  // TELEMETRY_SERVER_COMMON_LOG_H_
