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
// (UNAVAILABLE, RESOURCE_EXHAUSTED, ABORTED), when the stream breaks (all
// unacknowledged batches go out again on a new stream), or when no ack
// arrives within `ack_timeout`. While the gateway is unreachable the stream
// waits for it (gRPC wait-for-ready) and connects as soon as it is back.
// Retries back off exponentially with jitter, and never sooner than the
// gateway's hint when it gives one (an ack's `retry_after`, or the
// "grpc-retry-pushback-ms" trailer of a refused call).
//
// Thread-safety: Send and Close may be called from one producer thread;
// the ack callback runs on the library's reader thread.
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

  // Waits until every batch has a final ack, then half-closes the stream.
  // DeadlineExceeded (with the stats so far unavailable) when `timeout`
  // passes first; the remaining batches are abandoned. When the gateway
  // refused the stream for good (Unauthenticated, PermissionDenied,
  // Unimplemented), returns that at once, as do later Sends.
  absl::StatusOr<StreamStats> Close(absl::Duration timeout);

 private:
  struct Outstanding {
    telemetry::v1::ReadingBatch batch;
    int attempts = 0;
    absl::Time due = absl::InfinitePast();  // earliest (re)send
    absl::Time sent_at = absl::InfiniteFuture();
    bool queued = true;  // waiting in send_queue_
  };
  using Stream = grpc::ClientReaderWriter<telemetry::v1::ReadingBatch,
                                          telemetry::v1::BatchAck>;

  void IoLoop();
  void ReadLoop(Stream* stream, uint64_t generation);
  void HandleAck(const telemetry::v1::BatchAck& ack)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Duration Backoff(int attempts) const;
  // Queues `o` again, due after its backoff and at least `at_least`.
  void Requeue(const std::string& key, Outstanding& o, bool count_attempt,
               absl::Duration at_least = absl::ZeroDuration())
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const StreamOptions options_;
  std::unique_ptr<telemetry::v1::IngestService::Stub> stub_;
  AckCallback on_final_ack_;

  Mutex mu_;
  std::map<std::string, Outstanding> outstanding_ ABSL_GUARDED_BY(mu_);
  std::deque<std::string> send_queue_ ABSL_GUARDED_BY(mu_);
  StreamStats stats_ ABSL_GUARDED_BY(mu_);
  bool closing_ ABSL_GUARDED_BY(mu_) = false;
  bool abandon_ ABSL_GUARDED_BY(mu_) = false;
  bool stream_broken_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status fatal_ ABSL_GUARDED_BY(mu_);  // a non-retryable stream refusal
  uint64_t generation_ ABSL_GUARDED_BY(mu_) = 0;
  grpc::ClientContext* context_ ABSL_GUARDED_BY(mu_) = nullptr;
  std::thread io_thread_;
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
