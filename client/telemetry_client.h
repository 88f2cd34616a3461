// Client library for edge devices and internal producers.
//
//   auto channel = grpc::CreateChannel("127.0.0.1:50051", creds);
//   telemetry::client::BatchStream stream(channel, {});
//   stream.Send(batch);            // blocks only while the window is full
//   auto stats = stream.Close(absl::Seconds(30));
//
// BatchStream keeps one long-lived StreamReadings call open, with up to
// `max_in_flight` unacknowledged batches. Every batch keeps its idempotency
// key across retries, so the gateway stores it exactly once however often it
// is resent. A batch is resent when its ack carries a retryable status
// (UNAVAILABLE, RESOURCE_EXHAUSTED, ABORTED, DEADLINE_EXCEEDED), when the
// stream breaks (all unacknowledged batches go out again on a new stream),
// or when no ack arrives within `ack_timeout` of the write (counted from
// when the call has a connection).
// While the gateway is unreachable the stream waits for it (gRPC
// wait-for-ready) and connects as soon as it is back.
// Retries back off exponentially with jitter, and never sooner than the
// gateway's hint when it gives one (an ack's `retry_after`, or the
// "grpc-retry-pushback-ms" trailer of a refused call).
//
// Thread-safety: Send and Close may be called from one producer thread.
// Close may also come from another thread to end a Send that waits for the
// window (that Send then returns FailedPrecondition).
// The ack callback runs inside the stream's read reaction, on a gRPC
// thread, never with the library's lock held; one stream's callbacks never
// overlap, and none runs after Close returns. It must not block (a slow
// callback delays the next acks, and can trip ack_timeout) and must not
// call Send or Close: record, count, hand off.
//
// Cost: writes and acks take no thread switch of the library's own. A batch
// is handed to gRPC by the Send that queues it or by the completion of the
// write before it; acks are handled in gRPC's read reaction. One supervisor
// thread per stream opens and reopens the call and runs the timers
// (retries due later, ack timeouts); it sleeps while batches flow.
#ifndef TELEMETRY_CLIENT_TELEMETRY_CLIENT_H_
#define TELEMETRY_CLIENT_TELEMETRY_CLIENT_H_

#include <grpcpp/grpcpp.h>

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "storage/util/mutex.h"
#include "telemetry/v1/ingest.grpc.pb.h"

namespace telemetry::client {

struct RetryPolicy {
  absl::Duration initial_backoff = absl::Milliseconds(50);
  absl::Duration max_backoff = absl::Seconds(2);
  double multiplier = 2.0;
  // Give up on a batch after this many attempts (0: keep trying until Close's
  // timeout).
  int max_attempts = 0;
};

struct StreamOptions {
  int max_in_flight = 8;
  RetryPolicy retry;
  absl::Duration ack_timeout = absl::Seconds(30);
};

struct StreamStats {
  uint64_t batches_acked = 0;
  uint64_t accepted = 0;
  uint64_t duplicates = 0;
  uint64_t rejected = 0;
  uint64_t resends = 0;     // batches sent again
  uint64_t reconnects = 0;  // new streams opened after the first
  // Batches that ended with a non-retryable status, or ran out of attempts.
  std::vector<telemetry::v1::BatchAck> failed;
};

// Random 128-bit key in hex, for batches that have no natural key.
std::string NewIdempotencyKey();

// True for the codes on which resending the same batch can succeed.
bool IsRetryable(grpc::StatusCode code);

// The server's "grpc-retry-pushback-ms" trailer of a finished call, or zero.
absl::Duration RetryPushback(const grpc::ClientContext& context);

class BatchStream {
 public:
  using AckCallback = std::function<void(const telemetry::v1::BatchAck&)>;

  BatchStream(std::shared_ptr<grpc::Channel> channel, StreamOptions options,
              AckCallback on_final_ack = nullptr);
  ~BatchStream();  // Close(ZeroDuration) if not closed

  // Queues `batch` (it must carry an idempotency key). Blocks while
  // max_in_flight batches are unacknowledged. FailedPrecondition after Close.
  absl::Status Send(telemetry::v1::ReadingBatch batch);

  // Waits until every batch has a final ack, then half-closes the stream
  // and waits for the gateway to end it: for the rest of `timeout`, but at
  // least a second, after which the stream is cancelled (the stats stand:
  // every batch was acked). DeadlineExceeded (with the stats so far
  // unavailable) when `timeout` passes before the acks; the remaining
  // batches are abandoned. When the gateway
  // refused the stream for good (Unauthenticated, PermissionDenied,
  // Unimplemented), returns that at once, as do later Sends.
  absl::StatusOr<StreamStats> Close(absl::Duration timeout);

  // The gateway's refusal of the stream for good (what Send would return
  // now), or OK. For a sender that has nothing to send and would not learn
  // of it otherwise.
  absl::Status refusal() const;

