#include "storage/pg/copy_writer.h"

#include "storage/pg/schema_mode.h"

#include <algorithm>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "storage/pg/copy_encoding.h"
#include "storage/util/mutex.h"

namespace telemetry::pg {
namespace {

constexpr int64_t kMicrosPerDay = 86'400'000'000LL;

int64_t DayOf(int64_t timestamp_us) {
  // Floor division, so instants before 1970 land on the right day.
  return timestamp_us >= 0 ? timestamp_us / kMicrosPerDay
                           : -((-timestamp_us + kMicrosPerDay - 1) / kMicrosPerDay);
}

constexpr const char* kCreateStaging = R"sql(
CREATE TEMP TABLE IF NOT EXISTS telemetry_staging (
    batch            integer          NOT NULL,
    "timestamp"      timestamptz      NOT NULL,
    sensor_id        text             NOT NULL,
    sensor_type      text,
    value            double precision NOT NULL,
    unit             text,
    quality          double precision,
    sensor_metadata  jsonb
) ON COMMIT DELETE ROWS)sql";

// Inserts what is new and reports, per staging batch number, how many of its
// rows were inserted. Rows in staging are unique on (timestamp, sensor_id)
// (the writer removes in-group duplicates first), so the join is exact.
constexpr const char* kMergeStaging = R"sql(
WITH inserted AS (
    INSERT INTO sensor_readings
        ("timestamp", sensor_id, sensor_type, value, unit, quality, sensor_metadata)
    SELECT "timestamp", sensor_id, sensor_type, value, unit, quality, sensor_metadata
      FROM telemetry_staging
    ON CONFLICT ("timestamp", sensor_id) DO NOTHING
    RETURNING "timestamp", sensor_id
)
SELECT s.batch, count(*)
  FROM inserted i
  JOIN telemetry_staging s
    ON s."timestamp" = i."timestamp" AND s.sensor_id = i.sensor_id
 GROUP BY s.batch)sql";

constexpr const char* kRegisterSensors = R"sql(
INSERT INTO sensors (sensor_id, type)
SELECT id, type FROM unnest($1::varchar[], $2::varchar[]) AS s(id, type)
ON CONFLICT (sensor_id) DO NOTHING)sql";

}  // namespace

bool WriterCaches::SensorKnown(absl::string_view sensor_id) const {
  MutexLock lock(&mu_);
  return sensors_.contains(sensor_id);
}

void WriterCaches::AddSensors(const std::vector<std::string>& sensor_ids) {
  MutexLock lock(&mu_);
  if (sensors_.size() + sensor_ids.size() > max_sensors_) sensors_.clear();
  sensors_.insert(sensor_ids.begin(), sensor_ids.end());
}

bool WriterCaches::DayKnown(int64_t day) const {
  MutexLock lock(&mu_);
  return days_.contains(day);
}

void WriterCaches::AddDays(int64_t first_day, int64_t last_day) {
  MutexLock lock(&mu_);
  for (int64_t d = first_day; d <= last_day; ++d) days_.insert(d);
}

std::string ToTextArrayLiteral(const std::vector<std::string>& values) {
  std::string out = "{";
  for (size_t i = 0; i < values.size(); ++i) {
    if (i) out += ',';
    out += '"';
    for (char c : values[i]) {
      if (c == '"' || c == '\\') out += '\\';
      out += c;
    }
    out += '"';
  }
  out += '}';
  return out;
}

CopyWriter::CopyWriter(CopyWriterOptions options, WriterCaches* caches,
                       WriteObserver* observer)
    : options_(std::move(options)), caches_(caches), observer_(observer) {}

CopyWriter::~CopyWriter() = default;

absl::Status CopyWriter::Fail(absl::Status status) {
  if (observer_) observer_->OnDatabaseError(status);
  if (conn_ && !conn_->healthy()) {
    conn_.reset();
    staging_ready_ = false;
  } else if (conn_ && conn_->InTransaction()) {
    if (!conn_->Exec("ROLLBACK").ok()) {
      conn_.reset();
      staging_ready_ = false;
    }
  }
  return status;
}

absl::Status CopyWriter::EnsureConnected() {
  if (conn_ && conn_->healthy()) return absl::OkStatus();
  conn_.reset();
  staging_ready_ = false;
  absl::Time now = absl::Now();
  if (now < next_connect_attempt_) return last_connect_error_;
  absl::StatusOr<std::unique_ptr<Connection>> c =
      Connection::Open(options_.conninfo);
  absl::Status status = c.status();
  if (status.ok()) {
    status = (*c)->Exec(absl::StrCat(
        "SET application_name = 'ingest-gateway'; SET statement_timeout = ",
        absl::ToInt64Milliseconds(options_.statement_timeout)));
  }
  if (!status.ok()) {
    next_connect_attempt_ = now + options_.reconnect_backoff;
    last_connect_error_ = status;
    if (observer_) observer_->OnDatabaseError(status);
    return status;
  }
  conn_ = *std::move(c);
  return absl::OkStatus();
}

