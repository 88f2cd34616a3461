#include "server/ingest/ingest_service.h"

#include <atomic>
#include <deque>
#include <memory>
#include <optional>
#include <utility>

#include "absl/time/clock.h"
#include "absl/strings/str_cat.h"
#include "server/common/correlation.h"
#include "server/common/log.h"
#include "server/common/status_util.h"
#include "storage/util/mutex.h"

namespace telemetry::ingest {
namespace {

using telemetry::v1::BatchAck;
using telemetry::v1::ReadingBatch;

// Parses a ReadingBatch from the wire; InvalidArgument saying why not.
// A message over `max_bytes` is refused too (resending it cannot succeed),
// after parsing, so that its refusal can name its idempotency key.
absl::Status ParseBatch(const grpc::ByteBuffer& bytes, size_t max_bytes, ReadingBatch* batch) {
  const size_t size = bytes.Length();
  grpc::ByteBuffer copy(bytes);  // shares the slices
  grpc::Status st = grpc::SerializationTraits<ReadingBatch>::Deserialize(&copy, batch);
  if (!st.ok()) {
    return absl::InvalidArgumentError(
        "the message is not a valid telemetry.v1.ReadingBatch (a string field that is not "
        "UTF-8, metadata nested beyond protobuf's depth limit, or bytes that are not protobuf)");
  }
  if (size > max_bytes) {
    batch->clear_readings();
    return absl::InvalidArgumentError(absl::StrCat("the message is ", size,
                                                   " bytes; the limit is ", max_bytes,
                                                   " bytes: split the batch"));
  }
  return absl::OkStatus();
}

grpc::ByteBuffer Serialize(const BatchAck& ack) {
  grpc::ByteBuffer out;
  bool own = false;
  (void)grpc::SerializationTraits<BatchAck>::Serialize(ack, &out, &own);
  return out;
}

// Completes `ack` with the pipeline's outcome, and counts the batch's
// rejected readings once: not when the batch was not stored, nor when it
// was a resend answered as a duplicate (its rejections were counted the
// first time).
void ApplyOutcome(const BatchOutcome& outcome, IngestMetrics* metrics, BatchAck* ack) {
  if (!outcome.status.ok()) {
    ack->set_status_code(static_cast<int32_t>(outcome.status.code()));
    ack->set_status_message(PublicMessage(outcome.status));  // the detail is logged
    return;
  }
  ack->set_accepted(outcome.accepted);
  ack->set_duplicates(outcome.duplicates);
  const bool resend = outcome.accepted == 0 && outcome.duplicates > 0;
  if (metrics != nullptr && !resend) {
    metrics->readings_rejected.Increment(static_cast<double>(ack->rejected()));
  }
}

// One per StreamReadings call. gRPC keeps the reactor alive during its own
// reactions and calls OnDone after Finish, but pipeline callbacks run on
// flusher threads gRPC knows nothing of: the moment one of them enqueues
// the last ack, the write can fail (the client cancelled), another thread
// can Finish, and OnDone can run while the callback is still returning. So
// the reactor is reference-counted: one reference for gRPC (dropped in
// OnDone) and one per callback handed to the pipeline (dropped as the
// callback's last act), and whoever drops the last deletes it.
class StreamReactor final
    : public grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>,
      public DrainableStream {
 public:
  StreamReactor(IngestServiceImpl* service, grpc::CallbackServerContext* context)
      : service_(service), context_(context), call_id_(CallCorrelationId(*context)) {
    if (service_->metrics()) service_->metrics()->active_streams.Increment();
    context->AddInitialMetadata(kRequestIdHeader, call_id_);
    auto device = service_->Authenticate(*context, call_id_);
    if (!device.ok()) {
      {
        MutexLock lock(&mu_);
        finished_ = true;
      }
      Finish(ToGrpcStatus(device.status(), call_id_));
      return;
    }
    device_ = *std::move(device);
    if (device_ != nullptr) {
      if (!service_->limiter().OpenStream(device_->device_id)) {
        {
          MutexLock lock(&mu_);
          finished_ = true;
        }
        const DeviceLimits& limits = service_->options().device_limits;
        context->AddTrailingMetadata("grpc-retry-pushback-ms", "1000");
        const std::string why = absl::StrCat("device '", device_->device_id, "' already has ",
                                             limits.max_streams,
                                             " open streams, its limit; retry in 1000 ms");
        service_->LogRefusal(call_id_, device_.get(), "", why);
        // counted_stream_ stays false: OnDone has no stream to release.
        Finish(grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                            WithCorrelation(why, call_id_)));
        return;
      }
      counted_stream_ = true;
    }
    if (!service_->RegisterStream(this)) {  // the gateway is shutting down
      {
        MutexLock lock(&mu_);
        finished_ = true;
      }
      Finish(ShuttingDown());
      return;
    }
    registered_ = true;
    MaybeStartRead();
  }

