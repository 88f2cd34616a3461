// The status page each service serves on its metrics port (/status), in the
// manner of Envoy's admin page and the OpenTelemetry Collector's zPages: a
// plain HTML summary an operator opens in a browser when something looks
// wrong, before reaching for Prometheus. No JavaScript; the page reloads
// itself every few seconds.
//
// A service describes what it knows as a StatusReport (sections of labelled
// fields and tables, every value already formatted); RenderStatusHtml turns
// it into the page. Everything is HTML-escaped, so device ids and error
// texts cannot inject markup.
#ifndef TELEMETRY_SERVER_COMMON_STATUS_PAGE_H_
#define TELEMETRY_SERVER_COMMON_STATUS_PAGE_H_

#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace telemetry {

// How a value reads at a glance (coloured on the page).
enum class Health { kNeutral, kGood, kWarning, kBad };

struct StatusField {
  std::string label;
  std::string value;
  Health health = Health::kNeutral;
  std::string id;  // optional element id (a stable handle for scripts and tests)
};

struct StatusTable {
  std::string id;  // element id of the <table>
  std::vector<std::string> columns;
  std::vector<std::vector<std::string>> rows;
  std::string empty_text = "none";  // shown instead of an empty table
  std::string footnote;             // e.g. "12 more not shown"
};

struct StatusSection {
  std::string title;
  std::vector<StatusField> fields;
  std::vector<StatusTable> tables;
};

struct StatusReport {
  std::string service;  // "ingest-gateway"
  std::vector<StatusSection> sections;
};

// The "Service" section both pages open with.
struct ServiceFacts {
  absl::Time started;
  std::string storage_mode;  // "native", "timescale", or why not known
  bool storage_mode_known = true;
  int grpc_port = 0;
  std::string transport;   // "TLS", "mutual TLS", "plaintext"
  std::string auth_label;  // "device authentication"
  bool auth_required = true;
};
StatusSection ServiceSection(const ServiceFacts& facts, absl::Time now);

// The whole page; it reloads itself every `refresh` (zero: never).
std::string RenderStatusHtml(const StatusReport& report, absl::Time now,
                             absl::Duration refresh);

// Text with &, <, >, " and ' replaced by entities.
std::string HtmlEscape(absl::string_view text);

// "3d 4h", "2h 5m", "4m 10s", "12s", "850ms": two units at most.
std::string HumanDuration(absl::Duration d);

// "2026-12-02T01:20:00Z (12s ago)"; "never" for InfinitePast.
std::string TimeAndAge(absl::Time t, absl::Time now);

// "1,234,567"
std::string GroupedInt(int64_t n);

}  // namespace telemetry

#endif  // TELEMETRY_SERVER_COMMON_STATUS_PAGE_H_