absl::Status CopyWriter::EnsurePartitionsForDays(int64_t first_day,
                                                 int64_t last_day) {
  const SchemaMode& schema = SchemaMode::For(options_.mode);
  if (!schema.MakesDayPartitions()) return absl::OkStatus();
  if (absl::Status s = schema.EnsureDayPartitions(*conn_, first_day, last_day); !s.ok()) {
    return s;
  }
  caches_->AddDays(first_day, last_day);
  return absl::OkStatus();
}

absl::Status CopyWriter::EnsurePartitions(absl::Time first, absl::Time last) {
  if (absl::Status s = EnsureConnected(); !s.ok()) return s;
  absl::Status s = EnsurePartitionsForDays(DayOf(absl::ToUnixMicros(first)),
                                           DayOf(absl::ToUnixMicros(last)));
  return s.ok() ? s : Fail(s);
}

absl::Status CopyWriter::RegisterSensors(
    const std::vector<std::string>& sensor_ids,
    const std::vector<std::string>& types) {
  if (sensor_ids.empty()) return absl::OkStatus();
  return conn_
      ->Query(kRegisterSensors,
              {ToTextArrayLiteral(sensor_ids), ToTextArrayLiteral(types)})
      .status();
}

absl::Status CopyWriter::CopyDirect(const std::vector<Row>& rows) {
  CopyEncoder enc;
  for (const Row& r : rows) enc.AddReading(*r.row);
  std::string data = enc.Finish();
  return conn_
      ->CopyIn(absl::StrCat("COPY sensor_readings (", kReadingCopyColumns,
                            ") FROM STDIN (FORMAT binary)"),
               data)
      .status();
}

absl::StatusOr<std::vector<int64_t>> CopyWriter::CopyViaStaging(
    const std::vector<Row>& rows, size_t batch_count) {
  CopyEncoder enc;
  for (const Row& r : rows) enc.AddTaggedReading(r.batch, *r.row);
  std::string data = enc.Finish();
  absl::StatusOr<int64_t> copied = conn_->CopyIn(
      absl::StrCat("COPY telemetry_staging (batch, ", kReadingCopyColumns,
                   ") FROM STDIN (FORMAT binary)"),
      data);
  if (!copied.ok()) return copied.status();
  absl::StatusOr<Result> merged = conn_->Query(kMergeStaging);
  if (!merged.ok()) return merged.status();
  std::vector<int64_t> inserted(batch_count, 0);
  for (int i = 0; i < merged->rows(); ++i) {
    int64_t batch = merged->GetInt(i, 0);
    if (batch >= 0 && static_cast<size_t>(batch) < batch_count) {
      inserted[static_cast<size_t>(batch)] = merged->GetInt(i, 1);
    }
  }
  return inserted;
}

absl::StatusOr<std::vector<TelemetrySink::BatchResult>>
CopyWriter::WriteBatches(
    absl::Span<const std::vector<ReadingRow>* const> batches,
    bool may_contain_duplicates) {
  absl::StatusOr<std::vector<BatchResult>> result;
  for (int attempt = 0;; ++attempt) {
    result = WriteOnce(batches, may_contain_duplicates);
    if (result.ok() || result.status().code() != absl::StatusCode::kAborted ||
        attempt >= options_.max_deadlock_retries) {
      return result;
    }
  }
}