  static grpc::Status ShuttingDown() {
    return grpc::Status(grpc::StatusCode::UNAVAILABLE,
                        "the gateway is shutting down: reconnect and resend what was not "
                        "acknowledged");
  }

  void Drain(const grpc::Status& status) override {
    {
      MutexLock lock(&mu_);
      // A client that half-closed already gets its acks and a clean finish.
      if (finished_ || ended_ || reads_done_) return;
      ended_ = true;
      final_status_ = status;
    }
    MaybeFinish();
  }

  // The reading reaction owns request_ and messages_ from the moment its
  // read completes until it has consumed the message: reading_ stays true
  // until then, so no other thread (an OnWriteDone freeing window, a
  // pipeline callback) can StartRead into request_ while it is being
  // parsed, and reading reactions never overlap.
  void OnReadDone(bool ok) override {
    bool discard = false;
    {
      MutexLock lock(&mu_);
      awaiting_read_ = false;
      if (!ok) reads_done_ = true;
      // Read after the stream was ended (drain, revocation): not processed,
      // not acknowledged, so the client resends it elsewhere.
      discard = ok && (ended_ || finished_);
      if (!ok || discard) {
        reading_ = false;
      } else {
        ++window_;  // from now until its ack is written or dropped
      }
    }
    if (!ok || discard) {
      request_.Clear();
      MaybeFinish();
      return;
    }
    ReadingBatch batch;
    absl::Status parsed =
        ParseBatch(request_, service_->options().max_message_bytes, &batch);
    request_.Clear();
    if (parsed.ok()) {
      HandleBatch(batch);
    } else {
      // Only this message is refused; the stream goes on. Its key is known
      // when it parsed (an oversized batch).
      BatchAck ack;
      ack.set_idempotency_key(batch.idempotency_key());
      ack.set_correlation_id(NextBatchId());
      ack.set_status_code(static_cast<int32_t>(parsed.code()));
      ack.set_status_message(std::string(parsed.message()));
      if (service_->metrics()) service_->metrics()->batches_invalid.Increment();
      service_->LogRefusal(ack.correlation_id(), device_.get(), ack.idempotency_key(),
                           ack.status_message());
      EnqueueAck(ack);
    }
    {
      MutexLock lock(&mu_);
      reading_ = false;  // request_ is free again
    }
    MaybeStartRead();
    MaybeFinish();
  }

  void OnWriteDone(bool ok) override {
    bool start_write = false;
    {
      MutexLock lock(&mu_);
      --window_;
      if (!ok) {
        write_failed_ = true;
        window_ -= static_cast<int>(acks_.size());
        acks_.clear();
        writing_ = false;
      } else if (!acks_.empty()) {
        current_ack_ = std::move(acks_.front());
        acks_.pop_front();
        start_write = true;
      } else {
        writing_ = false;
      }
    }
    if (start_write) StartWrite(&current_ack_);
    MaybeStartRead();
    MaybeFinish();
  }

  void OnDone() override {
    if (registered_) service_->UnregisterStream(this);
    if (service_->metrics()) service_->metrics()->active_streams.Decrement();
    if (counted_stream_) service_->limiter().CloseStream(device_->device_id);
    Unref();
  }

