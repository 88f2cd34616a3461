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

absl::Duration BackoffFor(const RetryPolicy& p, int attempts) {
  static thread_local std::mt19937 rng{std::random_device{}()};
  double factor = std::pow(p.multiplier, std::max(0, attempts - 1));
  absl::Duration d = std::min(p.initial_backoff * factor, p.max_backoff);
  std::uniform_real_distribution<double> jitter(0.5, 1.0);
  return d * jitter(rng);
}

}  // namespace

BatchStream::BatchStream(std::shared_ptr<grpc::Channel> channel,
                         StreamOptions options, AckCallback on_final_ack)
    : options_(std::move(options)),
      stub_(telemetry::v1::IngestService::NewStub(std::move(channel))),
      on_final_ack_(std::move(on_final_ack)) {
  io_thread_ = std::thread([this] { IoLoop(); });
}

BatchStream::~BatchStream() {
  if (io_thread_.joinable()) (void)Close(absl::ZeroDuration());
}

absl::Duration BatchStream::Backoff(int attempts) const {
  return BackoffFor(options_.retry, attempts);
}

absl::Status BatchStream::Send(ReadingBatch batch) {
  if (batch.idempotency_key().empty()) {
    return absl::InvalidArgumentError("batch has no idempotency_key");
  }
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
  o.batch = std::move(batch);
  send_queue_.push_back(std::move(key));
  return absl::OkStatus();
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

void BatchStream::ReadLoop(Stream* stream, uint64_t generation) {
  BatchAck ack;
  while (stream->Read(&ack)) {
    bool final_ack = false;
    {
      MutexLock lock(&mu_);
      size_t before = outstanding_.size();
      HandleAck(ack);
      final_ack = outstanding_.size() < before;
    }
    if (final_ack && on_final_ack_) on_final_ack_(ack);
  }
  MutexLock lock(&mu_);
  if (generation_ == generation) stream_broken_ = true;
}

void BatchStream::IoLoop() {
  int consecutive_failures = 0;
  while (true) {
    {
      MutexLock lock(&mu_);
      auto work = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
        return abandon_ || !send_queue_.empty() ||
               (closing_ && outstanding_.empty());
      };
      mu_.Await(absl::Condition(&work));
      if (abandon_ || (closing_ && outstanding_.empty())) return;
    }

    // Wait for ready: while the gateway is unreachable the call waits for a
    // connection instead of failing at once, and this thread, blocked in
    // the call, drives the connection attempts. (A call that failed fast
    // would leave no thread polling the channel, and a reconnect could sit
    // unnoticed until gRPC's 20-second connect timeout.) Close cancels it.
    grpc::ClientContext context;
    context.set_wait_for_ready(true);
    uint64_t generation;
    {
      MutexLock lock(&mu_);
      generation = ++generation_;
      if (generation > 1) ++stats_.reconnects;
      stream_broken_ = false;
      context_ = &context;
      if (abandon_) context.TryCancel();
    }
    std::unique_ptr<Stream> stream = stub_->StreamReadings(&context);
    std::thread reader([this, s = stream.get(), generation] {
      ReadLoop(s, generation);
    });

    bool finished_cleanly = false;
    uint64_t acked_before;
    {
      MutexLock lock(&mu_);
      acked_before = stats_.batches_acked;
    }
    while (true) {
      std::optional<ReadingBatch> to_send;
      {
        MutexLock lock(&mu_);
        while (true) {
          if (stream_broken_ || abandon_) break;
          if (closing_ && outstanding_.empty()) {
            finished_cleanly = true;
            break;
          }
          absl::Time now = absl::Now();
          bool timed_out = false;
          for (auto& [key, o] : outstanding_) {
            if (!o.queued && now - o.sent_at > options_.ack_timeout) {
              timed_out = true;
            }
          }
          if (timed_out) {
            context.TryCancel();  // the reader sees the break
            mu_.AwaitWithTimeout(
                absl::Condition(&stream_broken_), absl::Milliseconds(100));
            continue;
          }
          // First queued batch that is due.
          absl::Time next_due = absl::InfiniteFuture();
          for (auto it = send_queue_.begin(); it != send_queue_.end();) {
            auto o = outstanding_.find(*it);
            if (o == outstanding_.end() || !o->second.queued) {
              it = send_queue_.erase(it);  // finished or already sent
              continue;
            }
            if (o->second.due <= now) {
              o->second.queued = false;
              o->second.sent_at = now;
              to_send = o->second.batch;
              send_queue_.erase(it);
              break;
            }
            next_due = std::min(next_due, o->second.due);
            ++it;
          }
          if (to_send) break;
          auto wake = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
            return stream_broken_ || abandon_ ||
                   (closing_ && outstanding_.empty());
          };
          // Wake for new sends, due retries and ack timeouts alike.
          absl::Duration wait = std::min(next_due - now, absl::Milliseconds(50));
          size_t queued = send_queue_.size();
          auto wake_or_new = [&]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
            return wake() || send_queue_.size() != queued;
          };
          mu_.AwaitWithTimeout(absl::Condition(&wake_or_new),
                               std::max(wait, absl::ZeroDuration()));
        }
      }
      if (!to_send) break;
      if (!stream->Write(*to_send)) break;  // broken; the reader notices
    }

    if (finished_cleanly) {
      stream->WritesDone();
      reader.join();
      (void)stream->Finish();
      MutexLock lock(&mu_);
      context_ = nullptr;
      return;
    }
    {
      // Cancel only a stream the server has not ended: cancelling first
      // would replace the server's final status (say UNAUTHENTICATED) with
      // CANCELLED.
      MutexLock lock(&mu_);
      if (!stream_broken_) context.TryCancel();
    }
    reader.join();
    grpc::Status finish = stream->Finish();
    absl::Duration pause;
    {
      MutexLock lock(&mu_);
      context_ = nullptr;
      if (abandon_) return;
      // A refusal no retry can fix (bad or revoked credentials, an
      // unimplemented service): stop, and let Close report it.
      if (finish.error_code() == grpc::StatusCode::UNAUTHENTICATED ||
          finish.error_code() == grpc::StatusCode::PERMISSION_DENIED ||
          finish.error_code() == grpc::StatusCode::UNIMPLEMENTED) {
        fatal_ = absl::Status(static_cast<absl::StatusCode>(finish.error_code()),
                              finish.error_message());
        abandon_ = true;
        return;
      }
      // Everything sent on the broken stream without a final ack goes again.
      for (auto& [key, o] : outstanding_) {
        if (!o.queued) Requeue(key, o, /*count_attempt=*/true);
      }
      consecutive_failures =
          stats_.batches_acked > acked_before ? 1 : consecutive_failures + 1;
      pause = std::max(Backoff(consecutive_failures), RetryPushback(context));
    }
    MutexLock lock(&mu_);
    mu_.AwaitWithTimeout(absl::Condition(&abandon_), pause);
  }
}

absl::StatusOr<StreamStats> BatchStream::Close(absl::Duration timeout) {
  bool timed_out = false;
  {
    MutexLock lock(&mu_);
    closing_ = true;
    auto drained = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
      return outstanding_.empty() || !fatal_.ok();
    };
    if (!mu_.AwaitWithTimeout(absl::Condition(&drained), timeout)) {
      timed_out = true;
      abandon_ = true;
      if (context_) context_->TryCancel();
    }
  }
  if (io_thread_.joinable()) io_thread_.join();
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
