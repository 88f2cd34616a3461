// What every read-service handler needs: the two connection pools (one per
// database role), the storage mode, and the metrics. Owned by ReadServer.
#ifndef TELEMETRY_SERVER_QUERY_READ_CONTEXT_H_
#define TELEMETRY_SERVER_QUERY_READ_CONTEXT_H_

#include <grpcpp/support/status.h>
#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <string>

#include "absl/status/status.h"
#include "absl/time/clock.h"
#include "storage/pg/connection_pool.h"
#include "storage/pg/migration.h"

namespace telemetry::query {

// Per-RPC latency and errors, labelled by method (and code for errors).
class RpcMetrics {
 public:
  explicit RpcMetrics(prometheus::Registry& registry);
  void Observe(const std::string& method, absl::Duration elapsed,
               const grpc::Status& status);

 private:
  prometheus::Family<prometheus::Histogram>& latency_;
  prometheus::Family<prometheus::Counter>& errors_;
};

struct ReadContext {
  // Read-only role (telemetry_reader): every query.
  pg::ConnectionPool* reader = nullptr;
  // Write role (telemetry_maintainer): alerts, maintenance, sensor registry,
  // aggregate refresh and retention.
  pg::ConnectionPool* writer = nullptr;
  pg::StorageMode mode = pg::StorageMode::kNative;
  RpcMetrics* metrics = nullptr;  // nullable
};

// Times one RPC and records it when destroyed; `Done` converts the result.
class RpcScope {
 public:
  RpcScope(const ReadContext& ctx, std::string method)
      : ctx_(ctx), method_(std::move(method)), start_(absl::Now()) {}
  grpc::Status Done(const absl::Status& status);

 private:
  const ReadContext& ctx_;
  std::string method_;
  absl::Time start_;
};

}  // namespace telemetry::query

#endif  // TELEMETRY_SERVER_QUERY_READ_CONTEXT_H_
