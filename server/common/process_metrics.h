// The standard process_* metrics (the names Prometheus' own clients export:
// CPU, memory, file descriptors, threads, start time) read from /proc at
// each scrape, and telemetry_build_info, for both services.
#ifndef TELEMETRY_SERVER_COMMON_PROCESS_METRICS_H_
#define TELEMETRY_SERVER_COMMON_PROCESS_METRICS_H_

#include <prometheus/collectable.h>
#include <prometheus/registry.h>

#include <memory>
#include <string>

namespace telemetry {

// A collectable to register with the exposer next to the registry.
// Thread-safe (it reads /proc on every Collect).
std::shared_ptr<prometheus::Collectable> MakeProcessCollector();

// telemetry_build_info{service, version} 1: joins version and service onto
// any series (`* on (instance) group_left(version) telemetry_build_info`).
void RegisterBuildInfo(prometheus::Registry& registry, const std::string& service);

}  // namespace telemetry

#endif  // TELEMETRY_SERVER_COMMON_PROCESS_METRICS_H_
