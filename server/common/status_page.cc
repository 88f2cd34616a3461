#include "server/common/status_page.h"

#include <algorithm>
#include <cstdint>

#include "absl/strings/str_cat.h"
#include "server/common/build_version.h"

namespace telemetry {
namespace {

const char* HealthClass(Health h) {
  switch (h) {
    case Health::kGood:
      return "good";
    case Health::kWarning:
      return "warn";
    case Health::kBad:
      return "bad";
    case Health::kNeutral:
      break;
  }
  return "";
}

std::string IdAttribute(absl::string_view id) {
  return id.empty() ? "" : absl::StrCat(" id=\"", HtmlEscape(id), "\"");
}

constexpr absl::string_view kStyle = R"css(
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #1d2330; }
h1 { font-size: 1.4em; margin: 0 0 .2em; }
h2 { font-size: 1.1em; margin: 1.4em 0 .4em; border-bottom: 1px solid #d5d9e0; }
.meta { color: #5b6475; margin-bottom: 1em; }
dl { display: grid; grid-template-columns: max-content auto; gap: .15em 1.2em; margin: 0; }
dt { color: #5b6475; }
dd { margin: 0; font-variant-numeric: tabular-nums; }
table { border-collapse: collapse; margin-top: .6em; font-variant-numeric: tabular-nums; }
th, td { padding: .2em .8em; border-bottom: 1px solid #e6e9ee; text-align: left; }
th { background: #f3f5f8; }
.good { color: #19713b; font-weight: 600; }
.warn { color: #9a6200; font-weight: 600; }
.bad { color: #b3261e; font-weight: 600; }
.note { color: #5b6475; font-size: .9em; }
)css";

}  // namespace

std::string HtmlEscape(absl::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string HumanDuration(absl::Duration d) {
  if (d < absl::ZeroDuration()) return absl::StrCat("-", HumanDuration(-d));
  if (d < absl::Seconds(1)) return absl::StrCat(absl::ToInt64Milliseconds(d), "ms");
  const int64_t s = absl::ToInt64Seconds(d);
  struct Unit {
    int64_t seconds;
    const char* name;
  };
  static constexpr Unit kUnits[] = {{86400, "d"}, {3600, "h"}, {60, "m"}, {1, "s"}};
  for (size_t i = 0; i < std::size(kUnits); ++i) {
    const int64_t major = s / kUnits[i].seconds;
    if (major == 0) continue;
    std::string out = absl::StrCat(major, kUnits[i].name);
    if (i + 1 < std::size(kUnits)) {
      const int64_t minor = (s % kUnits[i].seconds) / kUnits[i + 1].seconds;
      if (minor > 0) absl::StrAppend(&out, " ", minor, kUnits[i + 1].name);
    }
    return out;
  }
  return "0s";
}

std::string TimeAndAge(absl::Time t, absl::Time now) {
  if (t == absl::InfinitePast()) return "never";
  const std::string when = absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", t, absl::UTCTimeZone());
  if (t > now) return absl::StrCat(when, " (in ", HumanDuration(t - now), ")");
  return absl::StrCat(when, " (", HumanDuration(now - t), " ago)");
}

std::string GroupedInt(int64_t n) {
  const uint64_t magnitude = n < 0 ? 0 - static_cast<uint64_t>(n) : static_cast<uint64_t>(n);
  const std::string digits = absl::StrCat(magnitude);
  std::string out = n < 0 ? "-" : "";
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

StatusSection ServiceSection(const ServiceFacts& f, absl::Time now) {
  StatusSection s{"Service", {}, {}};
  s.fields.push_back({"started", TimeAndAge(f.started, now), Health::kNeutral, "started"});
  s.fields.push_back({"uptime", HumanDuration(now - f.started), Health::kNeutral, "uptime"});
  s.fields.push_back({"storage mode", f.storage_mode,
                      f.storage_mode_known ? Health::kNeutral : Health::kWarning, "storage-mode"});
  s.fields.push_back({"gRPC port", absl::StrCat(f.grpc_port), Health::kNeutral, "grpc-port"});
  s.fields.push_back({"transport", f.transport, Health::kNeutral, "transport"});
  s.fields.push_back({f.auth_label, f.auth_required ? "required" : "off",
                      f.auth_required ? Health::kNeutral : Health::kWarning, "auth"});
  return s;
}

std::string RenderStatusHtml(const StatusReport& report, absl::Time now,
                             absl::Duration refresh) {
  std::string html = "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">";
  if (refresh > absl::ZeroDuration()) {
    absl::StrAppend(&html, "<meta http-equiv=\"refresh\" content=\"",
                    std::max<int64_t>(1, absl::ToInt64Seconds(refresh)), "\">");
  }
  absl::StrAppend(&html, "<title>", HtmlEscape(report.service), " status</title><style>",
                  kStyle, "</style></head>\n<body>\n<h1>", HtmlEscape(report.service),
                  "</h1>\n<div class=\"meta\">version <span id=\"version\">",
                  HtmlEscape(BuildVersion()), "</span> &middot; page generated ",
                  HtmlEscape(absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", now, absl::UTCTimeZone())),
                  refresh > absl::ZeroDuration()
                      ? absl::StrCat(" &middot; reloads every ", HumanDuration(refresh))
                      : "",
                  " &middot; <a href=\"/metrics\">/metrics</a></div>\n");
  for (const StatusSection& section : report.sections) {
    absl::StrAppend(&html, "<section><h2>", HtmlEscape(section.title), "</h2>\n");
    if (!section.fields.empty()) {
      html += "<dl>\n";
      for (const StatusField& f : section.fields) {
        const char* cls = HealthClass(f.health);
        absl::StrAppend(&html, "<dt>", HtmlEscape(f.label), "</dt><dd", IdAttribute(f.id),
                        *cls ? absl::StrCat(" class=\"", cls, "\"") : "", ">",
                        HtmlEscape(f.value), "</dd>\n");
      }
      html += "</dl>\n";
    }
    for (const StatusTable& t : section.tables) {
      if (t.rows.empty()) {
        absl::StrAppend(&html, "<p class=\"note\"", IdAttribute(t.id), ">",
                        HtmlEscape(t.empty_text), "</p>\n");
        continue;
      }
      absl::StrAppend(&html, "<table", IdAttribute(t.id), "><thead><tr>");
      for (const std::string& c : t.columns) absl::StrAppend(&html, "<th>", HtmlEscape(c), "</th>");
      html += "</tr></thead><tbody>\n";
      for (const auto& row : t.rows) {
        html += "<tr>";
        for (const std::string& cell : row) absl::StrAppend(&html, "<td>", HtmlEscape(cell), "</td>");
        html += "</tr>\n";
      }
      html += "</tbody></table>\n";
      if (!t.footnote.empty()) {
        absl::StrAppend(&html, "<p class=\"note\">", HtmlEscape(t.footnote), "</p>\n");
      }
    }
    html += "</section>\n";
  }
  html += "</body></html>\n";
  return html;
}

}  // namespace telemetry
