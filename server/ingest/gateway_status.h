// The ingest gateway's status page: the service, its dependencies, the
// write queue and throughput, and what each device sent lately. Built from
// values the gateway already keeps (metrics, device activity): rendering
// it queries nothing.
#ifndef TELEMETRY_SERVER_INGEST_GATEWAY_STATUS_H_
#define TELEMETRY_SERVER_INGEST_GATEWAY_STATUS_H_

#include <optional>
#include <string>

#include "absl/time/time.h"
#include "server/common/status_page.h"
#include "server/ingest/device_activity.h"
#include "server/ingest/ingest_metrics.h"
#include "storage/pg/migration.h"

namespace telemetry::ingest {

struct GatewayStatusInputs {
  absl::Time started;
  std::optional<pg::StorageMode> mode;  // unset: the database not reached yet
  bool database_answers = false;
  bool redis_configured = false;  // false: deduplication by the database only
  std::optional<bool> redis_up;   // unset: no dedupe operation yet
  std::string redis_master_name;  // set: the primary is found through Sentinel
  std::string transport;          // "TLS", "mutual TLS", "plaintext"
  bool device_auth = true;
  // The per-device rate limit (0: none) and where it holds: across the
  // cluster while usage reports reach Redis, else at this gateway alone.
  double device_rate = 0;
  bool device_rate_cluster_wide = false;  // --device_limit_scope=cluster with a Redis
  std::optional<bool> usage_reports_ok;   // unset: no report yet
  int grpc_port = 0;
  int writers = 0;
  const IngestMetrics* metrics = nullptr;
  const DeviceActivity* activity = nullptr;
  size_t max_devices_shown = 100;
};

StatusReport GatewayStatus(const GatewayStatusInputs& in, absl::Time now);

}  // namespace telemetry::ingest

#endif  // TELEMETRY_SERVER_INGEST_GATEWAY_STATUS_H_
