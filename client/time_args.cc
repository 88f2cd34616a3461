#include "client/time_args.h"

#include <cstdint>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace telemetry::client {

const char kTimeArgForms[] =
    "now, -7d, -90m, -1h30m, 2026-12-01, '2026-12-01 07:00:00', 2026-12-01T07:00:00Z "
    "or Unix seconds";

namespace {

// "-<n>d" and "-<n>w", which absl durations do not spell; false otherwise.
bool ParseDayOffset(absl::string_view arg, absl::Duration* out) {
  if (arg.size() < 3 || arg[0] != '-') return false;
  const char unit = arg.back();
  if (unit != 'd' && unit != 'w') return false;
  int64_t n;
  if (!absl::SimpleAtoi(arg.substr(1, arg.size() - 2), &n) || n < 0 || n > 100'000) {
    return false;
  }
  *out = absl::Hours(24) * n * (unit == 'w' ? 7 : 1);
  return true;
}

}  // namespace

absl::StatusOr<absl::Time> ParseTimeArg(absl::string_view raw, absl::Time now) {
  const absl::string_view arg = absl::StripAsciiWhitespace(raw);
  if (arg == "now") return now;
  absl::Duration offset;
  if (!arg.empty() && arg[0] == '-' &&
      (ParseDayOffset(arg, &offset) || absl::ParseDuration(arg.substr(1), &offset)) &&
      offset >= absl::ZeroDuration()) {
    return now - offset;
  }
  double seconds;
  if (absl::SimpleAtod(arg, &seconds) && arg.find_first_of("eE") == absl::string_view::npos) {
    return absl::FromUnixMicros(static_cast<int64_t>(seconds * 1e6));
  }
  // Dates and date-times; a space may stand for the 'T', as psql prints them.
  std::string text(arg);
  if (text.size() > 10 && text[10] == ' ') text[10] = 'T';
  const absl::TimeZone utc = absl::UTCTimeZone();
  absl::Time t;
  std::string err;
  for (const char* format : {"%Y-%m-%d%ET%H:%M:%E*S%Ez", "%Y-%m-%d%ET%H:%M:%E*S",
                             "%Y-%m-%d%ET%H:%M%Ez", "%Y-%m-%d%ET%H:%M", "%Y-%m-%d"}) {
    if (absl::ParseTime(format, text, utc, &t, &err)) return t;
  }
  // psql prints "+00" as the offset of timestamptz.
  if (text.size() > 3 && (text[text.size() - 3] == '+' || text[text.size() - 3] == '-')) {
    const std::string with_minutes = text + ":00";
    for (const char* format : {"%Y-%m-%d%ET%H:%M:%E*S%Ez", "%Y-%m-%d%ET%H:%M%Ez"}) {
      if (absl::ParseTime(format, with_minutes, utc, &t, &err)) return t;
    }
  }
  return absl::InvalidArgumentError(
      absl::StrCat("cannot read '", arg, "' as a time; use ", kTimeArgForms));
}

std::string FormatRfc3339(absl::Time t) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%E*SZ", t, absl::UTCTimeZone());
}

}  // namespace telemetry::client
