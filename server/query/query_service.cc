#include "server/query/query_service.h"

#include <algorithm>
#include <cstdlib>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "server/common/text_checks.h"
#include "server/query/drift_stats.h"
#include "server/query/replica_lag.h"
#include "server/query/sql_values.h"

namespace telemetry::query {
namespace {

using telemetry::v1::StoredReading;

constexpr uint32_t kDefaultLatest = 100, kMaxLatest = 10'000;
constexpr uint32_t kDefaultChunk = 5'000, kMaxChunk = 50'000;
constexpr int kMaxSummarySensors = 1'000;
constexpr int64_t kMaxSummaryRangeUs = 366LL * 86'400 * 1'000'000;
constexpr uint32_t kDefaultDriftPoints = 100'000, kMaxDriftPoints = 1'000'000;
constexpr int64_t kHourUs = 3'600LL * 1'000'000;
// Every response message stays under this many bytes: every gRPC client's
// default receive limit is 4 MiB, and a reading's metadata may be 16 KiB.
constexpr size_t kMaxResponseBytes = 3 << 20;
// Bytes `reading` adds to a message as one repeated field (tag + length).
size_t EncodedSize(const StoredReading& reading) { return reading.ByteSizeLong() + 6; }

// Columns of StoredReading, in ReadingFromRow's order; fetched in binary
// format (QueryBinary).
const std::string& ReadingColumns() {
  static const std::string* kColumns = new std::string(
      "sensor_id, \"timestamp\", sensor_type, value, unit, quality, sensor_metadata, id");
  return *kColumns;
}

absl::Status ReadingFromRow(const pg::Result& r, int row, StoredReading* out) {
  out->set_sensor_id(std::string(r.Get(row, 0)));
  SetFromMicros(r.GetTimestampMicros(row, 1), out->mutable_timestamp());
  if (!r.IsNull(row, 2)) out->set_sensor_type(std::string(r.Get(row, 2)));
  out->set_value(r.GetDouble(row, 3));
  if (!r.IsNull(row, 4)) out->set_unit(std::string(r.Get(row, 4)));
  if (!r.IsNull(row, 5)) out->set_quality(r.GetDouble(row, 5));
  if (!r.IsNull(row, 6)) {
    absl::StatusOr<google::protobuf::Struct> md = JsonToStruct(r.GetJsonText(row, 6));
    if (!md.ok()) return md.status();
    *out->mutable_metadata() = *std::move(md);
  }
  out->set_id(r.GetInt(row, 7));
  return absl::OkStatus();
}

absl::Status RequireSensorId(const std::string& id) {
  std::string why = CheckText(id, "sensor_id", kMaxIdBytes, /*required=*/true);
  return why.empty() ? absl::OkStatus() : absl::InvalidArgumentError(why);
}

int64_t FloorHour(int64_t us) {
  int64_t h = us / kHourUs * kHourUs;
  return h > us ? h - kHourUs : h;
}
int64_t CeilHour(int64_t us) {
  int64_t f = FloorHour(us);
  return f == us ? us : f + kHourUs;
}

const std::string& SensorColumns() {
  static const std::string* kColumns = new std::string(absl::StrCat(
      "sensor_id, type, coalesce(location, ''), status, ",
      TimestampToMicrosSql("created_at"), ", ", TimestampToMicrosSql("updated_at")));
  return *kColumns;
}

void SensorFromRow(const pg::Result& r, int row, telemetry::v1::Sensor* s) {
  s->set_sensor_id(std::string(r.Get(row, 0)));
  s->set_type(std::string(r.Get(row, 1)));
  s->set_location(std::string(r.Get(row, 2)));
  s->set_status(std::string(r.Get(row, 3)));
  SetFromMicros(r.GetInt(row, 4), s->mutable_created_at());
  SetFromMicros(r.GetInt(row, 5), s->mutable_updated_at());
}

}  // namespace

std::vector<std::optional<absl::Time>> LatestReadingsWindows(absl::Time now) {
  const absl::Time today = absl::FromUnixSeconds(absl::ToUnixSeconds(now) / 86'400 * 86'400);
  // Since yesterday's start (one to two days: a sensor reporting more often
  // than every 15 minutes has 100 readings there), then a month, then all.
  return {today - absl::Hours(24), today - absl::Hours(24 * 31), std::nullopt};
}

std::string LatestReadingsSql(uint32_t limit, std::optional<absl::Time> since) {
  std::string bound;
  if (since) {
    bound = absl::StrCat(" AND \"timestamp\" >= '",
                         absl::FormatTime("%Y-%m-%d %H:%M:%S+00", *since, absl::UTCTimeZone()),
                         "'");
  }
  return absl::StrCat("SELECT ", ReadingColumns(),
                      " FROM sensor_readings WHERE sensor_id = $1", bound,
                      " ORDER BY \"timestamp\" DESC LIMIT ", limit);
}

grpc::Status QueryServiceImpl::LatestReadings(
    grpc::ServerContext* context, const telemetry::v1::LatestReadingsRequest* request,
    telemetry::v1::LatestReadingsResponse* response) {
  RpcScope scope(ctx_, *context, "LatestReadings");
  if (absl::Status auth = Authorize(ctx_, *context, ApiScope::kRead); !auth.ok()) {
    return scope.Done(auth);
  }
  if (absl::Status s = RequireSensorId(request->sensor_id()); !s.ok()) {
    return scope.Done(s);
  }
  uint32_t limit = request->limit() == 0 ? kDefaultLatest : request->limit();
  if (limit > kMaxLatest) {
    return scope.Done(absl::InvalidArgumentError(
        absl::StrCat("limit is ", limit, "; at most ", kMaxLatest)));
  }
  auto conn = ctx_.reader->Acquire();
  if (!conn.ok()) return scope.Done(conn.status());
  // The hottest call: prepared once per connection (and window) so it is
  // bound and run, not parsed and planned each time; the window's literal
  // bound keeps old partitions out of that plan (LatestReadingsWindows).
  // The limit is a validated literal, not a parameter: with `LIMIT $2`
  // PostgreSQL costs the generic plan for an unknown row count and keeps
  // re-planning (measured: 4,633 qps with the parameter vs 5,658 with a
  // generic plan).
  absl::StatusOr<pg::Result> r;
  for (const std::optional<absl::Time>& since : LatestReadingsWindows(absl::Now())) {
    r = (*conn)->QueryPrepared(LatestReadingsSql(limit, since), {request->sensor_id()});
    if (!r.ok()) return scope.Done(r.status());
    if (static_cast<uint32_t>(r->rows()) >= limit) break;  // the newest of all
  }
  size_t bytes = 0;
  for (int i = 0; i < r->rows(); ++i) {
    StoredReading reading;
    if (absl::Status s = ReadingFromRow(*r, i, &reading); !s.ok()) return scope.Done(s);
    bytes += EncodedSize(reading);
    if (bytes > kMaxResponseBytes && response->readings_size() > 0) {
      response->set_truncated(true);  // the newest that fit; the rest by ReadingsRange
      break;
    }
    *response->add_readings() = std::move(reading);
  }
  return scope.Done(absl::OkStatus());
}

grpc::Status QueryServiceImpl::ReadingsRange(
    grpc::ServerContext* context, const telemetry::v1::ReadingsRangeRequest* request,
    grpc::ServerWriter<telemetry::v1::ReadingsRangeChunk>* writer) {
  RpcScope scope(ctx_, *context, "ReadingsRange");
  if (absl::Status auth = Authorize(ctx_, *context, ApiScope::kRead); !auth.ok()) {
    return scope.Done(auth);
  }
  auto lo = RequiredMicros(&request->start(), request->has_start(), "start");
  if (!lo.ok()) return scope.Done(lo.status());
  auto hi = RequiredMicros(&request->end(), request->has_end(), "end");
  if (!hi.ok()) return scope.Done(hi.status());
  if (*lo >= *hi) return scope.Done(absl::InvalidArgumentError("start must be before end"));
  uint32_t chunk = request->chunk_size() == 0 ? kDefaultChunk : request->chunk_size();
  if (chunk > kMaxChunk) {
    return scope.Done(absl::InvalidArgumentError(
        absl::StrCat("chunk_size is ", chunk, "; at most ", kMaxChunk)));
  }
  // Position: strictly after (cursor_us, cursor_sensor).
  int64_t cursor_us = *lo - 1;
  std::string cursor_sensor;
  if (!request->cursor().empty()) {
    auto parts = DecodeToken(request->cursor(), 2);
    if (!parts.ok()) return scope.Done(parts.status());
    if (!absl::SimpleAtoi((*parts)[0], &cursor_us)) {
      return scope.Done(absl::InvalidArgumentError("malformed cursor"));
    }
    cursor_sensor = (*parts)[1];
  }
  const bool one_sensor = !request->sensor_id().empty();
  // Keyset pagination on the primary key (timestamp, sensor_id): each chunk
  // is an index range scan that starts where the previous one ended.
  const std::string sql =
      one_sensor
          ? absl::StrCat("SELECT ", ReadingColumns(),
                         " FROM sensor_readings WHERE sensor_id = $4 AND \"timestamp\" < ",
                         MicrosToTimestampSql(2), " AND \"timestamp\" > ",
                         MicrosToTimestampSql(1),
                         " ORDER BY \"timestamp\" LIMIT $3::int")
          : absl::StrCat("SELECT ", ReadingColumns(),
                         " FROM sensor_readings WHERE \"timestamp\" < ", MicrosToTimestampSql(2),
                         " AND (\"timestamp\", sensor_id) > (", MicrosToTimestampSql(1),
                         ", $4) ORDER BY \"timestamp\", sensor_id LIMIT $3::int");
  auto conn = ctx_.reader->Acquire();
  if (!conn.ok()) return scope.Done(conn.status());
  while (true) {
    if (context->IsCancelled()) return scope.Done(absl::CancelledError("client went away"));
    auto r = (*conn)->QueryBinary(sql, {std::to_string(cursor_us), std::to_string(*hi),
                                  std::to_string(chunk),
                                  one_sensor ? request->sensor_id() : cursor_sensor});
    if (!r.ok()) return scope.Done(r.status());
    if (r->rows() == 0) break;
    // One message per chunk_size rows, or fewer when they would pass
    // kMaxResponseBytes; each with the cursor after its own last reading.
    telemetry::v1::ReadingsRangeChunk out;
    size_t bytes = 0;
    auto send = [&]() {
      const StoredReading& last = out.readings(out.readings_size() - 1);
      cursor_us = ToMicros(last.timestamp());
      cursor_sensor = last.sensor_id();
      out.set_cursor(EncodeToken({std::to_string(cursor_us), cursor_sensor}));
      const bool sent = writer->Write(out);
      out.Clear();
      bytes = 0;
      return sent;
    };
    for (int i = 0; i < r->rows(); ++i) {
      StoredReading reading;
      if (absl::Status s = ReadingFromRow(*r, i, &reading); !s.ok()) return scope.Done(s);
      const size_t size = EncodedSize(reading);
      if (bytes + size > kMaxResponseBytes && out.readings_size() > 0 && !send()) {
        return scope.Done(absl::CancelledError("client went away"));
      }
      bytes += size;
      *out.add_readings() = std::move(reading);
    }
    if (out.readings_size() > 0 && !send()) {
      return scope.Done(absl::CancelledError("client went away"));
    }
    if (r->rows() < static_cast<int>(chunk)) break;
  }
  return scope.Done(absl::OkStatus());
}

grpc::Status QueryServiceImpl::HourlySummary(
    grpc::ServerContext* context, const telemetry::v1::HourlySummaryRequest* request,
    telemetry::v1::HourlySummaryResponse* response) {
  RpcScope scope(ctx_, *context, "HourlySummary");
  if (absl::Status auth = Authorize(ctx_, *context, ApiScope::kRead); !auth.ok()) {
    return scope.Done(auth);
  }
  if (request->sensor_ids_size() == 0 || request->sensor_ids_size() > kMaxSummarySensors) {
    return scope.Done(absl::InvalidArgumentError(
        absl::StrCat("sensor_ids must name 1 to ", kMaxSummarySensors, " sensors")));
  }
  auto start = RequiredMicros(&request->start(), request->has_start(), "start");
  if (!start.ok()) return scope.Done(start.status());
  auto end = RequiredMicros(&request->end(), request->has_end(), "end");
  if (!end.ok()) return scope.Done(end.status());
  int64_t lo = FloorHour(*start), hi = CeilHour(*end);
  if (lo >= hi) return scope.Done(absl::InvalidArgumentError("start must be before end"));
  if (hi - lo > kMaxSummaryRangeUs) {
    return scope.Done(absl::InvalidArgumentError("the range may span at most 366 days"));
  }
  std::vector<std::string> ids(request->sensor_ids().begin(), request->sensor_ids().end());

  auto conn = ctx_.reader->Acquire();
  if (!conn.ok()) return scope.Done(conn.status());
  // A standby says how stale its answer may be, and reads the watermark
  // itself: a cached one may come from a server that has replayed more, and
  // hours it calls materialised could still be missing from this one's
  // aggregate. (A primary may use any cached value: none is newer than its
  // own.)
  const std::optional<bool> reported = OnHotStandby(**conn);
  bool standby = reported.value_or(false);
  if (!reported.has_value() || *reported) {
    auto lag = ReadReplicaLag(**conn);
    if (!lag.ok()) return scope.Done(lag.status());
    standby = lag->standby;
    if (lag->standby && lag->lag.has_value()) {
      const int64_t us = absl::ToInt64Microseconds(*lag->lag);
      response->mutable_replica_lag()->set_seconds(us / 1'000'000);
      response->mutable_replica_lag()->set_nanos(static_cast<int32_t>(us % 1'000'000) * 1000);
    } else if (lag->standby) {
      response->set_replica_lag_unknown(true);
    }
  }
  // The watermark: hours before it are materialised.
  auto wm = Watermark(**conn, /*may_use_cached=*/!standby);
  if (!wm.ok()) return scope.Done(wm.status());
  // Clamped to the request: [lo, watermark) materialised, [watermark, hi) raw.
  const int64_t watermark = std::clamp(*wm, lo, hi);
  SetFromMicros(watermark, response->mutable_materialized_until());

  struct Bucket {
    std::string sensor_id;
    int64_t hour_us;
    double avg, max, min;
    int64_t count;
    bool materialized;
  };
  std::vector<Bucket> buckets;
  std::vector<std::pair<int64_t, int64_t>> stale;  // [from, to) to compute raw
  const std::string ids_param = ToTextArray(ids);
  if (watermark > lo) {
    // One round trip: the materialised buckets, minus the ranges the
    // aggregate holds wrongly or not at all, and those ranges themselves,
    // to be computed raw below. Each mode answers from its own bookkeeping
    // (native: the hours written since they were materialised;
    // TimescaleDB: its invalidation logs, which also name the hours no
    // refresh ever covered), behind one function (migrations 0010, 0012).
    const std::string inv = "SELECT range_start, range_end FROM telemetry_summary_stale_ranges(" +
                            MicrosToTimestampSql(2) + ", " + MicrosToTimestampSql(3) + ")";
    auto r = (*conn)->QueryBinary(
        absl::StrCat("WITH inv AS (", inv, ") SELECT sensor_id, hour"
                     ", avg_value, max_value, min_value, reading_count "
                     "FROM sensor_readings_summary_hourly c WHERE sensor_id = ANY ($1::text[]) "
                     "AND hour >= ", MicrosToTimestampSql(2), " AND hour < ",
                     MicrosToTimestampSql(3), " AND NOT EXISTS (SELECT 1 FROM inv WHERE "
                     "c.hour >= inv.range_start AND c.hour < inv.range_end) "
                     "UNION ALL SELECT NULL, range_start, NULL, NULL, NULL, ",
                     TimestampToMicrosSql("range_end"), " FROM inv"),
        {ids_param, std::to_string(lo), std::to_string(watermark)});
    if (!r.ok()) return scope.Done(r.status());
    for (int i = 0; i < r->rows(); ++i) {
      if (r->IsNull(i, 0)) {
        stale.emplace_back(r->GetTimestampMicros(i, 1), r->GetInt(i, 5));
        continue;
      }
      buckets.push_back({std::string(r->Get(i, 0)), r->GetTimestampMicros(i, 1), r->GetDouble(i, 2),
                         r->GetDouble(i, 3), r->GetDouble(i, 4), r->GetInt(i, 5), true});
    }
  }
  auto collect = [&](const pg::Result& r, bool materialized) {
    for (int i = 0; i < r.rows(); ++i) {
      buckets.push_back({std::string(r.Get(i, 0)), r.GetTimestampMicros(i, 1),
                         r.GetDouble(i, 2), r.GetDouble(i, 3), r.GetDouble(i, 4),
                         r.GetInt(i, 5), materialized});
    }
  };
  // Raw ranges: the stale ones and [watermark, hi), adjacent ones merged,
  // each an index range scan (no join the planner could turn into a full
  // scan).
  if (watermark < hi) stale.emplace_back(watermark, hi);
  std::sort(stale.begin(), stale.end());
  std::vector<std::pair<int64_t, int64_t>> ranges;
  for (const auto& [from, to] : stale) {
    if (!ranges.empty() && from <= ranges.back().second) {
      ranges.back().second = std::max(ranges.back().second, to);
    } else {
      ranges.emplace_back(from, to);
    }
  }
  const std::string raw_sql = absl::StrCat(
      "SELECT sensor_id, date_trunc('hour', \"timestamp\", 'UTC')"
      ", avg(value), max(value), min(value), count(*) FROM sensor_readings "
      "WHERE sensor_id = ANY ($1::text[]) AND \"timestamp\" >= ", MicrosToTimestampSql(2),
      " AND \"timestamp\" < ", MicrosToTimestampSql(3), " GROUP BY 1, 2");
  for (const auto& [from, to] : ranges) {
    auto r = (*conn)->QueryBinary(raw_sql, {ids_param, std::to_string(from), std::to_string(to)});
    if (!r.ok()) return scope.Done(r.status());
    collect(*r, false);
  }
  std::sort(buckets.begin(), buckets.end(), [](const Bucket& a, const Bucket& b) {
    return a.sensor_id != b.sensor_id ? a.sensor_id < b.sensor_id : a.hour_us < b.hour_us;
  });
  for (const Bucket& x : buckets) {
    auto* b = response->add_buckets();
    b->set_sensor_id(x.sensor_id);
    SetFromMicros(x.hour_us, b->mutable_hour());
    b->set_avg_value(x.avg);
    b->set_max_value(x.max);
    b->set_min_value(x.min);
    b->set_reading_count(x.count);
    b->set_source(x.materialized ? telemetry::v1::HourlyBucket::SOURCE_MATERIALIZED
                                 : telemetry::v1::HourlyBucket::SOURCE_RAW);
  }
  return scope.Done(absl::OkStatus());
}

absl::StatusOr<int64_t> QueryServiceImpl::Watermark(pg::Connection& conn, bool may_use_cached) {
  if (may_use_cached) {
    if (std::optional<int64_t> cached = ctx_.watermark->Get()) return *cached;
  }
  // Both modes define telemetry_summary_watermark() (migrations 0010, 0012).
  auto r = conn.Query(absl::StrCat("SELECT ", TimestampToMicrosSql("w"),
                                   " FROM telemetry_summary_watermark() w WHERE w > '-infinity'"));
  if (!r.ok()) return r.status();
  int64_t us = INT64_MIN;  // nothing materialised
  if (r->rows() > 0 && !r->IsNull(0, 0)) us = r->GetInt(0, 0);
  ctx_.watermark->Put(us);
  return us;
}

grpc::Status QueryServiceImpl::DriftWindows(
    grpc::ServerContext* context, const telemetry::v1::DriftWindowsRequest* request,
    telemetry::v1::DriftWindowsResponse* response) {
  RpcScope scope(ctx_, *context, "DriftWindows");
  if (absl::Status auth = Authorize(ctx_, *context, ApiScope::kRead); !auth.ok()) {
    return scope.Done(auth);
  }
  if (absl::Status s = RequireSensorId(request->sensor_id()); !s.ok()) return scope.Done(s);
  struct Window {
    const char* name;
    absl::StatusOr<int64_t> lo, hi;
  };
  Window windows[2] = {
      {"reference",
       RequiredMicros(&request->reference_start(), request->has_reference_start(),
                      "reference_start"),
       RequiredMicros(&request->reference_end(), request->has_reference_end(),
                      "reference_end")},
      {"current",
       RequiredMicros(&request->current_start(), request->has_current_start(),
                      "current_start"),
       RequiredMicros(&request->current_end(), request->has_current_end(), "current_end")},
  };
  for (const Window& w : windows) {
    if (!w.lo.ok()) return scope.Done(w.lo.status());
    if (!w.hi.ok()) return scope.Done(w.hi.status());
    if (*w.lo >= *w.hi) {
      return scope.Done(absl::InvalidArgumentError(
          absl::StrCat("the ", w.name, " window must start before it ends")));
    }
  }
  uint32_t bins = request->bins() == 0 ? 10 : request->bins();
  if (bins < 2 || bins > 100) {
    return scope.Done(absl::InvalidArgumentError("bins must be between 2 and 100"));
  }
  uint32_t max_points =
      request->max_points() == 0 ? kDefaultDriftPoints : request->max_points();
  if (max_points > kMaxDriftPoints) {
    return scope.Done(absl::InvalidArgumentError(
        absl::StrCat("max_points is at most ", kMaxDriftPoints)));
  }
  auto conn = ctx_.reader->Acquire();
  if (!conn.ok()) return scope.Done(conn.status());
  // Bounded scans on the (sensor_id, timestamp DESC) index.
  const std::string sql = absl::StrCat(
      "SELECT value FROM sensor_readings WHERE sensor_id = $1 AND \"timestamp\" >= ",
      MicrosToTimestampSql(2), " AND \"timestamp\" < ", MicrosToTimestampSql(3),
      " ORDER BY \"timestamp\" DESC LIMIT $4::int");
  std::vector<double> values[2];
  bool truncated[2] = {false, false};
  for (int w = 0; w < 2; ++w) {
    auto r = (*conn)->QueryBinary(sql, {request->sensor_id(), std::to_string(*windows[w].lo),
                                  std::to_string(*windows[w].hi),
                                  std::to_string(max_points + 1)});
    if (!r.ok()) return scope.Done(r.status());
    int n = std::min(r->rows(), static_cast<int>(max_points));
    truncated[w] = r->rows() > static_cast<int>(max_points);
    values[w].reserve(static_cast<size_t>(n));
    for (int i = 0; i < n; ++i) values[w].push_back(r->GetDouble(i, 0));
    std::sort(values[w].begin(), values[w].end());
  }
  // No readings in a window (an unknown sensor included) is no evidence of
  // "no drift": say so rather than answer p = 1, PSI = 0.
  for (int w = 0; w < 2; ++w) {
    if (values[w].empty()) {
      return scope.Done(absl::FailedPreconditionError(absl::StrCat(
          "the ", windows[w].name, " window holds no readings of sensor '",
          request->sensor_id(), "'; drift needs readings in both windows")));
    }
  }
  telemetry::v1::WindowStats* out[2] = {response->mutable_reference(),
                                        response->mutable_current()};
  for (int w = 0; w < 2; ++w) {
    WindowSummary s = Summarize(values[w]);
    out[w]->set_count(s.count);
    out[w]->set_mean(s.mean);
    out[w]->set_stddev(s.stddev);
    out[w]->set_min(s.min);
    out[w]->set_max(s.max);
    out[w]->set_p50(s.p50);
    out[w]->set_p90(s.p90);
    out[w]->set_p99(s.p99);
    out[w]->set_truncated(truncated[w]);
  }
  double d = KsStatistic(values[0], values[1]);
  response->set_ks_statistic(d);
  response->set_ks_p_value(KsPValue(d, static_cast<int64_t>(values[0].size()),
                                    static_cast<int64_t>(values[1].size())));
  response->set_psi(PopulationStabilityIndex(values[0], values[1], static_cast<int>(bins)));
  return scope.Done(absl::OkStatus());
}

grpc::Status QueryServiceImpl::GetSensor(grpc::ServerContext* context,
                                         const telemetry::v1::GetSensorRequest* request,
                                         telemetry::v1::Sensor* response) {
  RpcScope scope(ctx_, *context, "GetSensor");
  if (absl::Status auth = Authorize(ctx_, *context, ApiScope::kRead); !auth.ok()) {
    return scope.Done(auth);
  }
  if (absl::Status s = RequireSensorId(request->sensor_id()); !s.ok()) return scope.Done(s);
  auto conn = ctx_.reader->Acquire();
  if (!conn.ok()) return scope.Done(conn.status());
  auto r = (*conn)->Query(
      absl::StrCat("SELECT ", SensorColumns(), " FROM sensors WHERE sensor_id = $1"),
      {request->sensor_id()});
  if (!r.ok()) return scope.Done(r.status());
  if (r->rows() == 0) {
    return scope.Done(absl::NotFoundError(
        absl::StrCat("sensor '", request->sensor_id(), "' is not registered")));
  }
  SensorFromRow(*r, 0, response);
  return scope.Done(absl::OkStatus());
}

grpc::Status QueryServiceImpl::ListSensors(grpc::ServerContext* context,
                                           const telemetry::v1::ListSensorsRequest* request,
                                           telemetry::v1::ListSensorsResponse* response) {
  RpcScope scope(ctx_, *context, "ListSensors");
  if (absl::Status auth = Authorize(ctx_, *context, ApiScope::kRead); !auth.ok()) {
    return scope.Done(auth);
  }
  uint32_t size = request->page_size() == 0 ? 100 : std::min(request->page_size(), 1000u);
  std::string after;
  if (!request->page_token().empty()) {
    auto parts = DecodeToken(request->page_token(), 1);
    if (!parts.ok()) return scope.Done(parts.status());
    after = (*parts)[0];
  }
  auto conn = ctx_.reader->Acquire();
  if (!conn.ok()) return scope.Done(conn.status());
  auto r = (*conn)->Query(
      absl::StrCat("SELECT ", SensorColumns(),
                   " FROM sensors WHERE sensor_id > $1 AND ($2 = '' OR status = $2) "
                   "ORDER BY sensor_id LIMIT $3::int"),
      {after, request->status(), std::to_string(size + 1)});
  if (!r.ok()) return scope.Done(r.status());
  int n = std::min(r->rows(), static_cast<int>(size));
  for (int i = 0; i < n; ++i) SensorFromRow(*r, i, response->add_sensors());
  if (r->rows() > static_cast<int>(size)) {
    response->set_next_page_token(EncodeToken({response->sensors(n - 1).sensor_id()}));
  }
  return scope.Done(absl::OkStatus());
}

grpc::Status QueryServiceImpl::UpsertSensor(
    grpc::ServerContext* context, const telemetry::v1::UpsertSensorRequest* request,
    telemetry::v1::Sensor* response) {
  RpcScope scope(ctx_, *context, "UpsertSensor");
  if (absl::Status auth = Authorize(ctx_, *context, ApiScope::kAdmin); !auth.ok()) {
    return scope.Done(auth);
  }
  const telemetry::v1::Sensor& s = request->sensor();
  if (absl::Status st = RequireSensorId(s.sensor_id()); !st.ok()) return scope.Done(st);
  for (std::string why : {CheckText(s.type(), "type", kMaxTypeBytes, /*required=*/false),
                          CheckText(s.location(), "location", kMaxIdBytes, /*required=*/false)}) {
    if (!why.empty()) return scope.Done(absl::InvalidArgumentError(why));
  }
  static const char* kStatuses[] = {"", "active", "inactive", "maintenance", "decommissioned"};
  if (std::find(std::begin(kStatuses), std::end(kStatuses), s.status()) == std::end(kStatuses)) {
    return scope.Done(absl::InvalidArgumentError(
        "status must be active, inactive, maintenance or decommissioned"));
  }
  auto conn = ctx_.writer->Acquire();
  if (!conn.ok()) return scope.Done(conn.status());
  auto r = (*conn)->Query(
      absl::StrCat(
          "INSERT INTO sensors (sensor_id, type, location, status) VALUES ($1, "
          "coalesce(nullif($2, ''), 'unknown'), nullif($3, ''), coalesce(nullif($4, ''), "
          "'active')) ON CONFLICT (sensor_id) DO UPDATE SET "
          "type = coalesce(nullif($2, ''), sensors.type), "
          "location = coalesce(nullif($3, ''), sensors.location), "
          "status = coalesce(nullif($4, ''), sensors.status), updated_at = now() "
          "RETURNING ",
          SensorColumns()),
      {s.sensor_id(), s.type(), s.location(), s.status()});
  if (!r.ok()) return scope.Done(r.status());
  SensorFromRow(*r, 0, response);
  return scope.Done(absl::OkStatus());
}

}  // namespace telemetry::query