 private:
  // One StreamReadings call: a gRPC callback reactor. Writes start from
  // Send, from the supervisor and from the reactor's own write completions;
  // acks arrive in its read reactions. Defined in the .cc.
  class Call;
  // What a caller must do on the call once it has released mu_ (a gRPC
  // operation started under mu_ could run a reaction inline, which takes
  // mu_ again).
  enum class WriteAction { kNone, kWrite, kWritesDone, kRemoveHold };
  struct WriteStep {
    WriteAction action = WriteAction::kNone;
    const telemetry::v1::ReadingBatch* message = nullptr;  // for kWrite
  };
  // The open call's write side. At most one call exists at a time (the
  // supervisor opens the next only after destroying the last), so this
  // describes call_, and is reset when a call opens.
  struct CallState {
    // A write or the half-close is in flight (or about to be started).
    bool writing = false;
    // No more writes: half-closed, a write failed, or the acks ended.
    bool writes_over = false;
    // The write-side hold is released; OnDone may come at any moment.
    bool hold_released = false;
    bool cancelled = false;
    bool done = false;  // OnDone ran; the supervisor may destroy the call
    grpc::Status status;
    // The batch of the write in flight (shared with outstanding_).
    std::shared_ptr<const telemetry::v1::ReadingBatch> in_flight;
  };

  struct Outstanding {
    // Shared with the call's in-flight write, which must outlive the ack
    // that may erase this entry.
    std::shared_ptr<const telemetry::v1::ReadingBatch> batch;
    int attempts = 0;
    absl::Time due = absl::InfinitePast();  // earliest (re)send
    // Where the ack timeout counts from: the write's start on a connected
    // channel, else its completion (InfiniteFuture until then).
    absl::Time sent_at = absl::InfiniteFuture();
    bool queued = true;  // waiting in send_queue_
  };

  // The supervisor thread: opens a call when there is work, reopens it
  // after a break (with backoff), schedules retries that are due later,
  // cancels a call whose ack is overdue, and half-closes on Close. It never
  // touches a batch on the hot path: writes and acks run in reactions.
  void Supervise();
  // Decides the call's next write-side step; the caller performs it with
  // Perform after unlocking.
  WriteStep NextWriteStep() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  static void Perform(Call& call, WriteStep step);
  // Reactions of `call`, forwarded by the Call.
  void OnAck(Call& call) ABSL_LOCKS_EXCLUDED(mu_);
  void OnWriteDone(Call& call, bool ok) ABSL_LOCKS_EXCLUDED(mu_);
  void OnReadsEnded(Call& call) ABSL_LOCKS_EXCLUDED(mu_);
  void OnCallDone(const grpc::Status& status) ABSL_LOCKS_EXCLUDED(mu_);

  void HandleAck(const telemetry::v1::BatchAck& ack)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Duration Backoff(int attempts) const;
  // `o`'s ack timeout counts from `now`; wakes the supervisor when that
  // deadline comes before its own.
  void StartAckClock(Outstanding& o, absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Queues `o` again, due after its backoff and at least `at_least`.
  void Requeue(const std::string& key, Outstanding& o, bool count_attempt,
               absl::Duration at_least = absl::ZeroDuration())
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const StreamOptions options_;
  const std::shared_ptr<grpc::Channel> channel_;  // its state: when the ack clock starts
  std::unique_ptr<telemetry::v1::IngestService::Stub> stub_;
  AckCallback on_final_ack_;

  mutable Mutex mu_;
  std::map<std::string, Outstanding> outstanding_ ABSL_GUARDED_BY(mu_);
  std::deque<std::string> send_queue_ ABSL_GUARDED_BY(mu_);
  StreamStats stats_ ABSL_GUARDED_BY(mu_);
  bool closing_ ABSL_GUARDED_BY(mu_) = false;
  bool abandon_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status fatal_ ABSL_GUARDED_BY(mu_);  // a non-retryable stream refusal
  // The open call, if any; only the supervisor creates and destroys it.
  std::unique_ptr<Call> call_ ABSL_GUARDED_BY(mu_);
  CallState call_state_ ABSL_GUARDED_BY(mu_);
  uint64_t calls_opened_ ABSL_GUARDED_BY(mu_) = 0;
  // Set when the supervisor has something new to look at (a batch with no
  // call to carry it, a retry scheduled, the call done, Close).
  bool supervisor_wake_ ABSL_GUARDED_BY(mu_) = false;
  bool supervisor_done_ ABSL_GUARDED_BY(mu_) = false;
  // When the sleeping supervisor wakes by itself; a batch whose ack is due
  // earlier wakes it.
  absl::Time supervisor_deadline_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  std::thread supervisor_;
};

// Unary write with the same retry rules; returns the final ack or the last
// error once `deadline` passes. Like BatchStream, it waits for an
// unreachable gateway (wait-for-ready) rather than failing at once.
absl::StatusOr<telemetry::v1::BatchAck> WriteBatchWithRetry(
    telemetry::v1::IngestService::StubInterface& stub,
    const telemetry::v1::ReadingBatch& batch, const RetryPolicy& policy,
    absl::Time deadline);

}  // namespace telemetry::client

#endif  // TELEMETRY_CLIENT_TELEMETRY_CLIENT_H_
