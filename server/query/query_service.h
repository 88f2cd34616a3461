// telemetry.v1.QueryService: the data layer's query archetypes.
//
// Synchronous gRPC handlers (each holds one pooled connection of the
// read-only role for the duration of its query). Every query is
// parameterised; every scan is bounded by an index or a LIMIT.
#ifndef TELEMETRY_SERVER_QUERY_QUERY_SERVICE_H_
#define TELEMETRY_SERVER_QUERY_QUERY_SERVICE_H_

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
  // Hours before this are materialised (INT64_MIN: none). Cached briefly.
  absl::StatusOr<int64_t> Watermark(pg::Connection& conn);

  const ReadContext& ctx_;
};

// The statement LatestReadings runs ($1: the sensor id; the validated limit
// is a literal), exposed so a test can EXPLAIN exactly it and prove the plan
// reads the (sensor_id, timestamp DESC) index without a sort.
std::string LatestReadingsSql(uint32_t limit);

}  // namespace telemetry::query

#endif  // TELEMETRY_SERVER_QUERY_QUERY_SERVICE_H_
