#include "client/spooled_stream.h"

#include <algorithm>
#include <random>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace telemetry::client {
namespace {

// How long the sender waits on an empty spool before it looks at Close.
constexpr absl::Duration kIdlePoll = absl::Milliseconds(200);

StreamOptions Unlimited(StreamOptions options) {
  options.retry.max_attempts = 0;
  return options;
}

}  // namespace

SpooledStream::SpooledStream(std::shared_ptr<grpc::Channel> channel, Spool* spool,
                             SpooledStreamOptions options,
                             BatchStream::AckCallback on_final_ack)
    : spool_(spool), options_(std::move(options)), on_final_ack_(std::move(on_final_ack)) {
  // What an earlier stream on this spool sent without an answer goes again.
  spool_->RewindReader();
  stream_ = std::make_unique<BatchStream>(
      std::move(channel), Unlimited(options_.stream),
      [this](const telemetry::v1::BatchAck& ack) { OnFinalAck(ack); });
  sender_ = std::thread([this] { SendLoop(); });
}

SpooledStream::~SpooledStream() {
  bool closed;
  {
    MutexLock lock(&mu_);
    closed = closed_;
  }
  if (!closed) (void)Close(absl::ZeroDuration());
}

absl::StatusOr<uint64_t> SpooledStream::Send(telemetry::v1::ReadingBatch batch,
                                             absl::string_view cursor, absl::Time deadline) {
  {
    MutexLock lock(&mu_);
    if (closed_) return absl::FailedPreconditionError("the stream is closed");
    if (!fatal_.ok()) return fatal_;
  }
  if (batch.idempotency_key().empty()) batch.set_idempotency_key(NewIdempotencyKey());
  return spool_->Append(batch, cursor, deadline);
}

bool SpooledStream::Pause(absl::Time until) {
  MutexLock lock(&mu_);
  mu_.AwaitWithDeadline(absl::Condition(&stopping_), until);
  return !stopping_;
}

void SpooledStream::SendLoop() {
  if (options_.start_jitter > absl::ZeroDuration()) {
    std::mt19937_64 random(std::random_device{}());
    const double fraction = std::uniform_real_distribution<double>(0, 1)(random);
    if (!Pause(absl::Now() + options_.start_jitter * fraction)) return;
  }
  const double rate = options_.max_readings_per_second;
  double tokens = 0;
  absl::Time refilled = absl::Now();
  for (;;) {
    {
      MutexLock lock(&mu_);
      if (stopping_) return;
    }
    absl::StatusOr<SpoolEntry> entry = spool_->ReadNext(absl::Now() + kIdlePoll);
    if (!entry.ok()) {
      if (absl::IsCancelled(entry.status())) return;  // the spool closed
      // Nothing to send: the refusal of batches already in the stream
      // (Unauthenticated, say) would otherwise wait for the next Send.
      if (absl::Status refusal = stream_->refusal(); !refusal.ok()) {
        MutexLock lock(&mu_);
        if (!stopping_) fatal_ = refusal;
        return;
      }
      continue;
    }
    if (rate > 0) {
      // A bucket of one second's worth (at least this batch), so a backlog
      // drains at the rate and a quiet device's next batch goes at once.
      const double need = static_cast<double>(entry->batch.readings_size());
      const double capacity = std::max(rate, need);
      const absl::Time now = absl::Now();
      tokens = std::min(capacity, tokens + absl::ToDoubleSeconds(now - refilled) * rate);
      refilled = now;
      if (tokens < need) {
        if (!Pause(now + absl::Seconds((need - tokens) / rate))) return;
        tokens = need;
        refilled = absl::Now();
      }
      tokens -= need;
    }
    const std::string key = entry->batch.idempotency_key();
    {
      MutexLock lock(&mu_);
      in_stream_[key].push_back(entry->sequence);
    }
    absl::Status sent = stream_->Send(std::move(entry->batch));
    MutexLock lock(&mu_);
    if (sent.ok()) {
      ++stats_.batches_sent;
      continue;
    }
    if (absl::IsAlreadyExists(sent)) continue;  // spooled twice: one answer marks both
    // Not in the stream after all: it stays pending in the spool.
    auto it = in_stream_.find(key);
    if (it != in_stream_.end()) {
      it->second.pop_back();
      if (it->second.empty()) in_stream_.erase(it);
    }
    if (!stopping_) fatal_ = sent;  // refused for good (closing otherwise)
    return;
  }
}

void SpooledStream::OnFinalAck(const telemetry::v1::BatchAck& ack) {
  {
    MutexLock lock(&mu_);
    ++stats_.batches_answered;
    stats_.accepted += ack.accepted();
    stats_.duplicates += ack.duplicates();
    stats_.rejected += ack.rejected();
    if (ack.status_code() != 0) ++stats_.batches_failed;
    auto it = in_stream_.find(ack.idempotency_key());
    if (it != in_stream_.end()) {
      // Under mu_, so that Close's wait sees the spool change as it unlocks.
      // MarkDone does no I/O.
      for (uint64_t sequence : it->second) spool_->MarkDone(sequence);
      in_stream_.erase(it);
    }
  }
  if (on_final_ack_) on_final_ack_(ack);
}

absl::StatusOr<SpooledStreamStats> SpooledStream::Close(absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  {
    MutexLock lock(&mu_);
    if (closed_) return absl::FailedPreconditionError("the stream is closed");
    closed_ = true;
    auto answered = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return !fatal_.ok() || spool_->stats().pending_batches == 0;
    };
    mu_.AwaitWithDeadline(absl::Condition(&answered), deadline);
    stopping_ = true;  // wakes a pacing sender
  }
  spool_->WakeReader();  // and one waiting for a batch
  // Unblocks a sender waiting for the window, and ends the call: what it
  // still carries stays pending in the spool.
  const absl::StatusOr<StreamStats> stream_stats =
      stream_->Close(std::max(deadline - absl::Now(), absl::ZeroDuration()));
  if (sender_.joinable()) sender_.join();
  MutexLock lock(&mu_);
  if (stream_stats.ok()) {
    stats_.reconnects = stream_stats->reconnects;
    stats_.resends = stream_stats->resends;
  }
  if (!fatal_.ok()) return fatal_;
  const uint64_t left = spool_->stats().pending_batches;
  if (left > 0) {
    return absl::DeadlineExceededError(
        absl::StrCat(left, " batches were not answered in time; they stay in the spool"));
  }
  return stats_;
}

absl::Status SpooledStream::refusal() const {
  MutexLock lock(&mu_);
  return fatal_;
}

SpooledStreamStats SpooledStream::stats() const {
  MutexLock lock(&mu_);
  return stats_;
}

}  // namespace telemetry::client