 private:
  struct Parked {
    std::string key;
    std::vector<ReadingRow> rows;
    BatchAck ack;
  };

  // Runs inside the reading reaction (see OnReadDone); the message already
  // counts in window_.
  void HandleBatch(const ReadingBatch& batch) {
    BatchAck ack;
    // A device revoked while its stream is open: this batch is refused and
    // the stream ends with UNAUTHENTICATED once what was accepted before
    // is acknowledged.
    if (absl::Status live = service_->StillAuthenticated(*context_, &credential_generation_);
        !live.ok()) {
      ack.set_idempotency_key(batch.idempotency_key());
      ack.set_correlation_id(NextBatchId());
      ack.set_status_code(static_cast<int32_t>(live.code()));
      ack.set_status_message(std::string(live.message()));
      service_->LogRefusal(ack.correlation_id(), device_.get(), batch.idempotency_key(),
                           ack.status_message());
      {
        MutexLock lock(&mu_);
        ended_ = true;
        final_status_ = ToGrpcStatus(live, call_id_);
      }
      EnqueueAck(ack);
      return;
    }
    ValidatedBatch v = service_->Validate(batch, device_.get(), &ack);
    ack.set_correlation_id(NextBatchId());
    if (!v.status.ok()) {
      service_->LogRefusal(ack.correlation_id(), device_.get(), batch.idempotency_key(),
                           ack.status_message());
      EnqueueAck(ack);
      return;
    }
    if (absl::Duration wait = service_->Throttle(device_.get(), v.rows.size());
        wait > absl::ZeroDuration()) {
      IngestServiceImpl::SetThrottled(
          *device_, wait, service_->options().device_limits.readings_per_second, &ack);
      service_->LogRefusal(ack.correlation_id(), device_.get(), batch.idempotency_key(),
                           ack.status_message());
      EnqueueAck(ack);
      return;
    }
    auto parked = std::make_unique<Parked>(Parked{
        IngestServiceImpl::DedupeKey(batch, device_.get()), std::move(v.rows), std::move(ack)});
    {
      MutexLock lock(&mu_);
      ++pending_;
    }
    Submit(std::move(parked));
  }

  // "<call id>.<n>" for the stream's n-th message.
  std::string NextBatchId() { return absl::StrCat(call_id_, ".", ++messages_); }

  void Ref() override { refs_.fetch_add(1, std::memory_order_relaxed); }
  void Unref() override {
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }

  // REQUIRES: pending_ counts this batch; the caller holds a reference (a
  // gRPC reaction, or a pipeline callback's own).
  void Submit(std::unique_ptr<Parked> parked) {
    Ref();  // for `done`
    IngestPipeline::Callback done = [this, ack = parked->ack](
                                        const BatchOutcome& outcome) mutable {
      ApplyOutcome(outcome, service_->metrics(), &ack);
      if (!outcome.status.ok()) {
        service_->LogRefusal(ack.correlation_id(), device_.get(), ack.idempotency_key(),
                             outcome.status.message());
      }
      EnqueueAck(ack, /*was_pending=*/true);
      MaybeFinish();
      Unref();
    };
    absl::Status s = service_->pipeline()->Submit(
        parked->key, std::move(parked->rows), std::move(done));
    if (s.ok()) {
      MaybeStartRead();
      return;
    }
    Unref();  // `done` was not taken; the caller's reference keeps us alive
    if (s.code() == absl::StatusCode::kResourceExhausted) {
      // Stop reading (flow control reaches the client) until space frees.
      {
        MutexLock lock(&mu_);
        parked_ = true;
      }
      Ref();  // for the space callback
      service_->pipeline()->NotifyWhenSpace(
          [this, p = std::move(parked)]() mutable {
            {
              MutexLock lock(&mu_);
              parked_ = false;
            }
            Submit(std::move(p));
            Unref();
          });
      return;
    }
    BatchAck ack = std::move(parked->ack);
    ApplyOutcome(BatchOutcome{s, 0, 0}, service_->metrics(), &ack);
    EnqueueAck(ack, /*was_pending=*/true);
    MaybeFinish();
  }

