// Readiness from the dependencies: whether the database a service needs
// answers, probed on a thread of its own (never inside a call). The owner
// turns each change into its health status for the service's own name
// ("telemetry.v1.IngestService", "telemetry.v1.QueryService"), the one
// Kubernetes' readiness probe asks for, and leaves "" (liveness) SERVING:
// a process whose database is away is not broken, and restarting it would
// not bring the database back.
//
// Thread-safe.
#ifndef TELEMETRY_SERVER_COMMON_READINESS_H_
#define TELEMETRY_SERVER_COMMON_READINESS_H_

#include <functional>
#include <string>
#include <thread>

#include "absl/time/time.h"
#include "storage/util/mutex.h"

namespace telemetry {

class DatabaseReadiness {
 public:
  using OnChange = std::function<void(bool ready)>;

  // Probes `conninfo` with `SELECT 1` every `interval`; calls `on_change`
  // (on the probing thread) with the first result and then on each change.
  DatabaseReadiness(std::string conninfo, absl::Duration interval, OnChange on_change);
  ~DatabaseReadiness();  // stops probing; on_change is not called after it

  DatabaseReadiness(const DatabaseReadiness&) = delete;
  DatabaseReadiness& operator=(const DatabaseReadiness&) = delete;

 private:
  void Loop();

  const std::string conninfo_;
  const absl::Duration interval_;
  const OnChange on_change_;
  Notification stop_;
  std::thread thread_;
};

}  // namespace telemetry

#endif  // TELEMETRY_SERVER_COMMON_READINESS_H_
