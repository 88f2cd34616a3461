#include "client/telemetry_client.h"

#include <algorithm>
#include <cmath>
#include <optional>
#include <random>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "storage/util/mutex.h"

namespace telemetry::client {

using telemetry::v1::BatchAck;
using telemetry::v1::ReadingBatch;

std::string NewIdempotencyKey() {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  static constexpr char kHex[] = "0123456789abcdef";
  std::string key;
  for (int i = 0; i < 2; ++i) {
    uint64_t v = rng();
    for (int j = 0; j < 16; ++j) {
      key += kHex[v & 0xf];
      v >>= 4;
    }
  }
  return key;
}

bool IsRetryable(grpc::StatusCode code) {
  return code == grpc::StatusCode::UNAVAILABLE ||
         code == grpc::StatusCode::RESOURCE_EXHAUSTED ||
         code == grpc::StatusCode::ABORTED ||
         code == grpc::StatusCode::DEADLINE_EXCEEDED;
}

absl::Duration RetryPushback(const grpc::ClientContext& context) {
  const auto& trailers = context.GetServerTrailingMetadata();
  auto it = trailers.find("grpc-retry-pushback-ms");
  if (it == trailers.end()) return absl::ZeroDuration();
  int64_t ms = 0;
  if (!absl::SimpleAtoi(absl::string_view(it->second.data(), it->second.size()), &ms) ||
      ms <= 0) {
    return absl::ZeroDuration();
  }
  // A hint is advice, not a command: cap it so a confused server cannot park
  // a device for hours.
  return std::min(absl::Milliseconds(ms), absl::Minutes(1));
}

namespace {

// How long a Close whose batches are all acked waits for the gateway to end
// the stream after the half-close, even when its own timeout has run out.
constexpr absl::Duration kHalfCloseGrace = absl::Seconds(1);

absl::Duration BackoffFor(const RetryPolicy& p, int attempts) {
  static thread_local std::mt19937 rng{std::random_device{}()};
  double factor = std::pow(p.multiplier, std::max(0, attempts - 1));
  absl::Duration d = std::min(p.initial_backoff * factor, p.max_backoff);
  std::uniform_real_distribution<double> jitter(0.5, 1.0);
  return d * jitter(rng);
}

}  // namespace

// One StreamReadings call. Its reactions forward to the BatchStream, which
// keeps the call's state (call_state_) under its mu_. `ack` is touched only
// by the read reactions, one at a time; `context` only by the supervisor
// (cancel, trailers) once the call has started.
//
// Lifetime: only the supervisor destroys a Call, and only after OnDone.
// OnDone cannot come while the write-side hold is held, so whoever starts
// a write (or the half-close) with the hold in place may use the Call
// after releasing mu_.
class BatchStream::Call final : public grpc::ClientBidiReactor<ReadingBatch, BatchAck> {
 public:
  Call(BatchStream* owner, uint64_t acked_at_open)
      : acked_before(acked_at_open), owner_(owner) {
    // Wait for ready: while the gateway is unreachable the call waits for
    // a connection instead of failing at once, and connects as soon as it
    // is back.
    context.set_wait_for_ready(true);
  }

  // Binds and starts the call; without the owner's mu_ held.
  void Start(telemetry::v1::IngestService::Stub& stub) {
    stub.async()->StreamReadings(&context, this);
    AddHold();  // the write side: writes start outside reactions (Send)
    StartRead(&ack);
    StartCall();
  }

  void OnReadDone(bool ok) override {
    if (!ok) {
      owner_->OnReadsEnded(*this);
      return;
    }
    owner_->OnAck(*this);
    StartRead(&ack);
  }
  void OnWriteDone(bool ok) override { owner_->OnWriteDone(*this, ok); }
  void OnWritesDoneDone(bool ok) override { owner_->OnWriteDone(*this, ok); }
  void OnDone(const grpc::Status& final_status) override {
    owner_->OnCallDone(final_status);
  }

  grpc::ClientContext context;
  BatchAck ack;
  const uint64_t acked_before;  // stats_.batches_acked when it opened