  // Writes `ack` now, or queues it behind the write in progress. Once a
  // write has failed the client is gone: the ack is dropped. `was_pending`:
  // the ack ends a batch counted in pending_, which is released in the same
  // critical section, so no MaybeFinish can see neither the batch pending
  // nor its ack queued and finish without it.
  void EnqueueAck(const BatchAck& ack, bool was_pending = false) {
    bool start_write = false;
    grpc::ByteBuffer bytes = Serialize(ack);
    {
      MutexLock lock(&mu_);
      if (was_pending) --pending_;
      if (write_failed_ || finished_) {
        --window_;  // the ack has nowhere to go
      } else if (writing_) {
        acks_.push_back(std::move(bytes));
      } else {
        writing_ = true;
        current_ack_ = std::move(bytes);
        start_write = true;
      }
    }
    if (start_write) StartWrite(&current_ack_);
  }

  // Starts the next read unless one is in progress (or its reaction is still
  // consuming request_), the window is full, a batch is parked, or the
  // stream is ending. After a failed write nothing more is read: the call is
  // dead, and any read in progress completes with ok=false.
  void MaybeStartRead() {
    {
      MutexLock lock(&mu_);
      if (reading_ || reads_done_ || write_failed_ || ended_ || parked_ || finished_ ||
          window_ >= service_->options().max_stream_window) {
        return;
      }
      reading_ = true;
      awaiting_read_ = true;
      // Issued under the lock: a Drain on another thread may finish the
      // stream as soon as it sees the read awaiting the client, and a read
      // started after Finish could touch a call gRPC has freed. (gRPC runs
      // the read's reaction on another thread, never inside StartRead.)
      StartRead(&request_);
    }
  }

  // Finishes once nothing is in progress: no read, no write, no batch in
  // the pipeline or parked, and the client half-closed (or a write failed,
  // or the server ended the stream).
  void MaybeFinish() {
    grpc::Status status;
    {
      MutexLock lock(&mu_);
      // A read the client may never complete does not hold up a stream the
      // server ended; one whose message is being consumed does.
      const bool read_in_the_way = reading_ && !(ended_ && awaiting_read_);
      if (finished_ || !(reads_done_ || write_failed_ || ended_) || pending_ > 0 || parked_ ||
          writing_ || read_in_the_way) {
        return;
      }
      finished_ = true;
      status = final_status_;
    }
    Finish(status);
  }

