// telemetryctl's read-service commands: latest, range, summary, drift, jobs,
// chunks, refresh. Each prints plain text (CSV where it is data) to stdout.
#include "client/read_commands.h"

#include <grpcpp/grpcpp.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>

#include "absl/flags/flag.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "client/channel_flags.h"
#include "server/common/flags_env.h"
#include "telemetry/v1/query.grpc.pb.h"

ABSL_FLAG(std::string, read_target, "",
          "read service address (env READ_ADDRESS; default 127.0.0.1:50052)");
ABSL_FLAG(std::string, sensor, "", "sensor id (latest, range, drift)");
ABSL_FLAG(std::string, sensors, "",
          "comma-separated sensor ids (summary); sensor patterns (device add)");
ABSL_FLAG(std::string, start, "-24h",
          "range start: RFC 3339, Unix seconds, 'now' or a negative offset like -2h");
ABSL_FLAG(std::string, end, "now", "range end, same forms as --start");
ABSL_FLAG(int, limit, 100, "latest: how many readings");
ABSL_FLAG(std::string, reference_start, "-48h", "drift: reference window start");
ABSL_FLAG(std::string, reference_end, "-24h", "drift: reference window end");
ABSL_FLAG(std::string, current_start, "-24h", "drift: current window start");
ABSL_FLAG(std::string, current_end, "now", "drift: current window end");
ABSL_FLAG(int, bins, 10, "drift: PSI bins");
ABSL_FLAG(std::string, output, "-", "range: CSV file to write, - for stdout");
ABSL_FLAG(bool, all, false, "refresh: the whole history instead of --start/--end");

namespace telemetry::client {
namespace {

namespace v1 = telemetry::v1;

int Fail(absl::string_view what, const grpc::Status& s) {
  std::cerr << "telemetryctl: " << what << ": " << s.error_message() << " (code "
            << s.error_code() << ")\n";
  return 1;
}

int FailArg(absl::string_view message) {
  std::cerr << "telemetryctl: " << message << "\n";
  return 2;
}

bool ParseTimeArg(const std::string& arg, absl::Time* out) {
  absl::Time now = absl::Now();
  if (arg == "now") {
    *out = now;
    return true;
  }
  absl::Duration offset;
  if (!arg.empty() && arg[0] == '-' && absl::ParseDuration(arg, &offset)) {
    *out = now + offset;
    return true;
  }
  int64_t days;  // "-7d": days, which absl durations do not spell
  if (arg.size() > 2 && arg[0] == '-' && arg.back() == 'd' &&
      absl::SimpleAtoi(absl::string_view(arg).substr(1, arg.size() - 2), &days) && days >= 0) {
    *out = now - absl::Hours(24) * days;
    return true;
  }
  double seconds;
  if (absl::SimpleAtod(arg, &seconds)) {
    *out = absl::FromUnixMicros(static_cast<int64_t>(seconds * 1e6));
    return true;
  }
  std::string err;
  return absl::ParseTime(absl::RFC3339_full, arg, out, &err);
}

bool SetTime(const std::string& arg, google::protobuf::Timestamp* ts) {
  absl::Time t;
  if (!ParseTimeArg(arg, &t)) return false;
  int64_t us = absl::ToUnixMicros(t);
  ts->set_seconds(us / 1'000'000);
  ts->set_nanos(static_cast<int32_t>(us % 1'000'000) * 1000);
  return true;
}

std::string FormatTs(const google::protobuf::Timestamp& ts) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%E6SZ",
                          absl::FromUnixSeconds(ts.seconds()) + absl::Nanoseconds(ts.nanos()),
                          absl::UTCTimeZone());
}