 private:
  BatchStream* const owner_;
};

BatchStream::BatchStream(std::shared_ptr<grpc::Channel> channel,
                         StreamOptions options, AckCallback on_final_ack)
    : options_(std::move(options)),
      channel_(channel),
      stub_(telemetry::v1::IngestService::NewStub(std::move(channel))),
      on_final_ack_(std::move(on_final_ack)) {
  supervisor_ = std::thread([this] { Supervise(); });
}

BatchStream::~BatchStream() {
  if (supervisor_.joinable()) (void)Close(absl::ZeroDuration());
}

absl::Duration BatchStream::Backoff(int attempts) const {
  return BackoffFor(options_.retry, attempts);
}

absl::Status BatchStream::refusal() const {
  MutexLock lock(&mu_);
  return fatal_;
}

absl::Status BatchStream::Send(ReadingBatch batch) {
  if (batch.idempotency_key().empty()) {
    return absl::InvalidArgumentError("batch has no idempotency_key");
  }
  Call* call = nullptr;
  WriteStep step;
  {
    MutexLock lock(&mu_);
    auto room = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
      return abandon_ || closing_ ||
             static_cast<int>(outstanding_.size()) < options_.max_in_flight;
    };
    mu_.Await(absl::Condition(&room));
    if (!fatal_.ok()) return fatal_;
    if (closing_ || abandon_) {
      return absl::FailedPreconditionError("the stream is closed");
    }
    std::string key = batch.idempotency_key();
    if (outstanding_.count(key)) {
      return absl::AlreadyExistsError(
          absl::StrCat("batch ", key, " is already in flight"));
    }
    Outstanding& o = outstanding_[key];
    o.batch = std::make_shared<const ReadingBatch>(std::move(batch));
    send_queue_.push_back(std::move(key));
    call = call_.get();
    if (call == nullptr) {
      supervisor_wake_ = true;  // nothing carries it yet
    } else {
      step = NextWriteStep();
    }
  }
  if (call != nullptr) Perform(*call, step);
  return absl::OkStatus();
}

BatchStream::WriteStep BatchStream::NextWriteStep() {
  CallState& c = call_state_;
  if (c.writing || c.hold_released) return {};
  if (c.writes_over || c.cancelled || abandon_) {
    c.hold_released = true;
    return {WriteAction::kRemoveHold};
  }
  if (closing_ && outstanding_.empty()) {
    c.writing = true;
    c.writes_over = true;
    return {WriteAction::kWritesDone};
  }
  if (send_queue_.empty()) return {};
  const absl::Time now = absl::Now();
  for (auto it = send_queue_.begin(); it != send_queue_.end();) {
    auto o = outstanding_.find(*it);
    if (o == outstanding_.end() || !o->second.queued) {
      it = send_queue_.erase(it);  // finished or already sent
      continue;
    }
    if (o->second.due <= now) {
      o->second.queued = false;
      o->second.sent_at = absl::InfiniteFuture();
      // Connected: the ack clock runs from now, so a gateway that stops
      // reading (the write then waits for flow control) is timed out too.
      // Not connected yet: it starts when gRPC has taken the write, so the
      // wait for a connection is not counted against the gateway.
      if (channel_->GetState(/*try_to_connect=*/false) == GRPC_CHANNEL_READY) {
        StartAckClock(o->second, now);
      }
      c.in_flight = o->second.batch;  // kept until this write completes
      c.writing = true;
      send_queue_.erase(it);
      return {WriteAction::kWrite, c.in_flight.get()};
    }
    ++it;  // a retry due later: the supervisor wakes for it
  }
  return {};
}

void BatchStream::Perform(Call& call, WriteStep step) {
  switch (step.action) {
    case WriteAction::kNone:
      return;
    case WriteAction::kWrite:
      call.StartWrite(step.message);
      return;
    case WriteAction::kWritesDone:
      call.StartWritesDone();
      return;
    case WriteAction::kRemoveHold:
      call.RemoveHold();  // the call may be gone after this
      return;
  }
}

void BatchStream::OnWriteDone(Call& call, bool ok) {
  std::shared_ptr<const ReadingBatch> written;  // freed after the unlock
  WriteStep step;
  {
    MutexLock lock(&mu_);
    written = std::move(call_state_.in_flight);
    call_state_.writing = false;
    if (!ok) {
      call_state_.writes_over = true;  // the stream broke; OnDone follows
    } else if (written != nullptr) {
      // Written before the call had connected: its clock starts now.
      auto o = outstanding_.find(written->idempotency_key());
      if (o != outstanding_.end() && !o->second.queued &&
          o->second.sent_at == absl::InfiniteFuture()) {
        StartAckClock(o->second, absl::Now());
      }
    }
    step = NextWriteStep();
  }
  Perform(call, step);
}

