// telemetry.v1.IngestService on gRPC's callback API.
//
// StreamReadings runs one reactor per stream (the shape of gRPC's
// route_guide callback example): read a batch, validate it, hand it to the
// pipeline, read the next one while fewer than `max_stream_window` batches
// of this stream are unacknowledged. When the pipeline's queue is full the
// reactor parks the batch and stops reading until space frees, so HTTP/2
// flow control pushes back on the client. Acks are written one at a time in
// completion order. No reaction ever blocks.
//
// Both methods take raw bytes and parse them here, so that a message that is
// not a valid ReadingBatch (invalid UTF-8 in a string, nesting beyond
// protobuf's depth limit) gets INVALID_ARGUMENT with a reason, and on a
// stream only that message is refused, instead of gRPC's bare status.
#ifndef TELEMETRY_SERVER_INGEST_INGEST_SERVICE_H_
#define TELEMETRY_SERVER_INGEST_INGEST_SERVICE_H_

#include "absl/container/flat_hash_set.h"
#include "server/common/credentials.h"
#include "server/common/ingest_metrics.h"
#include "server/ingest/device_limiter.h"
#include "server/ingest/ingest_pipeline.h"
#include "server/ingest/validator.h"
#include "storage/util/mutex.h"
#include "telemetry/v1/ingest.grpc.pb.h"

namespace telemetry::ingest {

struct IngestServiceOptions {
  ValidationOptions validation;
  // Per-device rate and stream limits; they apply to authenticated devices
  // (with authentication off there is no device to hold to them).
  DeviceLimits device_limits;
  // Batches one stream may have read but not yet acknowledged.
  int max_stream_window = 16;
  // A larger message is refused as INVALID_ARGUMENT (on a stream, that
  // message alone). IngestServer sets it from its own max_message_bytes.
  size_t max_message_bytes = 8 << 20;
};

// An open stream as the service sees it, so that shutdown can end them.
class DrainableStream {
 public:
  virtual ~DrainableStream() = default;
  // Stop reading; finish with `status` once what was accepted is
  // acknowledged.
  virtual void Drain(const grpc::Status& status) = 0;
  virtual void Ref() = 0;
  virtual void Unref() = 0;
};

class IngestServiceImpl final
    : public telemetry::v1::IngestService::WithRawCallbackMethod_StreamReadings<
          telemetry::v1::IngestService::WithRawCallbackMethod_WriteBatch<
              telemetry::v1::IngestService::Service>> {
 public:
  // `pipeline`, `metrics` (nullable) and `credentials` (nullable: device
  // authentication off) must outlive the service.
  IngestServiceImpl(IngestServiceOptions options, IngestPipeline* pipeline,
                    IngestMetrics* metrics, CredentialStore* credentials = nullptr);

  grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* StreamReadings(
      grpc::CallbackServerContext* context) override;

  grpc::ServerUnaryReactor* WriteBatch(grpc::CallbackServerContext* context,
                                       const grpc::ByteBuffer* request,
                                       grpc::ByteBuffer* response) override;

  // The calling device, or nullptr when authentication is off;
  // Unauthenticated/Unavailable as CredentialStore says.
  absl::StatusOr<std::shared_ptr<const DeviceIdentity>> Authenticate(
      const grpc::CallbackServerContext& context, const std::string& call_id);

  // OK while the credential the call authenticated with is live (always,
  // with authentication off). Never queries the database: a reaction calls
  // it for every batch. `generation` is the caller's (see
  // CredentialStore::StillValid).
  absl::Status StillAuthenticated(const grpc::CallbackServerContext& context,
                                  uint64_t* generation);

  // One warning line (rate-limited) for a batch of which nothing was stored:
  // refused whole, throttled, or failed in the database.
  void LogRefusal(absl::string_view correlation_id, const DeviceIdentity* device,
                  absl::string_view idempotency_key, absl::string_view reason);

  // Validates `batch` and fills the parts of its ack known before writing
  // (key, rejected readings, batch-level status). Counts rejections. With a
  // `device`, a batch holding any reading of a sensor the device may not
  // write fails whole with PermissionDenied (nothing of it is stored).
  ValidatedBatch Validate(const telemetry::v1::ReadingBatch& batch, const DeviceIdentity* device,
                          telemetry::v1::BatchAck* ack);

  // The deduplication key of `batch` from `device`: idempotency keys are
  // the devices' own, so two devices' equal keys must not collide.
  static std::string DedupeKey(const telemetry::v1::ReadingBatch& batch,
                               const DeviceIdentity* device);

  // Zero when `device` (nullable) may write `readings` now; else how long
  // until it may, and counts the refusal.
  absl::Duration Throttle(const DeviceIdentity* device, size_t readings);

  // Fills `ack` (and the unary trailer via `context`) for a throttled batch.
  static void SetThrottled(const DeviceIdentity& device, absl::Duration wait,
                           double readings_per_second, telemetry::v1::BatchAck* ack);

  // Shutdown, first step: refuses new streams and ends every open one as
  // soon as its accepted batches are acknowledged, with UNAVAILABLE (the
  // client reconnects elsewhere and resends what was not acknowledged),
  // instead of leaving devices to hold their streams for the whole grace.
  void DrainStreams();

  // Open streams register themselves (the reactor, constructor to OnDone).
  // Register is false while draining: the stream must refuse itself.
  bool RegisterStream(DrainableStream* stream);
  void UnregisterStream(DrainableStream* stream);

  DeviceLimiter& limiter() { return limiter_; }
  IngestPipeline* pipeline() { return pipeline_; }
  IngestMetrics* metrics() { return metrics_; }
  const IngestServiceOptions& options() const { return options_; }

 private:
  const IngestServiceOptions options_;
  IngestPipeline* const pipeline_;
  IngestMetrics* const metrics_;
  CredentialStore* const credentials_;
  DeviceLimiter limiter_;
  Mutex streams_mu_;
  absl::flat_hash_set<DrainableStream*> streams_ ABSL_GUARDED_BY(streams_mu_);
  bool draining_ ABSL_GUARDED_BY(streams_mu_) = false;
};

}  // namespace telemetry::ingest

#endif  // TELEMETRY_SERVER_INGEST_INGEST_SERVICE_H_
