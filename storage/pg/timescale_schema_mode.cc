// TimescaleDB mode: sensor_readings a hypertable (1-day chunks), the hourly
// summary a continuous aggregate, refresh, compression and retention
// TimescaleDB's policies (migrations *.timescale.sql). Maintenance the
// least-privileged maintainer login asks for goes through the SECURITY
// DEFINER functions of migrations 0009 and 0011.
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "storage/pg/schema_mode_impl.h"
#include "storage/pg/sql_time.h"

namespace telemetry::pg {
namespace {

// Waits for the one-shot refresh job `job_id` (migration 0011) to finish.
absl::StatusOr<int64_t> WaitForRefreshJob(Connection& conn, int64_t job_id,
                                          absl::Duration wait) {
  const absl::Time deadline = absl::Now() + wait;
  const std::string id = std::to_string(job_id);
  while (true) {
    auto r = conn.Query(
        "SELECT coalesce(s.last_run_status, '') FROM timescaledb_information.jobs j "
        "LEFT JOIN timescaledb_information.job_stats s USING (job_id) WHERE j.job_id = $1",
        {id});
    if (!r.ok()) return r.status();
    if (r->rows() == 0) {
      return absl::InternalError(absl::StrCat("refresh job ", id, " disappeared"));
    }
    const std::string status(r->Get(0, 0));
    if (status == "Success") return 0;
    if (status == "Failed") {
      auto e = conn.Query(
          "SELECT coalesce(err_message, '') FROM timescaledb_information.job_errors "
          "WHERE job_id = $1 ORDER BY finish_time DESC LIMIT 1",
          {id});
      return absl::AbortedError(absl::StrCat(
          "the refresh job ", id, " failed",
          e.ok() && e->rows() > 0 ? absl::StrCat(": ", e->Get(0, 0)) : std::string()));
    }
    if (absl::Now() >= deadline) {
      return absl::DeadlineExceededError(absl::StrCat(
          "the refresh job ", id, " has not finished yet; `telemetryctl jobs` shows it"));
    }
    // TimescaleDB's scheduler gives no notification to wait on: poll it.
    absl::SleepFor(absl::Milliseconds(200));
  }
}

class TimescaleSchemaMode final : public SchemaMode {
 public:
  StorageMode mode() const override { return StorageMode::kTimescale; }

  bool MakesDayPartitions() const override { return false; }

  absl::Status EnsureDayPartitions(Connection& /*conn*/, int64_t /*first_day*/,
                                   int64_t /*last_day*/) const override {
    return absl::OkStatus();  // TimescaleDB makes chunks as rows arrive
  }

  bool ServiceRunsJobs() const override { return false; }

  absl::StatusOr<int64_t> RefreshAggregate(Connection& conn, std::optional<int64_t> start_us,
                                           std::optional<int64_t> end_us,
                                           absl::Duration wait) const override {
    const std::string window =
        absl::StrCat("CASE WHEN $1::bigint IS NULL THEN NULL ELSE ", MicrosToTimestampSql(1),
                     " END, CASE WHEN $2::bigint IS NULL THEN NULL ELSE ",
                     MicrosToTimestampSql(2), " END");
    const std::vector<Param> params = {start_us ? Param(std::to_string(*start_us)) : Param(),
                                       end_us ? Param(std::to_string(*end_us)) : Param()};
    // A procedure that cannot run inside a transaction block: autocommit.
    auto r = conn.Query(
        absl::StrCat("CALL refresh_continuous_aggregate('sensor_readings_summary_hourly', ",
                     window, ")"),
        params);
    if (r.ok()) return 0;
    if (SqlStateOf(r.status()) != "42501") return r.status();
    // Not the aggregate's owner (the least-privilege maintainer login):
    // have the owner's one-shot job do it (migration 0011) and wait for it.
    auto job = conn.Query(absl::StrCat("SELECT telemetry_request_refresh(", window, ")"), params);
    if (!job.ok()) return job.status();
    return WaitForRefreshJob(conn, job->GetInt(0, 0), wait);
  }

  absl::StatusOr<std::string> DropExpired(Connection& conn,
                                          absl::Duration /*retention*/) const override {
    // What the retention policy does, with its drop_after, through a
    // SECURITY DEFINER function (migration 0009): run_job() would need the
    // policy owner's role.
    auto r = conn.Query("SELECT telemetry_drop_expired_chunks()");
    if (!r.ok()) return r.status();
    return absl::StrCat("dropped ", r->Get(0, 0),
                        " chunks past the retention policy's drop_after");
  }

  absl::Status CompressionAvailable() const override { return absl::OkStatus(); }

  absl::StatusOr<std::string> CompressDue(Connection& conn) const override {
    // As the compression policy would, with its compress_after (migration
    // 0009's SECURITY DEFINER function; run_job() needs the policy's owner).
    auto r = conn.Query("SELECT telemetry_compress_due_chunks()");
    if (!r.ok()) return r.status();
    return absl::StrCat("compressed ", r->Get(0, 0),
                        " chunks past the compression policy's compress_after");
  }