void BatchStream::OnAck(Call& call) {
  bool final_ack;
  WriteStep step;
  {
    MutexLock lock(&mu_);
    const size_t before = outstanding_.size();
    HandleAck(call.ack);
    final_ack = outstanding_.size() < before;
    // The last ack of a closing stream: half-close now.
    step = NextWriteStep();
  }
  if (final_ack && on_final_ack_) on_final_ack_(call.ack);
  Perform(call, step);
}

void BatchStream::OnReadsEnded(Call& call) {
  WriteStep step;
  {
    MutexLock lock(&mu_);
    call_state_.writes_over = true;  // no acks can come: writing on is pointless
    step = NextWriteStep();
  }
  Perform(call, step);
}

void BatchStream::OnCallDone(const grpc::Status& status) {
  MutexLock lock(&mu_);
  call_state_.done = true;
  call_state_.status = status;
  supervisor_wake_ = true;
  // Nothing here may touch the call after the unlock: the supervisor may
  // destroy it at once.
}

void BatchStream::StartAckClock(Outstanding& o, absl::Time now) {
  o.sent_at = now;
  if (now + options_.ack_timeout < supervisor_deadline_) {
    supervisor_wake_ = true;  // it sleeps past this batch's ack deadline
  }
}

void BatchStream::Requeue(const std::string& key, Outstanding& o,
                          bool count_attempt, absl::Duration at_least) {
  if (count_attempt) ++o.attempts;
  o.due = absl::Now() + std::max(Backoff(std::max(1, o.attempts)), at_least);
  o.sent_at = absl::InfiniteFuture();
  if (!o.queued) {
    o.queued = true;
    send_queue_.push_back(key);
  }
  ++stats_.resends;
  supervisor_wake_ = true;  // it schedules the resend
}

void BatchStream::HandleAck(const BatchAck& ack) {
  auto it = outstanding_.find(ack.idempotency_key());
  if (it == outstanding_.end()) return;  // late ack of a finished batch
  Outstanding& o = it->second;
  auto code = static_cast<grpc::StatusCode>(ack.status_code());
  if (ack.status_code() != 0 && IsRetryable(code)) {
    ++o.attempts;
    if (options_.retry.max_attempts == 0 ||
        o.attempts < options_.retry.max_attempts) {
      absl::Duration hint = absl::ZeroDuration();
      if (ack.has_retry_after()) {
        hint = std::min(absl::Seconds(ack.retry_after().seconds()) +
                            absl::Nanoseconds(ack.retry_after().nanos()),
                        absl::Minutes(1));
      }
      Requeue(it->first, o, /*count_attempt=*/false, hint);
      return;
    }
  }
  ++stats_.batches_acked;
  stats_.accepted += ack.accepted();
  stats_.duplicates += ack.duplicates();
  stats_.rejected += ack.rejected();
  if (ack.status_code() != 0) stats_.failed.push_back(ack);
  outstanding_.erase(it);
}

