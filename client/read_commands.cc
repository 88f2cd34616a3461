// telemetryctl's read-service commands. Rows go to stdout in the chosen
// format (-o); notes and errors go to stderr.
#include "client/read_commands.h"

#include <google/protobuf/util/json_util.h>
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>

#include "absl/flags/declare.h"
#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "client/channel_flags.h"
#include "client/connect_check.h"
#include "client/progress.h"
#include "client/time_args.h"
#include "server/common/flags_env.h"
#include "telemetry/v1/query.grpc.pb.h"

ABSL_FLAG(std::string, read_target, "",
          "read service address (env READ_ADDRESS; default 127.0.0.1:50052)");
ABSL_FLAG(std::string, sensor, "", "sensor id");
ABSL_FLAG(std::string, sensors, "",
          "comma-separated sensor ids (summary); sensor patterns, '*' for all (device add)");
ABSL_FLAG(std::string, start, "-24h", "window start (now, -7d, 2026-12-01, RFC 3339, ...)");
ABSL_FLAG(std::string, end, "now", "window end, same forms as --start");
ABSL_FLAG(int, limit, 100, "how many rows at most: readings (latest, newest first) or records "
          "(list commands)");
ABSL_FLAG(std::string, reference_start, "-48h", "reference window start");
ABSL_FLAG(std::string, reference_end, "-24h", "reference window end");
ABSL_FLAG(std::string, current_start, "-24h", "current window start");
ABSL_FLAG(std::string, current_end, "now", "current window end");
ABSL_FLAG(int, bins, 10, "PSI bins");
ABSL_FLAG(bool, all, false, "the whole history instead of --start/--end");
ABSL_DECLARE_FLAG(std::string, file);  // telemetryctl.cc: range writes it

namespace telemetry::client {
namespace {

namespace v1 = telemetry::v1;

int Fail(absl::string_view what, const grpc::Status& s) {
  std::cerr << "telemetryctl: " << what << ": " << DescribeStatus(s) << "\n";
  return 1;
}

int FailArg(absl::string_view message) {
  std::cerr << "telemetryctl: " << message << "\n";
  return 2;
}

absl::Time ToTime(const google::protobuf::Timestamp& ts) {
  return absl::FromUnixSeconds(ts.seconds()) + absl::Nanoseconds(ts.nanos());
}
std::string FormatTs(const google::protobuf::Timestamp& ts) { return FormatRfc3339(ToTime(ts)); }
Cell TsCell(bool present, const google::protobuf::Timestamp& ts) {
  return present ? Cell(FormatTs(ts)) : std::nullopt;
}

// Both ends of a window from their flags, start before end; the error
// names the flags. Checked before anything is written or called.
absl::Status ParseWindow(const std::string& start_flag, const std::string& start_arg,
                         const std::string& end_flag, const std::string& end_arg,
                         google::protobuf::Timestamp* start, google::protobuf::Timestamp* end) {
  const absl::Time now = absl::FromUnixMicros(absl::ToUnixMicros(absl::Now()));  // as stored
  auto s = ParseTimeArg(start_arg, now);
  if (!s.ok()) return absl::InvalidArgumentError(absl::StrCat("--", start_flag, ": ", s.status().message()));
  auto e = ParseTimeArg(end_arg, now);
  if (!e.ok()) return absl::InvalidArgumentError(absl::StrCat("--", end_flag, ": ", e.status().message()));
  if (*s >= *e) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--", start_flag, " (", FormatRfc3339(*s), ") is not before --", end_flag, " (",
        FormatRfc3339(*e), ")"));
  }
  SetTimestamp(*s, start);
  SetTimestamp(*e, end);
  return absl::OkStatus();
}

}  // namespace

void SetTimestamp(absl::Time t, google::protobuf::Timestamp* ts) {
  // Floor division: a Timestamp's nanos are never negative, before 1970 too.
  int64_t us = absl::ToUnixMicros(t);
  int64_t seconds = us / 1'000'000, micros = us % 1'000'000;
  if (micros < 0) {
    micros += 1'000'000;
    --seconds;
  }
  ts->set_seconds(seconds);
  ts->set_nanos(static_cast<int32_t>(micros * 1000));
}

