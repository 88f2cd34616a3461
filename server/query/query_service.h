// telemetry.v1.QueryService: the data layer's query archetypes.
//
// Synchronous gRPC handlers (each holds one pooled connection of the
// read-only role for the duration of its query). Every query is
// parameterised; every scan is bounded by an index or a LIMIT.
#ifndef TELEMETRY_SERVER_QUERY_QUERY_SERVICE_H_
#define TELEMETRY_SERVER_QUERY_QUERY_SERVICE_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "server/query/read_context.h"
#include "telemetry/v1/query.grpc.pb.h"

namespace telemetry::query {

class QueryServiceImpl final : public telemetry::v1::QueryService::Service {
 public:
  explicit QueryServiceImpl(const ReadContext* ctx) : ctx_(*ctx) {}

  grpc::Status LatestReadings(grpc::ServerContext* context,
                              const telemetry::v1::LatestReadingsRequest* request,
                              telemetry::v1::LatestReadingsResponse* response) override;
  grpc::Status ReadingsRange(
      grpc::ServerContext* context, const telemetry::v1::ReadingsRangeRequest* request,
      grpc::ServerWriter<telemetry::v1::ReadingsRangeChunk>* writer) override;
  grpc::Status HourlySummary(grpc::ServerContext* context,
                             const telemetry::v1::HourlySummaryRequest* request,
                             telemetry::v1::HourlySummaryResponse* response) override;
  grpc::Status DriftWindows(grpc::ServerContext* context,
                            const telemetry::v1::DriftWindowsRequest* request,
                            telemetry::v1::DriftWindowsResponse* response) override;
  grpc::Status GetSensor(grpc::ServerContext* context,
                         const telemetry::v1::GetSensorRequest* request,
                         telemetry::v1::Sensor* response) override;
  grpc::Status ListSensors(grpc::ServerContext* context,
                           const telemetry::v1::ListSensorsRequest* request,
                           telemetry::v1::ListSensorsResponse* response) override;
  grpc::Status UpsertSensor(grpc::ServerContext* context,
                            const telemetry::v1::UpsertSensorRequest* request,
                            telemetry::v1::Sensor* response) override;

 private:
  // Hours before this are materialised (INT64_MIN: none), as `conn`'s
  // server sees it; from the cache when `may_use_cached` and it is fresh.
  // Either way the cache is updated (a value read on a standby is never
  // newer than the primary's, so a primary may use it).
  absl::StatusOr<int64_t> Watermark(pg::Connection& conn, bool may_use_cached);

  const ReadContext& ctx_;
};

// Latest-N that costs the same whether 7 or 180 days are stored. The
// statement carries a lower time bound as a literal, so the planner prunes
// partitions (chunks) when it is prepared and the plan a connection keeps
// covers the same few newest ones at any retention; the bound is
// day-aligned, so the text, and the prepared plan, change once a day. A
// sensor with fewer than `limit` readings since the bound is asked again
// over the last month, then without a bound. Exact either way: when the
// window holds `limit` rows, they are the newest of all.
//
// The bounds LatestReadings tries at `now`, newest window first (nullopt:
// no bound).
std::vector<std::optional<absl::Time>> LatestReadingsWindows(absl::Time now);
// The statement for one window ($1: the sensor id; the validated limit and
// the bound are literals), exposed so a test can EXPLAIN exactly it and
// prove the plan reads the (sensor_id, timestamp DESC) index without a sort
// and only the partitions the bound keeps.
std::string LatestReadingsSql(uint32_t limit, std::optional<absl::Time> since);

}  // namespace telemetry::query

#endif  // TELEMETRY_SERVER_QUERY_QUERY_SERVICE_H_
