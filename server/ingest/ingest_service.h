// telemetry.v1.IngestService on gRPC's callback API.
//
// StreamReadings runs one StreamReactor per stream (stream_reactor.h);
// WriteBatch is a unary reaction. Both admit a message the same way
// (BatchAdmission) and hand it to the IngestPipeline; neither blocks.
//
// Both methods take raw bytes and parse them here, so that a message that is
// not a valid ReadingBatch (invalid UTF-8 in a string, nesting beyond
// protobuf's depth limit) gets INVALID_ARGUMENT with a reason, and on a
// stream only that message is refused, instead of gRPC's bare status.
#ifndef TELEMETRY_SERVER_INGEST_INGEST_SERVICE_H_
#define TELEMETRY_SERVER_INGEST_INGEST_SERVICE_H_

#include <string>

#include "absl/container/flat_hash_set.h"
#include "absl/functional/any_invocable.h"
#include "server/common/credentials.h"
#include "server/ingest/batch_admission.h"
#include "server/ingest/ingest_metrics.h"
#include "server/ingest/ingest_pipeline.h"
#include "server/ingest/stream_reactor.h"
#include "storage/util/mutex.h"
#include "telemetry/v1/ingest.grpc.pb.h"

namespace telemetry::ingest {

struct IngestServiceOptions : AdmissionOptions {
  // Batches one stream may have read but not yet acknowledged.
  int max_stream_window = 16;
};

class IngestServiceImpl final
    : public telemetry::v1::IngestService::WithRawCallbackMethod_StreamReadings<
          telemetry::v1::IngestService::WithRawCallbackMethod_WriteBatch<
              telemetry::v1::IngestService::Service>> {
 public:
  // `pipeline`, `metrics` (nullable) and `credentials` (nullable: device
  // authentication off; else with its background refresh started) must
  // outlive the service.
  IngestServiceImpl(IngestServiceOptions options, IngestPipeline* pipeline,
                    IngestMetrics* metrics, CredentialStore* credentials = nullptr);

  grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* StreamReadings(
      grpc::CallbackServerContext* context) override;

  grpc::ServerUnaryReactor* WriteBatch(grpc::CallbackServerContext* context,
                                       const grpc::ByteBuffer* request,
                                       grpc::ByteBuffer* response) override;

  // The calling device (nullptr when authentication is off), or
  // Unauthenticated/Unavailable as CredentialStore says; refusals are
  // counted and logged. Never blocks: `done` runs now or on the credential
  // refresher's thread (CredentialStore::AuthenticateDeviceAsync).
  void AuthenticateAsync(const grpc::CallbackServerContext& context,
                         const std::string& call_id,
                         absl::AnyInvocable<void(CredentialStore::DeviceResult) &&> done);

  // OK while the credential the call authenticated with is live (always,
  // with authentication off). Never queries the database: a reaction calls
  // it for every batch. `generation` is the caller's (see
  // CredentialStore::StillValid).
  absl::Status StillAuthenticated(const grpc::CallbackServerContext& context,
                                  uint64_t* generation);

  // Shutdown, first step: refuses new streams and ends every open one as
  // soon as its accepted batches are acknowledged, with UNAVAILABLE (the
  // client reconnects elsewhere and resends what was not acknowledged),
  // instead of leaving devices to hold their streams for the whole grace.
  void DrainStreams();

  // Open streams register themselves (from authentication to OnDone).
  // Register is false while draining: the stream must refuse itself.
  bool RegisterStream(DrainableStream* stream);
  void UnregisterStream(DrainableStream* stream);

  BatchAdmission& admission() { return admission_; }
  IngestPipeline* pipeline() { return pipeline_; }
  IngestMetrics* metrics() { return metrics_; }
  const IngestServiceOptions& options() const { return options_; }

 private:
  // WriteBatch once the caller is known.
  void WriteAuthenticated(grpc::CallbackServerContext* context, grpc::ServerUnaryReactor* reactor,
                          const grpc::ByteBuffer& request, grpc::ByteBuffer* response,
                          const std::string& call_id, CredentialStore::DeviceResult device);

  const IngestServiceOptions options_;
  IngestPipeline* const pipeline_;
  IngestMetrics* const metrics_;
  CredentialStore* const credentials_;
  BatchAdmission admission_;
  Mutex streams_mu_;
  absl::flat_hash_set<DrainableStream*> streams_ ABSL_GUARDED_BY(streams_mu_);
  bool draining_ ABSL_GUARDED_BY(streams_mu_) = false;
};

}  // namespace telemetry::ingest

#endif  // TELEMETRY_SERVER_INGEST_INGEST_SERVICE_H_
