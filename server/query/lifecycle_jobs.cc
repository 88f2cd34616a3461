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

prometheus::Family<prometheus::Gauge>& GaugeFamily(prometheus::Registry& r,
                                                   const std::string& name,
                                                   const std::string& help) {
  return prometheus::BuildGauge().Name(name).Help(help).Register(r);
}

// The family's one unlabelled series set to `value` when `present`, and
// removed otherwise (so a scrape shows no series, not a made-up value).
void SetOrRemove(prometheus::Family<prometheus::Gauge>& family, bool present, double value) {
  if (present) {
    family.Add({}).Set(value);
  } else if (family.Has({})) {
    family.Remove(&family.Add({}));
  }
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
      job_runs_(prometheus::BuildCounter()
                    .Name("telemetry_job_runs_total")
                    .Help("Runs of each job, by result")
                    .Register(registry)),
      job_next_start_(GaugeFamily(registry, "telemetry_job_next_start_timestamp_seconds",
                                  "When each job runs next")),
      staleness_(GaugeFamily(registry, "telemetry_aggregate_staleness_seconds",
                             "Now minus the watermark of sensor_readings_summary_hourly: how "
                             "far refreshes lag, not the newest data (absent before the first "
                             "refresh)")),
      watermark_(GaugeFamily(registry, "telemetry_aggregate_watermark_timestamp_seconds",
                             "The hourly aggregate is materialised up to this time (absent "
                             "before the first refresh)")),
      compression_ratio_(GaugeFamily(registry, "telemetry_compression_ratio",
                                     "Compressed / uncompressed bytes of the compressed chunks "
                                     "(absent while none is compressed)")),
      chunks_(GaugeFamily(registry, "telemetry_storage_chunks",
                          "Partitions (native) or chunks (timescale) of sensor_readings")
                  .Add({})),
      compressed_chunks_(GaugeFamily(registry, "telemetry_storage_compressed_chunks",
                                     "Chunks of sensor_readings that are compressed")
                             .Add({})),
      bytes_(GaugeFamily(registry, "telemetry_storage_bytes",
                         "Total size of sensor_readings, indexes included")
                 .Add({})),
      rows_(GaugeFamily(registry, "telemetry_readings_estimated_rows",
                        "Planner estimate of the rows in sensor_readings")
                .Add({})),
      reader_standby_(GaugeFamily(registry, "telemetry_read_database_standby",
                                  "1 if queries are answered by a streaming standby, 0 if "
                                  "by the primary")
                          .Add({})),
      replica_lag_(GaugeFamily(registry, "telemetry_read_replica_lag_seconds",
                               "How far behind its primary the standby answering queries may "
                               "be (0: caught up and streaming; absent on a primary, or when "
                               "the standby cannot tell)")) {
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
  const bool native_jobs = ctx_.schema().ServiceRunsJobs() && options_.run_native_jobs;
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
  return ctx_.schema().RefreshAggregate(**conn, start_us, end_us,
                                        options_.on_demand_refresh_timeout);
}

absl::StatusOr<std::string> LifecycleJobs::RunRetention() {
  auto conn = ctx_.writer->Acquire();
  if (!conn.ok()) return conn.status();
  return ctx_.schema().DropExpired(**conn, options_.retention);
}

absl::StatusOr<std::string> LifecycleJobs::RunCompression() {
  // Answered without a connection where there is nothing to compress.
  if (absl::Status s = ctx_.schema().CompressionAvailable(); !s.ok()) return s;
  auto conn = ctx_.writer->Acquire();
  if (!conn.ok()) return conn.status();
  return ctx_.schema().CompressDue(**conn);
}

absl::StatusOr<std::vector<telemetry::v1::Job>> LifecycleJobs::Jobs() {
  std::vector<telemetry::v1::Job> jobs;
  if (ctx_.schema().ServiceRunsJobs()) {
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
    // The service's own state: answered (and exported) with the database
    // away, which is when a failing job matters most.
    return jobs;
  }
  auto conn = ctx_.reader->Acquire();
  if (!conn.ok()) return conn.status();
  auto database_jobs = ctx_.schema().DatabaseJobs(**conn);
  if (!database_jobs.ok()) return database_jobs.status();
  for (const pg::DatabaseJob& d : *database_jobs) {
    telemetry::v1::Job j;
    j.set_name(d.name);
    j.set_schedule(absl::StrCat("every ", absl::FormatDuration(d.schedule)));
    if (d.last_start_us) SetFromMicros(*d.last_start_us, j.mutable_last_run_started());
    if (d.last_run_seconds) j.set_last_run_seconds(*d.last_run_seconds);
    j.set_last_run_status(d.last_status);
    j.set_last_error(d.last_error);
    j.set_total_successes(d.successes);
    j.set_total_failures(d.failures);
    if (d.next_start_us) SetFromMicros(*d.next_start_us, j.mutable_next_start());
    jobs.push_back(std::move(j));
  }
  return jobs;
}

absl::StatusOr<telemetry::v1::ListChunksResponse> LifecycleJobs::Chunks() {
  auto conn = ctx_.reader->Acquire();
  if (!conn.ok()) return conn.status();
  auto layout = ctx_.schema().Layout(**conn);
  if (!layout.ok()) return layout.status();
  telemetry::v1::ListChunksResponse out;
  for (const pg::StorageChunk& chunk : layout->chunks) {
    auto* c = out.add_chunks();
    c->set_name(chunk.name);
    if (chunk.range_start_us) SetFromMicros(*chunk.range_start_us, c->mutable_range_start());
    if (chunk.range_end_us) SetFromMicros(*chunk.range_end_us, c->mutable_range_end());
    c->set_compressed(chunk.compressed);
    c->set_total_bytes(chunk.total_bytes);
    c->set_estimated_rows(chunk.estimated_rows);
  }
  out.set_total_bytes(layout->total_bytes);
  out.set_compression_ratio(layout->compression_ratio);
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
  for (const auto& [result, total] : {std::pair{"success", job.total_successes()},
                                      std::pair{"failure", job.total_failures()}}) {
    // A total that went down (a job recreated in the database) starts over.
    int64_t& counted = runs_counted_[{job.name(), result}];
    auto& counter = job_runs_.Add({{"job_name", job.name()}, {"result", result}});
    if (total > counted) counter.Increment(static_cast<double>(total - counted));
    counted = total;
  }
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
  MutexLock collecting(&collect_mu_);
  StatsSnapshot snapshot = LastStats();  // what a failed read keeps
  snapshot.collected = absl::Now();
  snapshot.error.clear();
  if (auto jobs = Jobs(); jobs.ok()) {
    for (const auto& j : *jobs) ExportJob(j);
    snapshot.jobs = *std::move(jobs);
  } else {
    snapshot.error = std::string(jobs.status().message());
  }
  if (auto chunks = Chunks(); chunks.ok()) {
    chunks_.Set(chunks->chunks_size());
    bytes_.Set(static_cast<double>(chunks->total_bytes()));
    double rows = 0, compressed = 0;
    for (const auto& c : chunks->chunks()) {
      rows += static_cast<double>(c.estimated_rows());
      compressed += c.compressed() ? 1 : 0;
    }
    rows_.Set(rows);
    compressed_chunks_.Set(compressed);
    SetOrRemove(compression_ratio_, compressed > 0 && chunks->compression_ratio() > 0,
                chunks->compression_ratio());
    snapshot.chunks = *std::move(chunks);
  } else {
    snapshot.error = std::string(chunks.status().message());
  }
  absl::Cleanup publish = [this, &snapshot] {
    MutexLock lock(&stats_mu_);
    last_stats_ = std::move(snapshot);
  };
  auto conn = ctx_.reader->Acquire();
  if (!conn.ok()) {
    snapshot.error = std::string(conn.status().message());
    return;
  }
  // How far the aggregate's watermark lags now: what refreshes have
  // covered, not where the newest data is (a quiet fleet is not stale), and
  // never negative (a refresh may reach past now).
  auto r = (*conn)->Query(
      "SELECT greatest(extract(epoch FROM now() - w), 0)::float8, extract(epoch FROM w)::float8 "
      "FROM telemetry_summary_watermark() w WHERE w > '-infinity' AND w > '1970-01-01'");
  if (r.ok()) {
    const bool materialised = r->rows() > 0 && !r->IsNull(0, 0);
    SetOrRemove(staleness_, materialised, materialised ? r->GetDouble(0, 0) : 0);
    SetOrRemove(watermark_, materialised, materialised ? r->GetDouble(0, 1) : 0);
    snapshot.watermark_read = true;
    snapshot.watermark = std::nullopt;
    if (materialised) {
      snapshot.watermark = absl::FromUnixMicros(static_cast<int64_t>(r->GetDouble(0, 1) * 1e6));
    }
  } else {
    snapshot.error = std::string(r.status().message());
  }
  // Whether queries are answered by a standby, and how far behind it may be.
  if (auto lag = ReadReplicaLag(**conn); lag.ok()) {
    reader_standby_.Set(lag->standby ? 1 : 0);
    SetOrRemove(replica_lag_, lag->standby && lag->lag.has_value(),
                lag->lag.has_value() ? absl::ToDoubleSeconds(*lag->lag) : 0);
    snapshot.replica = *lag;
  } else {
    snapshot.error = std::string(lag.status().message());
  }
}

LifecycleJobs::StatsSnapshot LifecycleJobs::LastStats() const {
  MutexLock lock(&stats_mu_);
  return last_stats_;
}

}  // namespace telemetry::query
