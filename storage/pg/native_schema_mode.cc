// Native mode: sensor_readings range-partitioned by day with a DEFAULT
// partition, the hourly summary a table the service materialises, and the
// read service's own scheduler for refresh and retention (migrations
// 0002/0004/0006/0012 *.native.sql).
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/civil_time.h"
#include "storage/pg/schema_mode_impl.h"
#include "storage/pg/sql_time.h"

namespace telemetry::pg {
namespace {

class NativeSchemaMode final : public SchemaMode {
 public:
  StorageMode mode() const override { return StorageMode::kNative; }

  bool MakesDayPartitions() const override { return true; }

  absl::Status EnsureDayPartitions(Connection& conn, int64_t first_day,
                                   int64_t last_day) const override {
    return conn
        .Query("SELECT telemetry_ensure_partitions("
               "to_timestamp($1::bigint * 86400), to_timestamp($2::bigint * 86400))",
               {std::to_string(first_day), std::to_string(last_day)})
        .status();
  }

  bool ServiceRunsJobs() const override { return true; }

  absl::StatusOr<int64_t> RefreshAggregate(Connection& conn, std::optional<int64_t> start_us,
                                           std::optional<int64_t> end_us,
                                           absl::Duration /*wait*/) const override {
    absl::StatusOr<Result> r =
        (!start_us && !end_us)
            ? conn.Query("SELECT telemetry_refresh_hourly_all()")
            : conn.Query(absl::StrCat("SELECT telemetry_refresh_hourly(coalesce(",
                                      MicrosToTimestampSql(1), ", '-infinity'), coalesce(",
                                      MicrosToTimestampSql(2), ", 'infinity'))"),
                         {start_us ? Param(std::to_string(*start_us)) : Param(),
                          end_us ? Param(std::to_string(*end_us)) : Param()});
    if (!r.ok()) return r.status();
    int64_t hours = r->GetInt(0, 0);
    if (hours < 0) {
      return absl::AbortedError("another refresh of the aggregate is running; retry later");
    }
    return hours;
  }

  absl::StatusOr<std::string> DropExpired(Connection& conn,
                                          absl::Duration retention) const override {
    auto r = conn.Query("SELECT telemetry_drop_partitions_before(now() - $1::interval)",
                        {absl::StrCat(absl::ToInt64Seconds(retention), " seconds")});
    if (!r.ok()) return r.status();
    return absl::StrCat("dropped ", r->Get(0, 0), " partitions older than ",
                        absl::FormatDuration(retention));
  }

  absl::Status CompressionAvailable() const override {
    return absl::FailedPreconditionError(
        "compression needs TimescaleDB; this database runs in native mode");
  }

  absl::StatusOr<std::string> CompressDue(Connection& /*conn*/) const override {
    return CompressionAvailable();
  }

  absl::StatusOr<std::vector<DatabaseJob>> DatabaseJobs(Connection& /*conn*/) const override {
    return std::vector<DatabaseJob>();  // the service runs them (ServiceRunsJobs)
  }

  absl::StatusOr<StorageLayout> Layout(Connection& conn) const override {
    auto r = conn.Query(
        "SELECT c.relname, pg_total_relation_size(c.oid), greatest(c.reltuples, 0)::bigint "
        "FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = 'sensor_readings'::regclass ORDER BY c.relname");
    if (!r.ok()) return r.status();
    StorageLayout out;
    for (int i = 0; i < r->rows(); ++i) {
      StorageChunk c;
      c.name = std::string(r->Get(i, 0));
      c.total_bytes = r->GetInt(i, 1);
      c.estimated_rows = r->GetInt(i, 2);
      // Day partitions are named sensor_readings_pYYYYMMDD.
      int y, m, d;
      if (absl::StartsWith(c.name, "sensor_readings_p") && c.name.size() == 25 &&
          absl::SimpleAtoi(c.name.substr(17, 4), &y) &&
          absl::SimpleAtoi(c.name.substr(21, 2), &m) &&
          absl::SimpleAtoi(c.name.substr(23, 2), &d)) {
        absl::Time day = absl::FromCivil(absl::CivilDay(y, m, d), absl::UTCTimeZone());
        c.range_start_us = absl::ToUnixMicros(day);
        c.range_end_us = absl::ToUnixMicros(day + absl::Hours(24));
      }
      out.total_bytes += c.total_bytes;
      out.chunks.push_back(std::move(c));
    }
    return out;
  }
};

}  // namespace

const SchemaMode& NativeSchema() {
  static const NativeSchemaMode* mode = new NativeSchemaMode();
  return *mode;
}

}  // namespace telemetry::pg
