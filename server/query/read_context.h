// What every read-service handler needs: the two connection pools (one per
// database role), the storage mode, and the metrics. Owned by ReadServer.
#ifndef TELEMETRY_SERVER_QUERY_READ_CONTEXT_H_
#define TELEMETRY_SERVER_QUERY_READ_CONTEXT_H_

#include <grpcpp/server_context.h>
#include <grpcpp/support/status.h>
#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/time/clock.h"
#include "server/common/credentials.h"
#include "storage/pg/schema_mode.h"
#include "storage/pg/connection_pool.h"
#include "storage/pg/migration.h"
#include "storage/util/mutex.h"

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

// The aggregate's watermark, cached for a second: it only moves forward, so
// a slightly old value is safe (the hours it misses are computed raw). This
// process's own refreshes invalidate it at once.
class WatermarkCache {
 public:
  // The cached value, or nullopt when it must be read again.
  std::optional<int64_t> Get() {
    MutexLock lock(&mu_);
    if (absl::Now() < expires_) return value_;
    return std::nullopt;
  }
  void Put(int64_t value) {
    MutexLock lock(&mu_);
    value_ = value;
    expires_ = absl::Now() + absl::Seconds(1);
  }
  void Invalidate() {
    MutexLock lock(&mu_);
    expires_ = absl::InfinitePast();
  }

 private:
  Mutex mu_;
  int64_t value_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Time expires_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
};

struct ReadContext {
  // Read-only role (telemetry_reader): every query.
  pg::ConnectionPool* reader = nullptr;
  // Write role (telemetry_maintainer): alerts, maintenance, sensor registry,
  // aggregate refresh and retention.
  pg::ConnectionPool* writer = nullptr;
  pg::StorageMode mode = pg::StorageMode::kNative;
  RpcMetrics* metrics = nullptr;  // nullable
  // What differs between the modes (the only place that knows).
  const pg::SchemaMode& schema() const { return pg::SchemaMode::For(mode); }
  WatermarkCache* watermark = nullptr;
  // API tokens; nullptr: authentication off (loopback development).
  CredentialStore* credentials = nullptr;
};

// OK when the call carries an API token of at least `needed` scope (or
// authentication is off); else Unauthenticated / PermissionDenied.
absl::Status Authorize(const ReadContext& ctx, const grpc::ServerContextBase& context,
                       ApiScope needed);

// One RPC's bookkeeping: its correlation id (returned in the x-request-id
// header, quoted in error replies and log lines), its latency and error
// metrics. Construct it first thing in a handler; `Done` converts the result.
class RpcScope {
 public:
  RpcScope(const ReadContext& ctx, grpc::ServerContext& context, std::string method);
  grpc::Status Done(const absl::Status& status);
  const std::string& request_id() const { return request_id_; }

 private:
  const ReadContext& ctx_;
  const grpc::ServerContext& context_;
  std::string method_;
  std::string request_id_;
  absl::Time start_;
};

}  // namespace telemetry::query

#endif  // TELEMETRY_SERVER_QUERY_READ_CONTEXT_H_