void BatchStream::Supervise() {
  int consecutive_failures = 0;
  absl::Time reopen_at = absl::InfinitePast();
  MutexLock lock(&mu_);
  while (true) {
    supervisor_wake_ = false;
    const absl::Time now = absl::Now();
    absl::Time next_wake = absl::InfiniteFuture();
    Call* call = call_.get();

    if (call != nullptr && call_state_.done) {
      const grpc::Status finish = call_state_.status;
      const absl::Duration pushback = RetryPushback(call->context);
      const uint64_t acked_before = call->acked_before;
      std::unique_ptr<Call> finished = std::move(call_);
      mu_.Unlock();
      finished.reset();
      mu_.Lock();
      if (abandon_) break;
      // Every batch acked and Close waiting: the stream's own end no
      // longer matters (even a refusal of the half-close).
      if (closing_ && outstanding_.empty()) break;
      // A refusal no retry can fix (bad or revoked credentials, an
      // unimplemented service): stop, and let Close report it.
      if (finish.error_code() == grpc::StatusCode::UNAUTHENTICATED ||
          finish.error_code() == grpc::StatusCode::PERMISSION_DENIED ||
          finish.error_code() == grpc::StatusCode::UNIMPLEMENTED) {
        fatal_ = absl::Status(static_cast<absl::StatusCode>(finish.error_code()),
                              finish.error_message());
        abandon_ = true;
        break;
      }
      // Everything sent on the ended call without a final ack goes again.
      for (auto& [key, o] : outstanding_) {
        if (!o.queued) Requeue(key, o, /*count_attempt=*/true);
      }
      consecutive_failures =
          stats_.batches_acked > acked_before ? 1 : consecutive_failures + 1;
      reopen_at = absl::Now() + std::max(Backoff(consecutive_failures), pushback);
      continue;
    }

    if (call == nullptr) {
      if (abandon_ || (closing_ && outstanding_.empty())) break;
      // Drop keys of batches finished meanwhile (a late duplicate ack), so
      // they do not open an empty call.
      std::erase_if(send_queue_, [this](const std::string& key)
                                     ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        auto o = outstanding_.find(key);
        return o == outstanding_.end() || !o->second.queued;
      });
      if (!send_queue_.empty()) {
        if (now < reopen_at) {
          next_wake = reopen_at;
        } else {
          auto opened = std::make_unique<Call>(this, stats_.batches_acked);
          if (++calls_opened_ > 1) ++stats_.reconnects;
          call_state_ = CallState();
          mu_.Unlock();
          opened->Start(*stub_);
          mu_.Lock();
          call_ = std::move(opened);
          continue;  // the next pass hands it its first write
        }
      }
    } else if (!call_state_.cancelled) {
      // Cancel on abandon, or when an ack is overdue (the stream is stuck
      // somewhere no error reaches us); OnDone then brings us back.
      bool cancel = abandon_;
      for (auto& [key, o] : outstanding_) {
        if (o.queued) {
          if (o.due > now) next_wake = std::min(next_wake, o.due);
        } else if (o.sent_at + options_.ack_timeout <= now) {
          cancel = true;
        } else {
          next_wake = std::min(next_wake, o.sent_at + options_.ack_timeout);
        }
      }
      if (cancel) {
        call_state_.cancelled = true;
        mu_.Unlock();
        call->context.TryCancel();
        mu_.Lock();
        continue;
      }
      const WriteStep step = NextWriteStep();
      if (step.action != WriteAction::kNone) {
        mu_.Unlock();
        Perform(*call, step);
        mu_.Lock();
        continue;
      }
    }
    supervisor_deadline_ = next_wake;
    mu_.AwaitWithDeadline(absl::Condition(&supervisor_wake_), next_wake);
  }
  supervisor_done_ = true;
}

absl::StatusOr<StreamStats> BatchStream::Close(absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  bool timed_out = false;
  {
    MutexLock lock(&mu_);
    closing_ = true;
    supervisor_wake_ = true;  // it half-closes once the last ack is in
    auto drained = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
      return outstanding_.empty() || !fatal_.ok();
    };
    if (!mu_.AwaitWithDeadline(absl::Condition(&drained), deadline)) {
      timed_out = true;
    }
    // Then the gateway's answer to the half-close: within the same time,
    // but never less than a moment when every batch is acked, so that a
    // clean stream ends as one rather than cancelled.
    const absl::Time end_by =
        timed_out ? deadline : std::max(deadline, absl::Now() + kHalfCloseGrace);
    if (!mu_.AwaitWithDeadline(absl::Condition(&supervisor_done_), end_by)) {
      abandon_ = true;
      supervisor_wake_ = true;
    }
  }
  if (supervisor_.joinable()) supervisor_.join();
  MutexLock lock(&mu_);
  if (!fatal_.ok()) return fatal_;
  if (timed_out) {
    return absl::DeadlineExceededError(absl::StrCat(
        outstanding_.size(), " batches were not acknowledged before the "
        "close timeout"));
  }
  return stats_;
}

absl::StatusOr<BatchAck> WriteBatchWithRetry(
    telemetry::v1::IngestService::StubInterface& stub,
    const ReadingBatch& batch, const RetryPolicy& policy, absl::Time deadline) {
  for (int attempt = 1;; ++attempt) {
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(deadline));
    context.set_wait_for_ready(true);  // an unreachable gateway is waited for
    BatchAck ack;
    grpc::Status status = stub.WriteBatch(&context, batch, &ack);
    if (status.ok()) return ack;
    absl::Status as(static_cast<absl::StatusCode>(status.error_code()),
                    status.error_message());
    if (!IsRetryable(status.error_code()) ||
        (policy.max_attempts > 0 && attempt >= policy.max_attempts)) {
      return as;
    }
    absl::Duration pause = std::max(BackoffFor(policy, attempt), RetryPushback(context));
    if (absl::Now() + pause >= deadline) return as;
    absl::SleepFor(pause);
  }
}

}  // namespace telemetry::client