  IngestServiceImpl* const service_;
  grpc::CallbackServerContext* const context_;  // valid until OnDone
  const std::string call_id_;
  uint64_t messages_ = 0;     // read so far (only the reading reaction touches it)
  uint64_t credential_generation_ = 0;  // likewise (see StillAuthenticated)
  std::atomic<int> refs_{1};  // gRPC's, until OnDone; plus one per callback
  std::shared_ptr<const DeviceIdentity> device_;  // null: authentication off
  bool counted_stream_ = false;                    // in the device's stream count
  bool registered_ = false;                        // with the service, for drains
  grpc::ByteBuffer request_;  // owned by the read in progress and its reaction
  Mutex mu_;
  grpc::ByteBuffer current_ack_;  // set under mu_ with writing_; owned by that write
  std::deque<grpc::ByteBuffer> acks_ ABSL_GUARDED_BY(mu_);
  int window_ ABSL_GUARDED_BY(mu_) = 0;   // read, ack not yet written
  int pending_ ABSL_GUARDED_BY(mu_) = 0;  // awaiting a pipeline outcome
  // A read is started or its message is being consumed (see OnReadDone).
  bool reading_ ABSL_GUARDED_BY(mu_) = false;
  // Started and not yet completed: only the client can complete it.
  bool awaiting_read_ ABSL_GUARDED_BY(mu_) = false;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool parked_ ABSL_GUARDED_BY(mu_) = false;
  bool reads_done_ ABSL_GUARDED_BY(mu_) = false;
  bool write_failed_ ABSL_GUARDED_BY(mu_) = false;
  bool ended_ ABSL_GUARDED_BY(mu_) = false;  // the server ends the stream: no more reads
  grpc::Status final_status_ ABSL_GUARDED_BY(mu_);
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace

IngestServiceImpl::IngestServiceImpl(IngestServiceOptions options,
                                     IngestPipeline* pipeline,
                                     IngestMetrics* metrics, CredentialStore* credentials)
    : options_(std::move(options)),
      pipeline_(pipeline),
      metrics_(metrics),
      credentials_(credentials),
      limiter_(options_.device_limits, options_.validation.max_batch_readings) {}

absl::Duration IngestServiceImpl::Throttle(const DeviceIdentity* device, size_t readings) {
  if (device == nullptr || readings == 0) return absl::ZeroDuration();
  absl::Duration wait = limiter_.AdmitReadings(device->device_id, readings, absl::Now());
  if (wait > absl::ZeroDuration() && metrics_) metrics_->batches_throttled.Increment();
  return wait;
}

void IngestServiceImpl::SetThrottled(const DeviceIdentity& device, absl::Duration wait,
                                     double readings_per_second, BatchAck* ack) {
  ack->set_status_code(static_cast<int32_t>(absl::StatusCode::kResourceExhausted));
  ack->set_status_message(absl::StrCat("device '", device.device_id,
                                       "' is over its limit of ", readings_per_second,
                                       " readings/s; retry in ",
                                       absl::ToInt64Milliseconds(wait), " ms"));
  ack->set_accepted(0);
  ack->set_rejected(0);
  ack->clear_rejections();
  ack->mutable_retry_after()->set_seconds(absl::ToInt64Seconds(wait));
  ack->mutable_retry_after()->set_nanos(
      static_cast<int32_t>(absl::ToInt64Nanoseconds(wait % absl::Seconds(1))));
}

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

absl::StatusOr<std::shared_ptr<const DeviceIdentity>> IngestServiceImpl::Authenticate(
    const grpc::CallbackServerContext& context, const std::string& call_id) {
  if (credentials_ == nullptr) return nullptr;
  auto device = credentials_->AuthenticateDevice(context);
  if (!device.ok()) {
    if (metrics_) metrics_->auth_failures.Increment();
    static LogRateLimiter limit(20, absl::Seconds(1));
    int64_t left_out = 0;
    if (limit.Allow(&left_out)) {
      Log(LogLevel::kWarning, "call refused",
          {{"request_id", call_id},
           {"peer", context.peer()},
           {"reason", std::string(device.status().message())},
           {"similar_lines_left_out", absl::StrCat(left_out)}});
    }
  }
  return device;
}

void IngestServiceImpl::LogRefusal(absl::string_view correlation_id,
                                   const DeviceIdentity* device,
                                   absl::string_view idempotency_key,
                                   absl::string_view reason) {
  static LogRateLimiter limit(20, absl::Seconds(1));
  int64_t left_out = 0;
  if (!limit.Allow(&left_out)) return;
  Log(LogLevel::kWarning, "batch not stored",
      {{"request_id", std::string(correlation_id)},
       {"device", device ? device->device_id : std::string("-")},
       {"idempotency_key", std::string(idempotency_key)},
       {"reason", std::string(reason)},
       {"similar_lines_left_out", absl::StrCat(left_out)}});
}

std::string IngestServiceImpl::DedupeKey(const ReadingBatch& batch,
                                         const DeviceIdentity* device) {
  if (device == nullptr) return batch.idempotency_key();
  return absl::StrCat(device->device_id, "/", batch.idempotency_key());
}

namespace {

// PermissionDenied naming the first sensor `device` may not write, or OK.
absl::Status CheckSensorsAllowed(const DeviceIdentity& device,
                                 const std::vector<ReadingRow>& rows) {
  size_t denied = 0;
  const ReadingRow* first = nullptr;
  for (const ReadingRow& row : rows) {
    if (device.MayWrite(row.sensor_id)) continue;
    if (first == nullptr) first = &row;
    ++denied;
  }
  if (denied == 0) return absl::OkStatus();
  return absl::PermissionDeniedError(absl::StrCat(
      "device '", device.device_id, "' may not write sensor '", first->sensor_id, "' (",
      denied, " of ", rows.size(), " readings are for sensors it does not own); nothing in "
      "this batch was stored"));
}

}  // namespace

ValidatedBatch IngestServiceImpl::Validate(const ReadingBatch& batch,
                                           const DeviceIdentity* device, BatchAck* ack) {
  ValidatedBatch v = ValidateBatch(batch, options_.validation, absl::Now());
  if (v.status.ok() && device != nullptr) {
    if (absl::Status s = CheckSensorsAllowed(*device, v.rows); !s.ok()) {
      v.status = s;
      v.rows.clear();
      v.rejections.clear();
      if (metrics_) metrics_->auth_failures.Increment();
    }
  }
  ack->set_idempotency_key(batch.idempotency_key());
  if (!v.status.ok()) {
    ack->set_status_code(static_cast<int32_t>(v.status.code()));
    ack->set_status_message(std::string(v.status.message()));
    if (metrics_) metrics_->batches_invalid.Increment();
    return v;
  }
  ack->set_rejected(static_cast<uint32_t>(v.rejections.size()));
  for (auto& r : v.rejections) *ack->add_rejections() = std::move(r);
  return v;  // rejections are counted with the outcome (ApplyOutcome)
}

grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>*
IngestServiceImpl::StreamReadings(grpc::CallbackServerContext* context) {
  return new StreamReactor(this, context);
}

grpc::ServerUnaryReactor* IngestServiceImpl::WriteBatch(grpc::CallbackServerContext* context,
                                                        const grpc::ByteBuffer* request_bytes,
                                                        grpc::ByteBuffer* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  const std::string call_id = CallCorrelationId(*context);
  context->AddInitialMetadata(kRequestIdHeader, call_id);
  auto device = Authenticate(*context, call_id);
  if (!device.ok()) {
    reactor->Finish(ToGrpcStatus(device.status(), call_id));
    return reactor;
  }
  ReadingBatch request;
  if (absl::Status parsed = ParseBatch(*request_bytes, options_.max_message_bytes, &request);
      !parsed.ok()) {
    if (metrics_) metrics_->batches_invalid.Increment();
    LogRefusal(call_id, device->get(), "", parsed.message());
    reactor->Finish(ToGrpcStatus(parsed, call_id));
    return reactor;
  }
  BatchAck ack;
  ValidatedBatch v = Validate(request, device->get(), &ack);
  ack.set_correlation_id(call_id);
  if (!v.status.ok()) {
    LogRefusal(call_id, device->get(), request.idempotency_key(), v.status.message());
    reactor->Finish(ToGrpcStatus(v.status, call_id));
    return reactor;
  }
  if (absl::Duration wait = Throttle(device->get(), v.rows.size());
      wait > absl::ZeroDuration()) {
    SetThrottled(**device, wait, options_.device_limits.readings_per_second, &ack);
    LogRefusal(call_id, device->get(), request.idempotency_key(), ack.status_message());
    context->AddTrailingMetadata("grpc-retry-pushback-ms",
                                 std::to_string(absl::ToInt64Milliseconds(wait)));
    reactor->Finish(grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                                 WithCorrelation(ack.status_message(), call_id)));
    return reactor;
  }
  absl::Status s = pipeline_->Submit(
      DedupeKey(request, device->get()), std::move(v.rows),
      [this, reactor, response, device = *device, ack = std::move(ack)](
          const BatchOutcome& outcome) mutable {
        if (!outcome.status.ok()) {
          LogRefusal(ack.correlation_id(), device.get(), "", outcome.status.message());
          reactor->Finish(ToGrpcStatus(outcome.status, ack.correlation_id()));
          return;
        }
        ApplyOutcome(outcome, metrics_, &ack);
        *response = Serialize(ack);
        reactor->Finish(grpc::Status::OK);
      });
  if (!s.ok()) {
    LogRefusal(call_id, device->get(), request.idempotency_key(), s.message());
    reactor->Finish(ToGrpcStatus(s, call_id));
  }
  return reactor;
}

}  // namespace telemetry::ingest
