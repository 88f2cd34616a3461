#include "server/query/lifecycle_jobs.h"

#include <algorithm>
#include <cmath>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "server/common/log.h"
#include "server/query/sql_values.h"
#include "storage/util/mutex.h"

namespace telemetry::query {
namespace {

std::string IntervalParam(absl::Duration d) {
  return absl::StrCat(absl::ToInt64Seconds(d), " seconds");
}

prometheus::Family<prometheus::Gauge>& GaugeFamily(prometheus::Registry& r,
                                                   const std::string& name,
                                                   const std::string& help) {
  return prometheus::BuildGauge().Name(name).Help(help).Register(r);
}

double ToUnixSeconds(const google::protobuf::Timestamp& t) {
  return static_cast<double>(t.seconds()) + t.nanos() / 1e9;
}

}  // namespace

LifecycleJobs::LifecycleJobs(const ReadContext* ctx, LifecycleOptions options,
                             prometheus::Registry& registry)
    : ctx_(*ctx),
      options_(std::move(options)),
      job_last_run_(GaugeFamily(registry, "telemetry_job_last_run_timestamp_seconds",
                                "When each background job last started")),
      job_last_duration_(GaugeFamily(registry, "telemetry_job_last_run_duration_seconds",
                                     "How long each job's last run took")),
      job_last_success_(GaugeFamily(registry, "telemetry_job_last_run_success",
                                    "1 if the job's last run succeeded, 0 if it failed")),
      job_runs_(GaugeFamily(registry, "telemetry_job_runs",
                            "Runs of each job so far, by result")),
      job_next_start_(GaugeFamily(registry, "telemetry_job_next_start_timestamp_seconds",
                                  "When each job runs next")),
      staleness_(GaugeFamily(registry, "telemetry_aggregate_staleness_seconds",
                             "Now minus the watermark of sensor_readings_summary_hourly: "
                             "how far refreshes lag, not the newest data (-1: never "
                             "refreshed)")
                     .Add({})),
      chunks_(GaugeFamily(registry, "telemetry_storage_chunks",
                          "Partitions (native) or chunks (timescale) of sensor_readings")
                  .Add({})),
      bytes_(GaugeFamily(registry, "telemetry_storage_bytes",
                         "Total size of sensor_readings, indexes included")
                 .Add({})),
      rows_(GaugeFamily(registry, "telemetry_readings_estimated_rows",
                        "Planner estimate of the rows in sensor_readings")
                .Add({})),
      compression_ratio_(
          GaugeFamily(registry, "telemetry_compression_ratio",
                      "Compressed / uncompressed bytes of compressed chunks (0: none)")
              .Add({})) {
  refresh_.name = "refresh sensor_readings_summary_hourly";
  refresh_.schedule = options_.refresh_schedule;
  retention_.name = "retention sensor_readings";
  retention_.schedule = options_.retention_schedule;
}

LifecycleJobs::~LifecycleJobs() { Stop(); }

void LifecycleJobs::Start() {
  thread_ = std::thread([this] { Loop(); });
}

void LifecycleJobs::Stop() {
  if (!stop_.HasBeenNotified()) stop_.Notify();
  if (thread_.joinable()) thread_.join();
}

void LifecycleJobs::RunJob(JobState* job_state, const std::function<absl::Status()>& body) {
  absl::Time start = absl::Now();
  {
    MutexLock lock(&mu_);
    job_state->last_start = start;
  }
  absl::Status s = body();
  MutexLock lock(&mu_);
  job_state->last_duration = absl::Now() - start;
  job_state->next_start = start + job_state->schedule;
  if (s.ok()) {
    job_state->last_status = "success";
    job_state->last_error.clear();
    ++job_state->successes;
  } else if (s.code() == absl::StatusCode::kAborted) {
    job_state->last_status = "skipped";  // another replica is running it
  } else {
    job_state->last_status = "failure";
    job_state->last_error = std::string(s.message());
    ++job_state->failures;  // logged by the stats pass (ExportJob), as in timescale mode
  }
}

void LifecycleJobs::Loop() {
  const bool native_jobs =
      ctx_.mode == pg::StorageMode::kNative && options_.run_native_jobs;
  absl::Time next_stats = absl::Now();
  {
    MutexLock lock(&mu_);
    refresh_.next_start = absl::Now();
    retention_.next_start = absl::Now();
  }
  while (true) {
    absl::Time now = absl::Now();
    if (native_jobs) {
      bool refresh_due, retention_due;
      {
        MutexLock lock(&mu_);
        refresh_due = now >= refresh_.next_start;
        retention_due = now >= retention_.next_start;
      }
      if (refresh_due) {
        RunJob(&refresh_, [this] {
          int64_t now_us = absl::ToUnixMicros(absl::Now());
          return Refresh(now_us - absl::ToInt64Microseconds(options_.refresh_start_offset),
                         now_us - absl::ToInt64Microseconds(options_.refresh_end_offset))
              .status();
        });
      }
      if (retention_due) RunJob(&retention_, [this] { return RunRetention().status(); });
    }
    if (absl::Now() >= next_stats) {
      CollectStats();
      next_stats = absl::Now() + options_.stats_interval;
    }
    absl::Time wake = next_stats;
    if (native_jobs) {
      MutexLock lock(&mu_);
      wake = std::min({wake, refresh_.next_start, retention_.next_start});
    }
    if (stop_.WaitForNotificationWithTimeout(
            std::max(wake - absl::Now(), absl::Milliseconds(10)))) {
      return;
    }
  }
}

absl::StatusOr<int64_t> LifecycleJobs::Refresh(std::optional<int64_t> start_us,
                                               std::optional<int64_t> end_us) {
  absl::Cleanup invalidate = [this] {
    if (ctx_.watermark) ctx_.watermark->Invalidate();
  };
  auto conn = ctx_.writer->Acquire();
  if (!conn.ok()) return conn.status();
  if (ctx_.mode == pg::StorageMode::kTimescale) {
    const std::string window =
        absl::StrCat("CASE WHEN $1::bigint IS NULL THEN NULL ELSE ", MicrosToTimestampSql(1),
                     " END, CASE WHEN $2::bigint IS NULL THEN NULL ELSE ",
                     MicrosToTimestampSql(2), " END");
    const std::vector<pg::Param> params = {
        start_us ? pg::Param(std::to_string(*start_us)) : pg::Param(),
        end_us ? pg::Param(std::to_string(*end_us)) : pg::Param()};
    // A procedure that cannot run inside a transaction block: autocommit.
    auto r = (*conn)->Query(
        absl::StrCat("CALL refresh_continuous_aggregate('sensor_readings_summary_hourly', ",
                     window, ")"),
        params);
    if (r.ok()) return 0;
    if (pg::SqlStateOf(r.status()) != "42501") return r.status();
    // Not the aggregate's owner (the least-privilege maintainer login):
    // have the owner's one-shot job do it (migration 0011) and wait for it.
    auto job = (*conn)->Query(absl::StrCat("SELECT telemetry_request_refresh(", window, ")"),
                              params);
    if (!job.ok()) return job.status();
    return WaitForRefreshJob(**conn, job->GetInt(0, 0));
  }
  absl::StatusOr<pg::Result> r =
      (!start_us && !end_us)
          ? (*conn)->Query("SELECT telemetry_refresh_hourly_all()")
          : (*conn)->Query(
                absl::StrCat("SELECT telemetry_refresh_hourly(",
                             "coalesce(", MicrosToTimestampSql(1), ", '-infinity'), coalesce(",
                             MicrosToTimestampSql(2), ", 'infinity'))"),
                {start_us ? pg::Param(std::to_string(*start_us)) : pg::Param(),
                 end_us ? pg::Param(std::to_string(*end_us)) : pg::Param()});
  if (!r.ok()) return r.status();
  int64_t hours = r->GetInt(0, 0);
  if (hours < 0) {
    return absl::AbortedError("another refresh of the aggregate is running; retry later");
  }
  return hours;
}

absl::StatusOr<int64_t> LifecycleJobs::WaitForRefreshJob(pg::Connection& conn, int64_t job_id) {
  const absl::Time deadline = absl::Now() + options_.on_demand_refresh_timeout;
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

absl::StatusOr<std::string> LifecycleJobs::RunRetention() {
  auto conn = ctx_.writer->Acquire();
  if (!conn.ok()) return conn.status();
  if (ctx_.mode == pg::StorageMode::kTimescale) {
    // What the retention policy does, with its drop_after, through a
    // SECURITY DEFINER function (migration 0009): run_job() would need the
    // policy owner's role.
    auto r = (*conn)->Query("SELECT telemetry_drop_expired_chunks()");
    if (!r.ok()) return r.status();
    return absl::StrCat("dropped ", r->Get(0, 0),
                        " chunks past the retention policy's drop_after");
  }
  auto r = (*conn)->Query(
      "SELECT telemetry_drop_partitions_before(now() - $1::interval)",
      {IntervalParam(options_.retention)});
  if (!r.ok()) return r.status();
  return absl::StrCat("dropped ", r->Get(0, 0), " partitions older than ",
                      absl::FormatDuration(options_.retention));
}

absl::StatusOr<std::string> LifecycleJobs::RunCompression() {
  if (ctx_.mode != pg::StorageMode::kTimescale) {
    return absl::FailedPreconditionError(
        "compression needs TimescaleDB; this database runs in native mode");
  }
  auto conn = ctx_.writer->Acquire();
  if (!conn.ok()) return conn.status();
  // As the compression policy would, with its compress_after (migration
  // 0009's SECURITY DEFINER function; run_job() needs the policy's owner).
  auto r = (*conn)->Query("SELECT telemetry_compress_due_chunks()");
  if (!r.ok()) return r.status();
  return absl::StrCat("compressed ", r->Get(0, 0),
                      " chunks past the compression policy's compress_after");
}

absl::StatusOr<std::vector<telemetry::v1::Job>> LifecycleJobs::Jobs() {
  std::vector<telemetry::v1::Job> jobs;
  if (ctx_.mode == pg::StorageMode::kNative) {
    MutexLock lock(&mu_);
    for (const JobState* s : {&refresh_, &retention_}) {
      telemetry::v1::Job j;
      j.set_name(s->name);
      j.set_schedule(options_.run_native_jobs
                         ? absl::StrCat("every ", absl::FormatDuration(s->schedule))
                         : "disabled");
      if (s->last_start != absl::InfinitePast()) {
        SetFromMicros(absl::ToUnixMicros(s->last_start), j.mutable_last_run_started());
        j.set_last_run_seconds(absl::ToDoubleSeconds(s->last_duration));
      }
      j.set_last_run_status(s->last_status);
      j.set_last_error(s->last_error);
      j.set_total_successes(s->successes);
      j.set_total_failures(s->failures);
      if (options_.run_native_jobs && s->next_start != absl::InfinitePast()) {
        SetFromMicros(absl::ToUnixMicros(s->next_start), j.mutable_next_start());
      }
      jobs.push_back(std::move(j));
    }
    return jobs;
  }
  auto conn = ctx_.reader->Acquire();
  if (!conn.ok()) return conn.status();
  auto r = (*conn)->Query(absl::StrCat(
      "SELECT j.proc_name, extract(epoch FROM j.schedule_interval)::bigint, ",
      TimestampToMicrosSql("s.last_run_started_at"),
      ", extract(epoch FROM s.last_run_duration)::float8, coalesce(s.last_run_status, ''), "
      "coalesce(s.total_successes, 0), coalesce(s.total_failures, 0), ",
      TimestampToMicrosSql("s.next_start"),
      " FROM timescaledb_information.jobs j LEFT JOIN timescaledb_information.job_stats s "
      "USING (job_id) WHERE j.proc_name LIKE 'policy_%' ORDER BY j.job_id"));
  if (!r.ok()) return r.status();
  for (int i = 0; i < r->rows(); ++i) {
    telemetry::v1::Job j;
    j.set_name(std::string(r->Get(i, 0)));
    j.set_schedule(absl::StrCat("every ", absl::FormatDuration(absl::Seconds(r->GetInt(i, 1)))));
    if (!r->IsNull(i, 2)) SetFromMicros(r->GetInt(i, 2), j.mutable_last_run_started());
    if (!r->IsNull(i, 3)) j.set_last_run_seconds(r->GetDouble(i, 3));
    std::string status(r->Get(i, 4));
    j.set_last_run_status(status == "Success" ? "success" : status == "Failed" ? "failure" : status);
    j.set_total_successes(r->GetInt(i, 5));
    j.set_total_failures(r->GetInt(i, 6));
    if (!r->IsNull(i, 7)) SetFromMicros(r->GetInt(i, 7), j.mutable_next_start());
    jobs.push_back(std::move(j));
  }
  // The last error of each failed job. A separate query: a role that may
  // not read job_errors still gets the list.
  auto errors = (*conn)->Query(
      "SELECT DISTINCT ON (e.proc_name) e.proc_name, coalesce(e.err_message, '') "
      "FROM timescaledb_information.job_errors e WHERE e.proc_name LIKE 'policy_%' "
      "ORDER BY e.proc_name, e.finish_time DESC");
  if (errors.ok()) {
    for (telemetry::v1::Job& j : jobs) {
      if (j.last_run_status() != "failure") continue;
      for (int i = 0; i < errors->rows(); ++i) {
        if (errors->Get(i, 0) == j.name()) j.set_last_error(std::string(errors->Get(i, 1)));
      }
    }
  }
  return jobs;
}

absl::StatusOr<telemetry::v1::ListChunksResponse> LifecycleJobs::Chunks() {
  telemetry::v1::ListChunksResponse out;
  auto conn = ctx_.reader->Acquire();
  if (!conn.ok()) return conn.status();
  if (ctx_.mode == pg::StorageMode::kNative) {
    auto r = (*conn)->Query(
        "SELECT c.relname, pg_total_relation_size(c.oid), greatest(c.reltuples, 0)::bigint "
        "FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = 'sensor_readings'::regclass ORDER BY c.relname");
    if (!r.ok()) return r.status();
    for (int i = 0; i < r->rows(); ++i) {
      auto* c = out.add_chunks();
      std::string name(r->Get(i, 0));
      c->set_name(name);
      c->set_total_bytes(r->GetInt(i, 1));
      c->set_estimated_rows(r->GetInt(i, 2));
      // Day partitions are named sensor_readings_pYYYYMMDD.
      int y, m, d;
      if (absl::StartsWith(name, "sensor_readings_p") && name.size() == 25 &&
          absl::SimpleAtoi(name.substr(17, 4), &y) && absl::SimpleAtoi(name.substr(21, 2), &m) &&
          absl::SimpleAtoi(name.substr(23, 2), &d)) {
        absl::Time day = absl::FromCivil(absl::CivilDay(y, m, d), absl::UTCTimeZone());
        SetFromMicros(absl::ToUnixMicros(day), c->mutable_range_start());
        SetFromMicros(absl::ToUnixMicros(day + absl::Hours(24)), c->mutable_range_end());
      }
      out.set_total_bytes(out.total_bytes() + c->total_bytes());
    }
    return out;
  }
  auto r = (*conn)->Query(absl::StrCat(
      "SELECT c.chunk_schema || '.' || c.chunk_name, ", TimestampToMicrosSql("c.range_start"),
      ", ", TimestampToMicrosSql("c.range_end"),
      ", c.is_compressed, coalesce(d.total_bytes, 0), "
      // A compressed chunk's rows live in its compressed table: count them
      // from TimescaleDB's compression statistics (exact as of compression),
      // plus whatever was written into the chunk since.
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
  for (int i = 0; i < r->rows(); ++i) {
    auto* c = out.add_chunks();
    c->set_name(std::string(r->Get(i, 0)));
    SetFromMicros(r->GetInt(i, 1), c->mutable_range_start());
    SetFromMicros(r->GetInt(i, 2), c->mutable_range_end());
    c->set_compressed(r->GetBool(i, 3));
    c->set_total_bytes(r->GetInt(i, 4));
    c->set_estimated_rows(r->GetInt(i, 5));
    out.set_total_bytes(out.total_bytes() + c->total_bytes());
  }
  auto ratio = (*conn)->Query(
      "SELECT coalesce(sum(after_compression_total_bytes)::float8 / "
      "nullif(sum(before_compression_total_bytes), 0), 0) "
      "FROM hypertable_compression_stats('sensor_readings')");
  if (ratio.ok() && ratio->rows() > 0) out.set_compression_ratio(ratio->GetDouble(0, 0));
  return out;
}

void LifecycleJobs::ExportJob(const telemetry::v1::Job& job) {
  const prometheus::Labels labels{{"job_name", job.name()}};
  if (job.has_last_run_started()) {
    job_last_run_.Add(labels).Set(ToUnixSeconds(job.last_run_started()));
    job_last_duration_.Add(labels).Set(job.last_run_seconds());
  }
  if (job.last_run_status() == "success" || job.last_run_status() == "failure") {
    job_last_success_.Add(labels).Set(job.last_run_status() == "success" ? 1 : 0);
  }
  job_runs_.Add({{"job_name", job.name()}, {"result", "success"}})
      .Set(static_cast<double>(job.total_successes()));
  job_runs_.Add({{"job_name", job.name()}, {"result", "failure"}})
      .Set(static_cast<double>(job.total_failures()));
  // Each new failure once in the log, with its error, in both modes.
  auto [seen, first] = failures_logged_.try_emplace(job.name(), job.total_failures());
  if (job.total_failures() > seen->second || (first && job.last_run_status() == "failure")) {
    Log(LogLevel::kWarning, "background job failed",
        {{"job", job.name()},
         {"failures", absl::StrCat(job.total_failures())},
         {"error", job.last_error()}});
  }
  seen->second = job.total_failures();
  if (job.has_next_start()) job_next_start_.Add(labels).Set(ToUnixSeconds(job.next_start()));
}

void LifecycleJobs::CollectStats() {
  if (auto jobs = Jobs(); jobs.ok()) {
    for (const auto& j : *jobs) ExportJob(j);
  }
  if (auto chunks = Chunks(); chunks.ok()) {
    chunks_.Set(chunks->chunks_size());
    bytes_.Set(static_cast<double>(chunks->total_bytes()));
    compression_ratio_.Set(chunks->compression_ratio());
    double rows = 0;
    for (const auto& c : chunks->chunks()) rows += static_cast<double>(c.estimated_rows());
    rows_.Set(rows);
  }
  auto conn = ctx_.reader->Acquire();
  if (!conn.ok()) return;
  // How far the aggregate's watermark lags now: what refreshes have
  // covered, not where the newest data is (a quiet fleet is not stale), and
  // never negative (a refresh may reach past now).
  auto r = (*conn)->Query(
      ctx_.mode == pg::StorageMode::kNative
          ? "SELECT greatest(extract(epoch FROM now() - watermark), 0)::float8 "
            "FROM telemetry_aggregate_state WHERE watermark > '-infinity'"
          : "SELECT greatest(extract(epoch FROM now() - w), 0)::float8 "
            "FROM telemetry_summary_watermark() w WHERE w > '-infinity' AND "
            "w > '1970-01-01'");
  if (r.ok()) {
    staleness_.Set(r->rows() > 0 && !r->IsNull(0, 0) ? r->GetDouble(0, 0) : -1);
  }
}

}  // namespace telemetry::query
