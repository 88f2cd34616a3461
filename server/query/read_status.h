// The read service's status page: the service, its database, the lifecycle
// jobs, aggregate freshness and the storage layout (chunks or partitions,
// compression). Built from what the stats thread last read
// (LifecycleJobs::LastStats): rendering it queries nothing.
#ifndef TELEMETRY_SERVER_QUERY_READ_STATUS_H_
#define TELEMETRY_SERVER_QUERY_READ_STATUS_H_

#include <string>

#include "absl/time/time.h"
#include "server/common/status_page.h"
#include "server/query/lifecycle_jobs.h"
#include "storage/pg/migration.h"

namespace telemetry::query {

struct ReadStatusInputs {
  absl::Time started;
  pg::StorageMode mode = pg::StorageMode::kNative;
  bool database_answers = false;
  std::string transport;
  bool api_auth = true;
  int grpc_port = 0;
  int reader_connections = 0;
  int writer_connections = 0;
  // A watermark further behind is shown as stale (TelemetryAggregateStale's
  // threshold: normal lag is the refresh end offset plus up to a bucket and
  // a schedule period).
  absl::Duration stale_after = absl::Hours(3);
  // A standby further behind is shown as lagging (TelemetryReplicaLagging's
  // threshold).
  absl::Duration replica_lag_after = absl::Seconds(30);
  LifecycleJobs::StatsSnapshot stats;
  size_t max_chunks_shown = 10;
};

StatusReport ReadServiceStatus(const ReadStatusInputs& in, absl::Time now);

}  // namespace telemetry::query

#endif  // TELEMETRY_SERVER_QUERY_READ_STATUS_H_
