#include "server/ingest/ingest_service.h"

#include <memory>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "server/common/correlation.h"
#include "server/common/log.h"
#include "server/common/status_util.h"

namespace telemetry::ingest {

using telemetry::v1::BatchAck;

IngestServiceImpl::IngestServiceImpl(IngestServiceOptions options, IngestPipeline* pipeline,
                                     IngestMetrics* metrics, CredentialStore* credentials)
    : options_(std::move(options)),
      pipeline_(pipeline),
      metrics_(metrics),
      credentials_(credentials),
      admission_(options_, metrics) {}

bool IngestServiceImpl::RegisterStream(DrainableStream* stream) {
  MutexLock lock(&streams_mu_);
  if (draining_) return false;
  streams_.insert(stream);
  return true;
}

void IngestServiceImpl::UnregisterStream(DrainableStream* stream) {
  MutexLock lock(&streams_mu_);
  streams_.erase(stream);
}

void IngestServiceImpl::DrainStreams() {
  std::vector<DrainableStream*> open;
  {
    MutexLock lock(&streams_mu_);
    draining_ = true;
    for (DrainableStream* s : streams_) {
      s->Ref();  // alive until drained, even if it ends meanwhile
      open.push_back(s);
    }
  }
  for (DrainableStream* s : open) {
    s->Drain(StreamReactor::ShuttingDown());
    s->Unref();
  }
}

absl::Status IngestServiceImpl::StillAuthenticated(const grpc::CallbackServerContext& context,
                                                   uint64_t* generation) {
  if (credentials_ == nullptr) return absl::OkStatus();
  absl::Status s = credentials_->StillValid(context, generation);
  if (!s.ok() && metrics_) metrics_->auth_failures.Increment();
  return s;
}

void IngestServiceImpl::AuthenticateAsync(
    const grpc::CallbackServerContext& context, const std::string& call_id,
    absl::AnyInvocable<void(CredentialStore::DeviceResult) &&> done) {
  if (credentials_ == nullptr) {
    std::move(done)(std::shared_ptr<const DeviceIdentity>());
    return;
  }
  credentials_->AuthenticateDeviceAsync(
      context, [this, call_id, peer = context.peer(),
                done = std::move(done)](CredentialStore::DeviceResult device) mutable {
        if (!device.ok()) {
          if (metrics_) metrics_->auth_failures.Increment();
          static LogRateLimiter limit(20, absl::Seconds(1));
          int64_t left_out = 0;
          if (limit.Allow(&left_out)) {
            Log(LogLevel::kWarning, "call refused",
                {{"request_id", call_id},
                 {"peer", peer},
                 {"reason", std::string(device.status().message())},
                 {"similar_lines_left_out", absl::StrCat(left_out)}});
          }
        }
        std::move(done)(std::move(device));
      });
}

grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* IngestServiceImpl::StreamReadings(
    grpc::CallbackServerContext* context) {
  return new StreamReactor(this, context);
}

grpc::ServerUnaryReactor* IngestServiceImpl::WriteBatch(grpc::CallbackServerContext* context,
                                                        const grpc::ByteBuffer* request,
                                                        grpc::ByteBuffer* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  const std::string call_id = CallCorrelationId(*context);
  context->AddInitialMetadata(kRequestIdHeader, call_id);
  // `request` and `response` stay valid until the reactor finishes.
  AuthenticateAsync(*context, call_id,
                    [this, context, reactor, request, response,
                     call_id](CredentialStore::DeviceResult device) {
                      WriteAuthenticated(context, reactor, *request, response, call_id,
                                         std::move(device));
                    });
  return reactor;
}

void IngestServiceImpl::WriteAuthenticated(grpc::CallbackServerContext* context,
                                           grpc::ServerUnaryReactor* reactor,
                                           const grpc::ByteBuffer& request,
                                           grpc::ByteBuffer* response, const std::string& call_id,
                                           CredentialStore::DeviceResult device) {
  if (!device.ok()) {
    reactor->Finish(ToGrpcStatus(device.status(), call_id));
    return;
  }
  AdmittedBatch batch = admission_.Parse(request, device->get(), call_id);
  if (batch.status.ok()) admission_.Admit(device->get(), &batch);
  if (!batch.status.ok()) {
    if (batch.retry_after > absl::ZeroDuration()) {
      context->AddTrailingMetadata("grpc-retry-pushback-ms",
                                   std::to_string(absl::ToInt64Milliseconds(batch.retry_after)));
    }
    reactor->Finish(ToGrpcStatus(batch.status, call_id));
    return;
  }
  absl::Status s = pipeline_->Submit(
      batch.dedupe_key, std::move(batch.rows),
      [this, reactor, response, device = *device, ack = std::move(batch.ack)](
          const BatchOutcome& outcome) mutable {
        admission_.Complete(outcome, device.get(), &ack);
        if (!outcome.status.ok()) {
          reactor->Finish(ToGrpcStatus(outcome.status, ack.correlation_id()));
          return;
        }
        bool own = false;
        (void)grpc::SerializationTraits<BatchAck>::Serialize(ack, response, &own);
        reactor->Finish(grpc::Status::OK);
      });
  if (!s.ok()) {
    admission_.RefusedBySubmit(call_id, batch.request.idempotency_key(), s, device->get());
    reactor->Finish(ToGrpcStatus(s, call_id));
  }
}

}  // namespace telemetry::ingest
