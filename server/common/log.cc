#include "server/common/log.h"

#include <cstdio>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "storage/util/mutex.h"

namespace telemetry {

std::string JsonEscape(absl::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    unsigned char u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (u < 0x20) {
      out += "\\u00";
      out += kHex[u >> 4];
      out += kHex[u & 0xf];
    } else {
      out += c;
    }
  }
  return out;
}

bool LogRateLimiter::Allow(int64_t* left_out) {
  const absl::Time now = absl::Now();
  MutexLock lock(&mu_);
  if (now - window_start_ >= interval_) {
    window_start_ = now;
    in_window_ = 0;
  }
  if (in_window_ >= burst_) {
    ++dropped_;
    return false;
  }
  ++in_window_;
  *left_out = dropped_;
  dropped_ = 0;
  return true;
}

void Log(LogLevel level, absl::string_view message,
         std::initializer_list<LogField> fields) {
  static constexpr const char* kLevels[] = {"debug", "info", "warning",
                                            "error"};
  std::string line = absl::StrCat(
      "{\"ts\":\"",
      absl::FormatTime("%Y-%m-%dT%H:%M:%E6SZ", absl::Now(), absl::UTCTimeZone()),
      "\",\"level\":\"", kLevels[static_cast<int>(level)], "\",\"msg\":\"",
      JsonEscape(message), "\"");
  for (const LogField& f : fields) {
    absl::StrAppend(&line, ",\"", JsonEscape(f.first), "\":\"",
                    JsonEscape(f.second), "\"");
  }
  line += "}\n";
  std::fwrite(line.data(), 1, line.size(), stderr);
}

}  // namespace telemetry