absl::StatusOr<std::vector<TelemetrySink::BatchResult>> CopyWriter::WriteOnce(
    absl::Span<const std::vector<ReadingRow>* const> batches,
    bool may_contain_duplicates) {
  std::vector<BatchResult> results(batches.size());
  if (absl::Status s = EnsureConnected(); !s.ok()) return s;

  // Rows to write, without repeats of a (sensor_id, timestamp) seen earlier in
  // the group: the PRIMARY KEY would refuse them anyway, and the staging
  // merge relies on their uniqueness.
  std::vector<Row> rows;
  size_t total = 0;
  for (const auto* b : batches) total += b->size();
  rows.reserve(total);
  absl::flat_hash_set<std::pair<absl::string_view, int64_t>> seen;
  if (batches.size() > 1) seen.reserve(total);
  std::vector<int64_t> days;  // of every row, for partitions
  std::vector<std::string> new_sensors, new_types;
  absl::flat_hash_set<absl::string_view> new_sensor_set;
  for (size_t b = 0; b < batches.size(); ++b) {
    for (const ReadingRow& row : *batches[b]) {
      // Within one batch the validator already refused repeats.
      if (batches.size() > 1 &&
          !seen.emplace(row.sensor_id, row.timestamp_us).second) {
        ++results[b].duplicates;
        continue;
      }
      rows.push_back({static_cast<int32_t>(b), &row});
      days.push_back(DayOf(row.timestamp_us));
      if (!new_sensor_set.contains(row.sensor_id) &&
          !caches_->SensorKnown(row.sensor_id)) {
        new_sensor_set.insert(row.sensor_id);
        new_sensors.push_back(row.sensor_id);
        new_types.push_back(row.sensor_type.value_or("unknown"));
      }
    }
  }
  if (rows.empty()) return results;

  // Partitions are created in their own transactions, before the data's:
  // only for the days that receive rows (one reading 170 days old makes one
  // partition, not 170), each run of consecutive unknown days in one call.
  if (SchemaMode::For(options_.mode).MakesDayPartitions()) {
    std::sort(days.begin(), days.end());
    days.erase(std::unique(days.begin(), days.end()), days.end());
    for (size_t i = 0; i < days.size(); ++i) {
      if (caches_->DayKnown(days[i])) continue;
      size_t last = i;
      while (last + 1 < days.size() && days[last + 1] == days[last] + 1 &&
             !caches_->DayKnown(days[last + 1])) {
        ++last;
      }
      if (absl::Status s = EnsurePartitionsForDays(days[i], days[last]); !s.ok()) {
        return Fail(s);
      }
      i = last;
    }
  }
  // Sorted registration keeps concurrent writers from deadlocking on the
  // sensors unique index.
  {
    std::vector<size_t> order(new_sensors.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
      return new_sensors[a] < new_sensors[b];
    });
    std::vector<std::string> ids, types;
    for (size_t i : order) {
      ids.push_back(std::move(new_sensors[i]));
      types.push_back(std::move(new_types[i]));
    }
    new_sensors = std::move(ids);
    new_types = std::move(types);
  }

  absl::Time start = absl::Now();
  if (!may_contain_duplicates) {
    absl::Status s = conn_->Exec("BEGIN");
    if (s.ok()) s = RegisterSensors(new_sensors, new_types);
    if (s.ok()) s = CopyDirect(rows);
    if (s.ok()) s = conn_->Exec("COMMIT");
    if (s.ok()) {
      caches_->AddSensors(new_sensors);
      for (const Row& r : rows) ++results[static_cast<size_t>(r.batch)].inserted;
      if (observer_) {
        observer_->OnCommitted(WriteObserver::Path::kCopy,
                               static_cast<int64_t>(rows.size()),
                               absl::Now() - start);
      }
      return results;
    }
    if (SqlStateOf(s) != "23505") return Fail(s);
    if (observer_) observer_->OnDuplicateFallback();
    if (conn_->InTransaction()) {
      if (absl::Status rb = conn_->Exec("ROLLBACK"); !rb.ok()) return Fail(rb);
    }
    start = absl::Now();
  }

  if (!staging_ready_) {
    if (absl::Status s = conn_->Exec(kCreateStaging); !s.ok()) return Fail(s);
    staging_ready_ = true;
  }
  absl::Status s = conn_->Exec("BEGIN");
  if (s.ok()) s = RegisterSensors(new_sensors, new_types);
  absl::StatusOr<std::vector<int64_t>> inserted;
  if (s.ok()) {
    inserted = CopyViaStaging(rows, batches.size());
    s = inserted.status();
  }
  if (s.ok()) s = conn_->Exec("COMMIT");
  if (!s.ok()) return Fail(s);
  caches_->AddSensors(new_sensors);
  std::vector<int64_t> written(batches.size(), 0);
  for (const Row& r : rows) ++written[static_cast<size_t>(r.batch)];
  for (size_t b = 0; b < batches.size(); ++b) {
    results[b].inserted = static_cast<uint32_t>((*inserted)[b]);
    results[b].duplicates +=
        static_cast<uint32_t>(written[b] - (*inserted)[b]);
  }
  if (observer_) {
    observer_->OnCommitted(WriteObserver::Path::kStaging,
                           static_cast<int64_t>(rows.size()),
                           absl::Now() - start);
  }
  return results;
}

}  // namespace telemetry::pg