std::string CsvCell(const std::string& s) {
  if (s.find_first_of(",\"\n\r") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

// The same columns `telemetryctl send` reads, so exports round-trip.
void WriteCsvHeader(std::ostream& out) {
  out << "sensor_id,timestamp,value,sensor_type,unit,quality\n";
}
void WriteCsvRow(std::ostream& out, const v1::StoredReading& r) {
  out << CsvCell(r.sensor_id()) << ',' << FormatTs(r.timestamp()) << ','
      << absl::StrFormat("%.17g", r.value()) << ',' << CsvCell(r.sensor_type()) << ','
      << CsvCell(r.unit()) << ','
      << (r.has_quality() ? absl::StrFormat("%.17g", r.quality()) : std::string()) << '\n';
}

std::shared_ptr<grpc::Channel> Channel() {
  auto channel = telemetry::client::OpenChannelFromFlags(
      FlagOrEnv(FLAGS_read_target, "READ_ADDRESS", "127.0.0.1:50052"));
  if (!channel.ok()) {
    std::cerr << "telemetryctl: " << channel.status() << "\n";
    std::exit(2);
  }
  return *channel;
}

int Latest() {
  v1::LatestReadingsRequest req;
  req.set_sensor_id(absl::GetFlag(FLAGS_sensor));
  req.set_limit(static_cast<uint32_t>(absl::GetFlag(FLAGS_limit)));
  v1::LatestReadingsResponse resp;
  grpc::ClientContext ctx;
  grpc::Status s = v1::QueryService::NewStub(Channel())->LatestReadings(&ctx, req, &resp);
  if (!s.ok()) return Fail("latest", s);
  WriteCsvHeader(std::cout);
  for (const auto& r : resp.readings()) WriteCsvRow(std::cout, r);
  if (resp.truncated()) {
    std::cout.flush();
    std::cerr << "telemetryctl: only the newest " << resp.readings_size()
              << " fit in one response (3 MiB); use `telemetryctl range` for more\n";
  }
  return 0;
}

int Range() {
  v1::ReadingsRangeRequest req;
  req.set_sensor_id(absl::GetFlag(FLAGS_sensor));
  if (!SetTime(absl::GetFlag(FLAGS_start), req.mutable_start()) ||
      !SetTime(absl::GetFlag(FLAGS_end), req.mutable_end())) {
    return FailArg("--start/--end: use RFC 3339, Unix seconds, now, -<duration> or -<n>d");
  }
  std::ofstream file;
  std::ostream* out = &std::cout;
  if (std::string path = absl::GetFlag(FLAGS_output); path != "-") {
    file.open(path);
    if (!file) return FailArg(absl::StrCat("cannot write ", path));
    out = &file;
  }
  grpc::ClientContext ctx;
  auto stream = v1::QueryService::NewStub(Channel())->ReadingsRange(&ctx, req);
  WriteCsvHeader(*out);
  v1::ReadingsRangeChunk chunk;
  uint64_t rows = 0;
  while (stream->Read(&chunk)) {
    for (const auto& r : chunk.readings()) WriteCsvRow(*out, r);
    rows += static_cast<uint64_t>(chunk.readings_size());
  }
  grpc::Status s = stream->Finish();
  if (!s.ok()) {
    std::cerr << "telemetryctl: range stopped after " << rows << " rows; resume with "
              << "--start set past the last exported timestamp\n";
    return Fail("range", s);
  }
  std::cerr << "exported " << rows << " readings\n";
  return 0;
}

int Summary() {
  v1::HourlySummaryRequest req;
  for (absl::string_view id : absl::StrSplit(absl::GetFlag(FLAGS_sensors), ',', absl::SkipEmpty())) {
    req.add_sensor_ids(std::string(id));
  }
  if (!SetTime(absl::GetFlag(FLAGS_start), req.mutable_start()) ||
      !SetTime(absl::GetFlag(FLAGS_end), req.mutable_end())) {
    return FailArg("--start/--end: use RFC 3339, Unix seconds, now, -<duration> or -<n>d");
  }
  v1::HourlySummaryResponse resp;
  grpc::ClientContext ctx;
  grpc::Status s = v1::QueryService::NewStub(Channel())->HourlySummary(&ctx, req, &resp);
  if (!s.ok()) return Fail("summary", s);
  std::cout << "sensor_id,hour,reading_count,avg_value,min_value,max_value,source\n";
  for (const auto& b : resp.buckets()) {
    std::cout << CsvCell(b.sensor_id()) << ',' << FormatTs(b.hour()) << ','
              << b.reading_count() << ',' << absl::StrFormat("%.17g", b.avg_value()) << ','
              << absl::StrFormat("%.17g", b.min_value()) << ','
              << absl::StrFormat("%.17g", b.max_value()) << ','
              << (b.source() == v1::HourlyBucket::SOURCE_MATERIALIZED ? "aggregate" : "raw")
              << '\n';
  }
  std::cout.flush();  // the CSV first, then the note, on a terminal too
  std::cerr << "materialised until " << FormatTs(resp.materialized_until()) << "\n";
  return 0;
}

int Drift() {
  v1::DriftWindowsRequest req;
  req.set_sensor_id(absl::GetFlag(FLAGS_sensor));
  req.set_bins(static_cast<uint32_t>(absl::GetFlag(FLAGS_bins)));
  if (!SetTime(absl::GetFlag(FLAGS_reference_start), req.mutable_reference_start()) ||
      !SetTime(absl::GetFlag(FLAGS_reference_end), req.mutable_reference_end()) ||
      !SetTime(absl::GetFlag(FLAGS_current_start), req.mutable_current_start()) ||
      !SetTime(absl::GetFlag(FLAGS_current_end), req.mutable_current_end())) {
    return FailArg("window bounds: use RFC 3339, Unix seconds, now or -<duration>");
  }
  v1::DriftWindowsResponse resp;
  grpc::ClientContext ctx;
  grpc::Status s = v1::QueryService::NewStub(Channel())->DriftWindows(&ctx, req, &resp);
  if (!s.ok()) return Fail("drift", s);
  for (const auto& [name, w] : {std::pair{"reference", resp.reference()},
                                std::pair{"current", resp.current()}}) {
    std::cout << absl::StrFormat(
        "%-9s count %lld  mean %.6g  stddev %.6g  min %.6g  p50 %.6g  p90 %.6g  p99 %.6g  "
        "max %.6g%s\n",
        name, static_cast<long long>(w.count()), w.mean(), w.stddev(), w.min(), w.p50(),
        w.p90(), w.p99(), w.max(), w.truncated() ? "  (truncated)" : "");
  }
  std::cout << absl::StrFormat("ks_statistic %.6f  ks_p_value %.6g  psi %.6f\n",
                               resp.ks_statistic(), resp.ks_p_value(), resp.psi());
  return 0;
}

int Jobs() {
  v1::ListJobsResponse resp;
  grpc::ClientContext ctx;
  grpc::Status s = v1::AdminService::NewStub(Channel())->ListJobs(&ctx, {}, &resp);
  if (!s.ok()) return Fail("jobs", s);
  std::cout << "storage mode: " << resp.storage_mode() << "\n";
  for (const auto& j : resp.jobs()) {
    std::cout << j.name() << "\n  schedule " << j.schedule() << ", last run "
              << (j.has_last_run_started() ? FormatTs(j.last_run_started()) : "never")
              << (j.last_run_status().empty() ? "" : " (" + j.last_run_status() + ")")
              << ", " << j.total_successes() << " ok / " << j.total_failures()
              << " failed, next " << (j.has_next_start() ? FormatTs(j.next_start()) : "-")
              << "\n";
    if (!j.last_error().empty()) std::cout << "  last error: " << j.last_error() << "\n";
  }
  return 0;
}

int Chunks() {
  v1::ListChunksResponse resp;
  grpc::ClientContext ctx;
  grpc::Status s = v1::AdminService::NewStub(Channel())->ListChunks(&ctx, {}, &resp);
  if (!s.ok()) return Fail("chunks", s);
  std::cout << "name,range_start,range_end,total_bytes,estimated_rows,compressed\n";
  for (const auto& c : resp.chunks()) {
    std::cout << c.name() << ',' << (c.has_range_start() ? FormatTs(c.range_start()) : "")
              << ',' << (c.has_range_end() ? FormatTs(c.range_end()) : "") << ','
              << c.total_bytes() << ',' << c.estimated_rows() << ','
              << (c.compressed() ? "yes" : "no") << '\n';
  }
  std::cerr << resp.chunks_size() << " chunks, " << resp.total_bytes() << " bytes"
            << (resp.compression_ratio() > 0
                    ? absl::StrFormat(", compression ratio %.3f", resp.compression_ratio())
                    : "")
            << "\n";
  return 0;
}

int Refresh() {
  v1::RefreshAggregateRequest req;
  if (!absl::GetFlag(FLAGS_all) &&
      (!SetTime(absl::GetFlag(FLAGS_start), req.mutable_start()) ||
       !SetTime(absl::GetFlag(FLAGS_end), req.mutable_end()))) {
    return FailArg("--start/--end: use RFC 3339, Unix seconds, now, -<duration> or -<n>d");
  }
  v1::RefreshAggregateResponse resp;
  grpc::ClientContext ctx;
  grpc::Status s = v1::AdminService::NewStub(Channel())->RefreshAggregate(&ctx, req, &resp);
  if (!s.ok()) return Fail("refresh", s);
  std::cout << "refreshed " << resp.hours_refreshed() << " hours in "
            << absl::StrFormat("%.3f", resp.seconds()) << " s\n";
  return 0;
}

// Runs retention or compression now (AdminService), e.g. after an alert
// says it is behind.
int RunLifecycle(bool compression) {
  v1::RunLifecycleRequest req;
  v1::RunLifecycleResponse resp;
  grpc::ClientContext ctx;
  auto stub = v1::AdminService::NewStub(Channel());
  grpc::Status s = compression ? stub->RunCompression(&ctx, req, &resp)
                               : stub->RunRetention(&ctx, req, &resp);
  if (!s.ok()) return Fail(compression ? "compress" : "retention", s);
  std::cout << resp.summary() << "\n";
  return 0;
}

}  // namespace

const char kReadCommandsUsage[] = R"(
Read service commands (READ_ADDRESS, default 127.0.0.1:50052):
  latest --sensor=S [--limit=N]            newest readings, as CSV
  range [--sensor=S] --start=T --end=T [--output=F]
                                           export as CSV (the format send reads)
  summary --sensors=A,B --start=T --end=T  hourly statistics, with their source
  drift --sensor=S [--reference_start=T --reference_end=T
        --current_start=T --current_end=T --bins=N]
                                           window statistics, KS and PSI
  jobs                                     background jobs and their health
  chunks                                   partitions/chunks, sizes, compression
  refresh [--start=T --end=T | --all]      re-materialise the hourly aggregate
  retention                                drop data past the retention window now
  compress                                 compress chunks due for it now (timescale)
Times: RFC 3339, Unix seconds, now, or a negative offset such as -2h.)";

int RunReadCommand(const std::string& command) {
  if (command == "latest") return Latest();
  if (command == "range") return Range();
  if (command == "summary") return Summary();
  if (command == "drift") return Drift();
  if (command == "jobs") return Jobs();
  if (command == "chunks") return Chunks();
  if (command == "refresh") return Refresh();
  if (command == "retention") return RunLifecycle(/*compression=*/false);
  if (command == "compress") return RunLifecycle(/*compression=*/true);
  return -1;
}

}  // namespace telemetry::client
