#include "server/ingest/stream_reactor.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "server/common/correlation.h"
#include "server/common/status_util.h"
#include "server/ingest/ingest_service.h"

namespace telemetry::ingest {
namespace {

using telemetry::v1::BatchAck;

grpc::ByteBuffer Serialize(const BatchAck& ack) {
  grpc::ByteBuffer out;
  bool own = false;
  (void)grpc::SerializationTraits<BatchAck>::Serialize(ack, &out, &own);
  return out;
}

}  // namespace

StreamReactor::StreamReactor(IngestServiceImpl* service, grpc::CallbackServerContext* context)
    : service_(service), context_(context), call_id_(CallCorrelationId(*context)) {
  if (service_->metrics()) service_->metrics()->active_streams.Increment();
  context->AddInitialMetadata(kRequestIdHeader, call_id_);
  Ref();  // for the authentication callback
  service_->AuthenticateAsync(*context, call_id_, [this](CredentialStore::DeviceResult device) {
    Open(std::move(device));
    Unref();
  });
}

grpc::Status StreamReactor::ShuttingDown() {
  return grpc::Status(grpc::StatusCode::UNAVAILABLE,
                      "the gateway is shutting down: reconnect and resend what was not "
                      "acknowledged");
}

void StreamReactor::Refuse(const grpc::Status& status) {
  {
    MutexLock lock(&mu_);
    finished_ = true;
  }
  Finish(status);
}

void StreamReactor::Open(CredentialStore::DeviceResult device) {
  if (!device.ok()) {
    Refuse(ToGrpcStatus(device.status(), call_id_));
    return;
  }
  device_ = *std::move(device);
  if (device_ != nullptr) {
    if (!service_->admission().limiter().OpenStream(device_->device_id)) {
      const DeviceLimits& limits = service_->admission().options().device_limits;
      context_->AddTrailingMetadata("grpc-retry-pushback-ms", "1000");
      const std::string why = absl::StrCat("device '", device_->device_id, "' already has ",
                                           limits.max_streams,
                                           " open streams, its limit; retry in 1000 ms");
      service_->admission().LogRefusal(call_id_, device_.get(), "", why);
      // counted_stream_ stays false: OnDone has no stream to release.
      Refuse(grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED, WithCorrelation(why, call_id_)));
      return;
    }
    MutexLock lock(&mu_);
    counted_stream_ = true;
  }
  if (!service_->RegisterStream(this)) {  // the gateway is shutting down
    Refuse(ShuttingDown());
    return;
  }
  MaybeStartRead();
}

void StreamReactor::Drain(const grpc::Status& status) {
  {
    MutexLock lock(&mu_);
    // A client that half-closed already gets its acks and a clean finish.
    if (finished_ || ended_ || reads_done_) return;
    ended_ = true;
    final_status_ = status;
  }
  MaybeFinish();
}

// The reading reaction owns request_ and messages_ from the moment its read
// completes until it has consumed the message: reading_ stays true until
// then, so no other thread (an OnWriteDone freeing window, a pipeline
// callback) can StartRead into request_ while it is being parsed, and
// reading reactions never overlap.
void StreamReactor::OnReadDone(bool ok) {
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
  HandleMessage();
  {
    MutexLock lock(&mu_);
    reading_ = false;  // request_ is free again
  }
  MaybeStartRead();
  MaybeFinish();
}

void StreamReactor::HandleMessage() {
  BatchAdmission& admission = service_->admission();
  AdmittedBatch batch = admission.Parse(request_, device_.get(), NextBatchId());
  request_.Clear();
  if (!batch.status.ok()) {  // only this message is refused; the stream goes on
    EnqueueAck(batch.ack);
    return;
  }
  // A device revoked while its stream is open: this batch is refused and
  // the stream ends with UNAUTHENTICATED once what was accepted before is
  // acknowledged.
  if (absl::Status live = service_->StillAuthenticated(*context_, &credential_generation_);
      !live.ok()) {
    admission.Refuse(live, device_.get(), &batch);
    {
      MutexLock lock(&mu_);
      ended_ = true;
      final_status_ = ToGrpcStatus(live, call_id_);
    }
    EnqueueAck(batch.ack);
    return;
  }
  admission.Admit(device_.get(), &batch);
  if (!batch.status.ok()) {
    EnqueueAck(batch.ack);
    return;
  }
  auto parked = std::make_unique<Parked>(
      Parked{std::move(batch.dedupe_key), std::move(batch.rows), std::move(batch.ack)});
  {
    MutexLock lock(&mu_);
    ++pending_;
  }
  Submit(std::move(parked));
}

void StreamReactor::OnWriteDone(bool ok) {
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

void StreamReactor::OnDone() {
  bool counted;
  {
    MutexLock lock(&mu_);
    counted = counted_stream_;
  }
  // Unconditionally: a stream that never registered erases nothing, and
  // no flag set after RegisterStream can race a drain that finishes it.
  service_->UnregisterStream(this);
  if (service_->metrics()) service_->metrics()->active_streams.Decrement();
  if (counted) service_->admission().limiter().CloseStream(device_->device_id);
  Unref();
}

void StreamReactor::Submit(std::unique_ptr<Parked> parked) {
  Ref();  // for `done`
  IngestPipeline::Callback done = [this, ack = parked->ack](
                                      const BatchOutcome& outcome) mutable {
    service_->admission().Complete(outcome, device_.get(), &ack);
    EnqueueAck(ack, /*was_pending=*/true);
    MaybeFinish();
    Unref();
  };
  absl::Status s =
      service_->pipeline()->Submit(parked->key, std::move(parked->rows), std::move(done));
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
    service_->pipeline()->NotifyWhenSpace([this, p = std::move(parked)]() mutable {
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
  service_->admission().Complete(BatchOutcome{s, 0, 0}, device_.get(), &ack);
  EnqueueAck(ack, /*was_pending=*/true);
  MaybeFinish();
}

// Once a write has failed the client is gone: the ack is dropped.
// `was_pending`: the ack ends a batch counted in pending_, which is released
// in the same critical section, so no MaybeFinish can see neither the batch
// pending nor its ack queued and finish without it.
void StreamReactor::EnqueueAck(const BatchAck& ack, bool was_pending) {
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
// consuming request_), the window is full, a batch is parked, or the stream
// is ending. After a failed write nothing more is read: the call is dead,
// and any read in progress completes with ok=false.
void StreamReactor::MaybeStartRead() {
  MutexLock lock(&mu_);
  if (reading_ || reads_done_ || write_failed_ || ended_ || parked_ || finished_ ||
      window_ >= service_->options().max_stream_window) {
    return;
  }
  reading_ = true;
  awaiting_read_ = true;
  // Issued under the lock: a Drain on another thread may finish the stream
  // as soon as it sees the read awaiting the client, and a read started
  // after Finish could touch a call gRPC has freed. (gRPC runs the read's
  // reaction on another thread, never inside StartRead.)
  StartRead(&request_);
}

// Finishes once nothing is in progress: no read, no write, no batch in the
// pipeline or parked, and the client half-closed (or a write failed, or the
// server ended the stream).
void StreamReactor::MaybeFinish() {
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

}  // namespace telemetry::ingest
