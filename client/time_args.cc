#include "client/time_args.h"

#include <algorithm>
#include <cstdint>
#include <optional>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

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

// "[-]S[.F]": Unix seconds, exact to the microsecond (a double would lose
// the last digit of 1764576000.123456); nullopt for anything else.
std::optional<absl::Time> ParseUnixSeconds(absl::string_view arg) {
  const bool negative = absl::ConsumePrefix(&arg, "-");
  const size_t dot = arg.find('.');
  absl::string_view whole = arg.substr(0, dot);
  absl::string_view fraction = dot == absl::string_view::npos ? "" : arg.substr(dot + 1);
  auto digits = [](absl::string_view d) {
    return std::all_of(d.begin(), d.end(), [](char c) { return c >= '0' && c <= '9'; });
  };
  if (whole.empty() || whole.size() > 12 || !digits(whole) || !digits(fraction) ||
      (dot != absl::string_view::npos && fraction.empty())) {
    return std::nullopt;
  }
  int64_t seconds = 0, micros = 0;
  if (!absl::SimpleAtoi(whole, &seconds)) return std::nullopt;
  std::string six(fraction.substr(0, 6));
  six.resize(6, '0');
  if (!absl::SimpleAtoi(six, &micros)) return std::nullopt;
  const int64_t total = seconds * 1'000'000 + micros;
  return absl::FromUnixMicros(negative ? -total : total);
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
  if (auto unix_time = ParseUnixSeconds(arg)) return *unix_time;
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