  absl::StatusOr<std::vector<DatabaseJob>> DatabaseJobs(Connection& conn) const override {
    auto r = conn.Query(absl::StrCat(
        "SELECT j.proc_name, extract(epoch FROM j.schedule_interval)::bigint, ",
        TimestampToMicrosSql("s.last_run_started_at"),
        ", extract(epoch FROM s.last_run_duration)::float8, coalesce(s.last_run_status, ''), "
        "coalesce(s.total_successes, 0), coalesce(s.total_failures, 0), ",
        TimestampToMicrosSql("s.next_start"),
        " FROM timescaledb_information.jobs j LEFT JOIN timescaledb_information.job_stats s "
        "USING (job_id) WHERE j.proc_name LIKE 'policy_%' ORDER BY j.job_id"));
    if (!r.ok()) return r.status();
    std::vector<DatabaseJob> jobs;
    for (int i = 0; i < r->rows(); ++i) {
      DatabaseJob j;
      j.name = std::string(r->Get(i, 0));
      j.schedule = absl::Seconds(r->GetInt(i, 1));
      if (!r->IsNull(i, 2)) j.last_start_us = r->GetInt(i, 2);
      if (!r->IsNull(i, 3)) j.last_run_seconds = r->GetDouble(i, 3);
      const std::string status(r->Get(i, 4));
      j.last_status = status == "Success" ? "success" : status == "Failed" ? "failure" : status;
      j.successes = r->GetInt(i, 5);
      j.failures = r->GetInt(i, 6);
      if (!r->IsNull(i, 7)) j.next_start_us = r->GetInt(i, 7);
      jobs.push_back(std::move(j));
    }
    // The last error of each failed job. A separate query: a role that may
    // not read job_errors still gets the list.
    auto errors = conn.Query(
        "SELECT DISTINCT ON (e.proc_name) e.proc_name, coalesce(e.err_message, '') "
        "FROM timescaledb_information.job_errors e WHERE e.proc_name LIKE 'policy_%' "
        "ORDER BY e.proc_name, e.finish_time DESC");
    if (errors.ok()) {
      for (DatabaseJob& j : jobs) {
        if (j.last_status != "failure") continue;
        for (int i = 0; i < errors->rows(); ++i) {
          if (errors->Get(i, 0) == j.name) j.last_error = std::string(errors->Get(i, 1));
        }
      }
    }
    return jobs;
  }

  absl::StatusOr<StorageLayout> Layout(Connection& conn) const override {
    auto r = conn.Query(absl::StrCat(
        "SELECT c.chunk_schema || '.' || c.chunk_name, ", TimestampToMicrosSql("c.range_start"),
        ", ", TimestampToMicrosSql("c.range_end"),
        ", c.is_compressed, coalesce(d.total_bytes, 0), "
        // A compressed chunk's rows live in its compressed table: count them
        // from TimescaleDB's compression statistics (exact as of
        // compression), plus whatever was written into the chunk since.
        "greatest(coalesce(cl.reltuples, 0), 0)::bigint + "
        "coalesce(cs.numrows_pre_compression, 0) "
        "FROM timescaledb_information.chunks c "
        "LEFT JOIN chunks_detailed_size('sensor_readings') d "
        "ON d.chunk_schema = c.chunk_schema AND d.chunk_name = c.chunk_name "
        "LEFT JOIN pg_class cl ON cl.oid = format('%I.%I', c.chunk_schema, c.chunk_name)::regclass "
        "LEFT JOIN _timescaledb_catalog.chunk ch "
        "ON ch.schema_name = c.chunk_schema AND ch.table_name = c.chunk_name "
        "LEFT JOIN _timescaledb_catalog.compression_chunk_size cs "
        "ON cs.chunk_id = ch.id AND c.is_compressed "
        "WHERE c.hypertable_name = 'sensor_readings' ORDER BY c.range_start"));
    if (!r.ok()) return r.status();
    StorageLayout out;
    for (int i = 0; i < r->rows(); ++i) {
      StorageChunk c;
      c.name = std::string(r->Get(i, 0));
      c.range_start_us = r->GetInt(i, 1);
      c.range_end_us = r->GetInt(i, 2);
      c.compressed = r->GetBool(i, 3);
      c.total_bytes = r->GetInt(i, 4);
      c.estimated_rows = r->GetInt(i, 5);
      out.total_bytes += c.total_bytes;
      out.chunks.push_back(std::move(c));
    }
    auto ratio = conn.Query(
        "SELECT coalesce(sum(after_compression_total_bytes)::float8 / "
        "nullif(sum(before_compression_total_bytes), 0), 0) "
        "FROM hypertable_compression_stats('sensor_readings')");
    if (ratio.ok() && ratio->rows() > 0) out.compression_ratio = ratio->GetDouble(0, 0);
    return out;
  }
};

}  // namespace

const SchemaMode& TimescaleSchema() {
  static const TimescaleSchemaMode* mode = new TimescaleSchemaMode();
  return *mode;
}

}  // namespace telemetry::pg