// The channel to the read service, after checking it can be reached (the
// command fails at once, saying why, rather than at its deadline).
std::shared_ptr<grpc::Channel> ReadServiceChannel(const CommandContext& context) {
  const std::string target = FlagOrEnv(FLAGS_read_target, "READ_ADDRESS", "127.0.0.1:50052");
  auto channel = OpenChannelFromFlags(target);
  if (!channel.ok()) {
    std::cerr << "telemetryctl: " << channel.status().message() << "\n";
    std::exit(2);
  }
  if (absl::Status s = CheckReachable(*channel, target, context.connect_timeout); !s.ok()) {
    std::cerr << "telemetryctl: " << s.message() << "\n";
    std::exit(1);
  }
  return *channel;
}

namespace {

std::shared_ptr<grpc::Channel> Channel(const CommandContext& context) {
  return ReadServiceChannel(context);
}

// JSON of a Struct with its keys sorted, so that an export is the same text
// every time (protobuf's printer follows the map's order, which is not).
void AppendJson(const google::protobuf::Value& v, std::string* out);
void AppendJson(const google::protobuf::Struct& s, std::string* out) {
  std::vector<const std::string*> keys;
  for (const auto& [key, value] : s.fields()) keys.push_back(&key);
  std::sort(keys.begin(), keys.end(), [](auto* a, auto* b) { return *a < *b; });
  out->push_back('{');
  for (size_t i = 0; i < keys.size(); ++i) {
    if (i > 0) out->push_back(',');
    absl::StrAppend(out, JsonQuote(*keys[i]), ":");
    AppendJson(s.fields().at(*keys[i]), out);
  }
  out->push_back('}');
}
void AppendJson(const google::protobuf::Value& v, std::string* out) {
  switch (v.kind_case()) {
    case google::protobuf::Value::kNumberValue:
      absl::StrAppend(out, std::isfinite(v.number_value()) ? FormatDouble(v.number_value())
                                                           : std::string("null"));
      return;
    case google::protobuf::Value::kStringValue:
      absl::StrAppend(out, JsonQuote(v.string_value()));
      return;
    case google::protobuf::Value::kBoolValue:
      absl::StrAppend(out, v.bool_value() ? "true" : "false");
      return;
    case google::protobuf::Value::kStructValue:
      AppendJson(v.struct_value(), out);
      return;
    case google::protobuf::Value::kListValue:
      out->push_back('[');
      for (int i = 0; i < v.list_value().values_size(); ++i) {
        if (i > 0) out->push_back(',');
        AppendJson(v.list_value().values(i), out);
      }
      out->push_back(']');
      return;
    default:
      absl::StrAppend(out, "null");
  }
}

// The columns `telemetryctl send` reads, so that an export reads back
// losslessly: shortest round-trip numbers, microsecond timestamps, metadata
// as a JSON object.
std::vector<Column> ReadingColumns() {
  return {{"sensor_id"},
          {"timestamp"},
          {"value", CellKind::kNumber},
          {"sensor_type"},
          {"unit"},
          {"quality", CellKind::kNumber},
          {"metadata", CellKind::kJson}};
}
std::vector<Cell> ReadingCells(const v1::StoredReading& r) {
  Cell metadata;
  if (r.has_metadata()) {
    std::string json;
    AppendJson(r.metadata(), &json);
    metadata = std::move(json);
  }
  auto text = [](const std::string& s) { return s.empty() ? Cell() : Cell(s); };
  return {r.sensor_id(),
          FormatTs(r.timestamp()),
          FormatDouble(r.value()),
          text(r.sensor_type()),
          text(r.unit()),
          r.has_quality() ? Cell(FormatDouble(r.quality())) : std::nullopt,
          metadata};
}

int Latest(const CommandContext& context) {
  if (absl::GetFlag(FLAGS_sensor).empty()) return FailArg("latest needs --sensor");
  v1::LatestReadingsRequest req;
  req.set_sensor_id(absl::GetFlag(FLAGS_sensor));
  req.set_limit(static_cast<uint32_t>(absl::GetFlag(FLAGS_limit)));
  v1::LatestReadingsResponse resp;
  grpc::ClientContext ctx;
  grpc::Status s = v1::QueryService::NewStub(Channel(context))->LatestReadings(&ctx, req, &resp);
  if (!s.ok()) return Fail("latest", s);
  auto out = RowWriter::Create(context.format, ReadingColumns(), &std::cout);
  for (const auto& r : resp.readings()) out->Row(ReadingCells(r));
  out->Finish();
  if (resp.truncated()) {
    std::cerr << "telemetryctl: only the newest " << resp.readings_size()
              << " fit in one response (3 MiB); use `telemetryctl range` for more\n";
  }
  return 0;
}

int Range(const CommandContext& context) {
  v1::ReadingsRangeRequest req;
  req.set_sensor_id(absl::GetFlag(FLAGS_sensor));
  if (absl::Status s = ParseWindow("start", absl::GetFlag(FLAGS_start), "end",
                                   absl::GetFlag(FLAGS_end), req.mutable_start(),
                                   req.mutable_end());
      !s.ok()) {
    return FailArg(s.message());
  }
  auto channel = Channel(context);
  std::ofstream file;
  std::ostream* stream_out = &std::cout;
  if (std::string path = absl::GetFlag(FLAGS_file); path != "-") {
    file.open(path);
    if (!file) return FailArg(absl::StrCat("cannot write ", path));
    stream_out = &file;
  }
  grpc::ClientContext ctx;
  auto stream = v1::QueryService::NewStub(channel)->ReadingsRange(&ctx, req);
  // A file gets CSV (what send reads back) unless -o says otherwise: the
  // terminal's table default is for the screen.
  const OutputFormat format =
      stream_out != &std::cout && !context.format_given ? OutputFormat::kCsv : context.format;
  auto out = RowWriter::Create(format, ReadingColumns(), stream_out);
  // Rows come in timestamp order: how far into the window the last one is
  // is how far the export has come.
  ProgressLine progress("exported", "", context.progress && stream_out != &std::cout);
  const absl::Time start = ToTime(req.start());
  const double span = absl::ToDoubleSeconds(ToTime(req.end()) - start);
  v1::ReadingsRangeChunk chunk;
  uint64_t rows = 0;
  std::string last_ts;
  while (stream->Read(&chunk)) {
    for (const auto& r : chunk.readings()) out->Row(ReadingCells(r));
    rows += static_cast<uint64_t>(chunk.readings_size());
    progress.Add(static_cast<uint64_t>(chunk.readings_size()));
    if (chunk.readings_size() > 0) {
      const auto& ts = chunk.readings(chunk.readings_size() - 1).timestamp();
      last_ts = FormatTs(ts);
      progress.SetFraction(absl::ToDoubleSeconds(ToTime(ts) - start) / span);
    }
  }
  grpc::Status s = stream->Finish();
  out->Finish();
  progress.Stop();
  if (file.is_open()) file.close();
  if (!*stream_out) {
    std::cerr << "telemetryctl: writing the export failed after " << rows
              << " rows (disk full?); the file is incomplete\n";
    return 1;
  }
  if (!s.ok()) {
    std::cerr << "telemetryctl: range stopped after " << rows << " rows"
              << (last_ts.empty() ? "" : absl::StrCat("; resume with --start=", last_ts,
                                                      " (the readings at that instant "
                                                      "come again; send drops them as "
                                                      "duplicates)"))
              << "\n";
    return Fail("range", s);
  }
  std::cerr << "exported " << rows << " readings\n";
  return 0;
}

int Summary(const CommandContext& context) {
  v1::HourlySummaryRequest req;
  for (absl::string_view id : absl::StrSplit(absl::GetFlag(FLAGS_sensors), ',', absl::SkipEmpty())) {
    req.add_sensor_ids(std::string(id));
  }
  if (req.sensor_ids_size() == 0) return FailArg("summary needs --sensors=A[,B...]");
  if (absl::Status s = ParseWindow("start", absl::GetFlag(FLAGS_start), "end",
                                   absl::GetFlag(FLAGS_end), req.mutable_start(),
                                   req.mutable_end());
      !s.ok()) {
    return FailArg(s.message());
  }
  v1::HourlySummaryResponse resp;
  grpc::ClientContext ctx;
  grpc::Status s = v1::QueryService::NewStub(Channel(context))->HourlySummary(&ctx, req, &resp);
  if (!s.ok()) return Fail("summary", s);
  auto out = RowWriter::Create(context.format,
                               {{"sensor_id"},
                                {"hour"},
                                {"reading_count", CellKind::kNumber},
                                {"avg_value", CellKind::kNumber},
                                {"min_value", CellKind::kNumber},
                                {"max_value", CellKind::kNumber},
                                {"source"}},
                               &std::cout);
  for (const auto& b : resp.buckets()) {
    out->Row({b.sensor_id(), FormatTs(b.hour()), absl::StrCat(b.reading_count()),
              FormatDouble(b.avg_value()), FormatDouble(b.min_value()),
              FormatDouble(b.max_value()),
              b.source() == v1::HourlyBucket::SOURCE_MATERIALIZED ? "aggregate" : "raw"});
  }
  out->Finish();
  std::cerr << "materialised until " << FormatTs(resp.materialized_until()) << "\n";
  return 0;
}

int Drift(const CommandContext& context) {
  if (absl::GetFlag(FLAGS_sensor).empty()) return FailArg("drift needs --sensor");
  v1::DriftWindowsRequest req;
  req.set_sensor_id(absl::GetFlag(FLAGS_sensor));
  req.set_bins(static_cast<uint32_t>(absl::GetFlag(FLAGS_bins)));
  for (absl::Status s :
       {ParseWindow("reference_start", absl::GetFlag(FLAGS_reference_start), "reference_end",
                    absl::GetFlag(FLAGS_reference_end), req.mutable_reference_start(),
                    req.mutable_reference_end()),
        ParseWindow("current_start", absl::GetFlag(FLAGS_current_start), "current_end",
                    absl::GetFlag(FLAGS_current_end), req.mutable_current_start(),
                    req.mutable_current_end())}) {
    if (!s.ok()) return FailArg(s.message());
  }
  v1::DriftWindowsResponse resp;
  grpc::ClientContext ctx;
  grpc::Status s = v1::QueryService::NewStub(Channel(context))->DriftWindows(&ctx, req, &resp);
  if (!s.ok()) return Fail("drift", s);
  if (context.format == OutputFormat::kJson) {  // the API's own object
    std::string json;
    google::protobuf::util::JsonPrintOptions options;
    options.add_whitespace = true;
    options.always_print_primitive_fields = true;
    options.preserve_proto_field_names = true;
    (void)google::protobuf::util::MessageToJsonString(resp, &json, options);
    std::cout << json;
    return 0;
  }
  auto out = RowWriter::Create(
      context.format,
      {{"window"}, {"count", CellKind::kNumber}, {"mean", CellKind::kNumber},
       {"stddev", CellKind::kNumber}, {"min", CellKind::kNumber}, {"p50", CellKind::kNumber},
       {"p90", CellKind::kNumber}, {"p99", CellKind::kNumber}, {"max", CellKind::kNumber},
       {"truncated", CellKind::kBool}},
      &std::cout);
  for (const auto& [name, w] : {std::pair{"reference", resp.reference()},
                                std::pair{"current", resp.current()}}) {
    out->Row({name, absl::StrCat(w.count()), FormatDouble(w.mean()), FormatDouble(w.stddev()),
              FormatDouble(w.min()), FormatDouble(w.p50()), FormatDouble(w.p90()),
              FormatDouble(w.p99()), FormatDouble(w.max()), w.truncated() ? "true" : "false"});
  }
  out->Finish();
  std::cerr << "ks_statistic " << FormatDouble(resp.ks_statistic()) << "  ks_p_value "
            << FormatDouble(resp.ks_p_value()) << "  psi " << FormatDouble(resp.psi()) << "\n";
  return 0;
}

int Jobs(const CommandContext& context) {
  v1::ListJobsResponse resp;
  grpc::ClientContext ctx;
  grpc::Status s = v1::AdminService::NewStub(Channel(context))->ListJobs(&ctx, {}, &resp);
  if (!s.ok()) return Fail("jobs", s);
  std::cerr << "storage mode: " << resp.storage_mode() << "\n";
  auto out = RowWriter::Create(context.format,
                               {{"name"},
                                {"schedule"},
                                {"last_run"},
                                {"last_status"},
                                {"last_seconds", CellKind::kNumber},
                                {"successes", CellKind::kNumber},
                                {"failures", CellKind::kNumber},
                                {"next_run"},
                                {"last_error"}},
                               &std::cout);
  for (const auto& j : resp.jobs()) {
    out->Row({j.name(), j.schedule(), TsCell(j.has_last_run_started(), j.last_run_started()),
              j.last_run_status().empty() ? Cell() : Cell(j.last_run_status()),
              j.has_last_run_started() ? Cell(FormatDouble(j.last_run_seconds())) : Cell(),
              absl::StrCat(j.total_successes()), absl::StrCat(j.total_failures()),
              TsCell(j.has_next_start(), j.next_start()),
              j.last_error().empty() ? Cell() : Cell(j.last_error())});
  }
  out->Finish();
  return 0;
}

int Chunks(const CommandContext& context) {
  v1::ListChunksResponse resp;
  grpc::ClientContext ctx;
  grpc::Status s = v1::AdminService::NewStub(Channel(context))->ListChunks(&ctx, {}, &resp);
  if (!s.ok()) return Fail("chunks", s);
  auto out = RowWriter::Create(context.format,
                               {{"name"},
                                {"range_start"},
                                {"range_end"},
                                {"total_bytes", CellKind::kBytes},
                                {"estimated_rows", CellKind::kNumber},
                                {"compressed", CellKind::kBool}},
                               &std::cout);
  for (const auto& c : resp.chunks()) {
    out->Row({c.name(), TsCell(c.has_range_start(), c.range_start()),
              TsCell(c.has_range_end(), c.range_end()), absl::StrCat(c.total_bytes()),
              absl::StrCat(c.estimated_rows()), c.compressed() ? "true" : "false"});
  }
  out->Finish();
  std::cerr << resp.chunks_size() << " chunks, " << HumanBytes(static_cast<uint64_t>(resp.total_bytes()))
            << (resp.compression_ratio() > 0
                    ? absl::StrCat(", compression ratio ", FormatDouble(resp.compression_ratio()))
                    : std::string(", nothing compressed"))
            << "\n";
  return 0;
}

int Refresh(const CommandContext& context) {
  v1::RefreshAggregateRequest req;
  if (!absl::GetFlag(FLAGS_all)) {
    if (absl::Status s = ParseWindow("start", absl::GetFlag(FLAGS_start), "end",
                                     absl::GetFlag(FLAGS_end), req.mutable_start(),
                                     req.mutable_end());
        !s.ok()) {
      return FailArg(s.message());
    }
  }
  v1::RefreshAggregateResponse resp;
  grpc::ClientContext ctx;
  grpc::Status s = v1::AdminService::NewStub(Channel(context))->RefreshAggregate(&ctx, req, &resp);
  if (!s.ok()) return Fail("refresh", s);
  std::cout << "refreshed " << resp.hours_refreshed() << " hours in "
            << absl::StrFormat("%.3f", resp.seconds()) << " s\n";
  return 0;
}

// Runs retention or compression now (AdminService), e.g. after an alert
// says it is behind.
int RunLifecycle(bool compression, const CommandContext& context) {
  v1::RunLifecycleRequest req;
  v1::RunLifecycleResponse resp;
  grpc::ClientContext ctx;
  auto stub = v1::AdminService::NewStub(Channel(context));
  grpc::Status s = compression ? stub->RunCompression(&ctx, req, &resp)
                               : stub->RunRetention(&ctx, req, &resp);
  if (!s.ok()) return Fail(compression ? "compress" : "retention", s);
  std::cout << resp.summary() << "\n";
  return 0;
}

}  // namespace

int RunReadCommand(const std::string& command, const CommandContext& context) {
  if (command == "latest") return Latest(context);
  if (command == "range") return Range(context);
  if (command == "summary") return Summary(context);
  if (command == "drift") return Drift(context);
  if (command == "jobs") return Jobs(context);
  if (command == "chunks") return Chunks(context);
  if (command == "refresh") return Refresh(context);
  if (command == "retention") return RunLifecycle(/*compression=*/false, context);
  if (command == "compress") return RunLifecycle(/*compression=*/true, context);
  return -1;
}

}  // namespace telemetry::client
