// The read service's background jobs and their health.
//
// Native mode: the service itself runs the hourly-aggregate refresh policy
// (every `refresh_schedule`, window [now - start_offset, now - end_offset])
// and retention (dropping day partitions older than `retention`). Several
// replicas may run them: the refresh function takes an advisory lock and a
// replica that finds it taken skips that run ("skipped" is not a failure).
//
// Timescale mode: TimescaleDB runs the policies; this class reads their
// health from timescaledb_information.jobs / job_stats instead.
//
// In both modes the job health is exported as Prometheus gauges, together
// with aggregate staleness, storage figures (partitions/chunks, bytes,
// estimated rows, compression ratio) and, when queries go to a standby, its
// replica lag, refreshed every `stats_interval`.
#ifndef TELEMETRY_SERVER_QUERY_LIFECYCLE_JOBS_H_
#define TELEMETRY_SERVER_QUERY_LIFECYCLE_JOBS_H_

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>

#include <map>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/query/read_context.h"
#include "server/query/replica_lag.h"
#include "storage/util/mutex.h"
#include "telemetry/v1/query.pb.h"

namespace telemetry::query {

struct LifecycleOptions {
  absl::Duration refresh_schedule = absl::Minutes(30);
  absl::Duration refresh_start_offset = absl::Hours(3);
  absl::Duration refresh_end_offset = absl::Minutes(30);
  absl::Duration retention = absl::Hours(24 * 180);
  absl::Duration retention_schedule = absl::Hours(1);
  absl::Duration stats_interval = absl::Seconds(15);
  // Run the native jobs at all (tests drive them by hand).
  bool run_native_jobs = true;
  // Timescale mode, a login that does not own the aggregate: how long an
  // on-demand refresh waits for the owner's one-shot job (migration 0011).
  absl::Duration on_demand_refresh_timeout = absl::Minutes(10);
};

class LifecycleJobs {
 public:
  LifecycleJobs(const ReadContext* ctx, LifecycleOptions options,
                prometheus::Registry& registry);
  ~LifecycleJobs();  // Stop()

  void Start();
  void Stop();

  // Re-materialises [start, end) (both unset: everything). Returns hours
  // refreshed (native) or 0 (TimescaleDB). Aborted when another refresh
  // holds the lock. TimescaleDB mode under a login that does not own the
  // aggregate: runs as the owner's one-shot job and waits for it (at most
  // on_demand_refresh_timeout; the RPC's deadline does not stop the job).
  absl::StatusOr<int64_t> Refresh(std::optional<int64_t> start_us,
                                  std::optional<int64_t> end_us);
  // Runs retention now; returns a summary.
  absl::StatusOr<std::string> RunRetention();
  // Runs compression now (TimescaleDB only).
  absl::StatusOr<std::string> RunCompression();

  absl::StatusOr<std::vector<telemetry::v1::Job>> Jobs();
  absl::StatusOr<telemetry::v1::ListChunksResponse> Chunks();

  // Reads job health and storage figures into the gauges now.
  void CollectStats();

  // What CollectStats read, for the status page (which must not query the
  // database on every view). A part that failed to read keeps its last
  // good value, as the gauges do; `error` says that the last pass failed.
  struct StatsSnapshot {
    absl::Time collected = absl::InfinitePast();  // the last pass; never yet
    std::string error;  // of the last pass, when some read failed
    std::optional<std::vector<telemetry::v1::Job>> jobs;      // unset: never read
    std::optional<telemetry::v1::ListChunksResponse> chunks;  // unset: never read
    bool watermark_read = false;
    // The aggregate is materialised up to here; unset: nothing yet.
    std::optional<absl::Time> watermark;
    // The server answering queries; unset: never read.
    std::optional<ReplicaLag> replica;
  };
  StatsSnapshot LastStats() const;

 private:
  struct JobState {
    std::string name;
    absl::Duration schedule;
    absl::Time last_start = absl::InfinitePast();
    absl::Duration last_duration;
    std::string last_status;
    std::string last_error;  // of the last run, when it failed
    int64_t successes = 0, failures = 0;
    absl::Time next_start = absl::InfinitePast();
  };
  void Loop();
  // `job_state` is one of the guarded members; read and written under mu_.
  void RunJob(JobState* job_state, const std::function<absl::Status()>& body)
      ABSL_LOCKS_EXCLUDED(mu_);
  void ExportJob(const telemetry::v1::Job& job) ABSL_EXCLUSIVE_LOCKS_REQUIRED(collect_mu_);
  // Held for the whole of a CollectStats (the stats thread's, or a
  // caller's: the admin RPCs and tests collect on demand).
  Mutex collect_mu_ ABSL_ACQUIRED_BEFORE(stats_mu_);
  // Failures seen per job, to log each new one once.
  std::map<std::string, int64_t> failures_logged_ ABSL_GUARDED_BY(collect_mu_);

  const ReadContext& ctx_;
  const LifecycleOptions options_;
  prometheus::Family<prometheus::Gauge>& job_last_run_;
  prometheus::Family<prometheus::Gauge>& job_last_duration_;
  prometheus::Family<prometheus::Gauge>& job_last_success_;
  prometheus::Family<prometheus::Counter>& job_runs_;
  prometheus::Family<prometheus::Gauge>& job_next_start_;
  // Present only while there is something to say: no aggregate watermark
  // before the first refresh, no ratio while nothing is compressed (a
  // sentinel value would read as data on a dashboard).
  prometheus::Family<prometheus::Gauge>& staleness_;
  prometheus::Family<prometheus::Gauge>& watermark_;
  prometheus::Family<prometheus::Gauge>& compression_ratio_;
  prometheus::Gauge& chunks_;
  prometheus::Gauge& compressed_chunks_;
  prometheus::Gauge& bytes_;
  prometheus::Gauge& rows_;
  prometheus::Gauge& reader_standby_;
  prometheus::Family<prometheus::Gauge>& replica_lag_;  // present only on a standby
  // Runs counted into job_runs_ so far, per job and result: job stats are
  // cumulative totals, the counter is advanced by the difference.
  std::map<std::pair<std::string, std::string>, int64_t> runs_counted_
      ABSL_GUARDED_BY(collect_mu_);

  mutable Mutex stats_mu_;
  StatsSnapshot last_stats_ ABSL_GUARDED_BY(stats_mu_);

  Mutex mu_;
  JobState refresh_ ABSL_GUARDED_BY(mu_);
  JobState retention_ ABSL_GUARDED_BY(mu_);
  Notification stop_;
  std::thread thread_;
};

}  // namespace telemetry::query

#endif  // TELEMETRY_SERVER_QUERY_LIFECYCLE_JOBS_H_
