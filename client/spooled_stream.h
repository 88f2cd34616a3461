// Store and forward: a BatchStream that sends from a Spool, so what a
// device produced survives its process being killed, its power being cut
// and its link being down for hours, and reaches the gateway exactly once.
//
//   auto spool = Spool::Open({.directory = dir});
//   SpooledStream stream(channel, spool->get(), {});
//   stream.Send(batch, cursor, deadline);   // on disk when it returns
//   ...
//   stream.Close(absl::Seconds(30));        // what is unanswered stays spooled
//
// Send appends to the spool and returns: it never waits for the network,
// only for disk space (SpoolOptions::WhenFull::kBlock). A sender thread
// reads the spool in order (after a restart, first what the last run left
// unanswered) and feeds one BatchStream; each final answer (stored,
// duplicate, or refused for good) marks its batch done in the spool. The
// idempotency keys are the spooled batches' own, so a batch resent after a
// crash is answered "duplicate" if it had been stored.
//
// Pacing: the sender sends at most max_readings_per_second (a fleet coming
// back after an outage drains its backlogs without a stampede), starts
// after a random delay up to start_jitter, and waits as long as the gateway
// says on a throttled batch (BatchStream honours retry_after).
//
// Thread-safety: Send and Close from one producer thread; stats() from any.
#ifndef TELEMETRY_CLIENT_SPOOLED_STREAM_H_
#define TELEMETRY_CLIENT_SPOOLED_STREAM_H_

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "client/spool.h"
#include "client/telemetry_client.h"
#include "storage/util/mutex.h"

namespace telemetry::client {

struct SpooledStreamOptions {
  // The stream's window, backoff and ack timeout; it retries without limit
  // (max_attempts is ignored: the spool, not the stream, gives up).
  StreamOptions stream;
  // The most readings per second the sender sends (0: as fast as the
  // gateway takes them).
  double max_readings_per_second = 0;
  // A random delay, up to this, before the first send.
  absl::Duration start_jitter = absl::ZeroDuration();
};

struct SpooledStreamStats {
  uint64_t batches_sent = 0;      // offered to the stream (first sends)
  uint64_t batches_answered = 0;  // final answers; marked done in the spool
  uint64_t accepted = 0;          // readings stored
  uint64_t duplicates = 0;        // readings the gateway had already
  uint64_t rejected = 0;          // readings refused (invalid)
  uint64_t batches_failed = 0;    // batches refused as a whole, for good
  uint64_t reconnects = 0;        // Close's: new streams after the first
  uint64_t resends = 0;           // Close's: batches sent again (throttled, broken stream)
};

class SpooledStream {
 public:
  // `spool` must outlive this. The stream starts sending at once.
  SpooledStream(std::shared_ptr<grpc::Channel> channel, Spool* spool,
                SpooledStreamOptions options, BatchStream::AckCallback on_final_ack = nullptr);
  ~SpooledStream();  // Close(ZeroDuration) if not closed

  // Appends `batch` (keyed: NewIdempotencyKey if it has none) with the
  // producer's `cursor` and returns its sequence in the spool. Waits only
  // for spool space, until `deadline`. The gateway's refusal of the stream
  // for good (Unauthenticated, PermissionDenied) is returned here too.
  absl::StatusOr<uint64_t> Send(telemetry::v1::ReadingBatch batch, absl::string_view cursor,
                                absl::Time deadline);

  // Waits until everything spooled is answered, or `timeout`; then closes
  // the stream. DeadlineExceeded says how many batches stay in the spool
  // for the next run (nothing is lost).
  absl::StatusOr<SpooledStreamStats> Close(absl::Duration timeout);

  SpooledStreamStats stats() const;

  // Why the sender stopped for good (the gateway refused the stream:
  // Unauthenticated, PermissionDenied), or OK while it runs.
  absl::Status refusal() const;

 private:
  void SendLoop();
  void OnFinalAck(const telemetry::v1::BatchAck& ack);
  // Sleeps until `until` or Close; false on Close.
  bool Pause(absl::Time until);

  Spool* const spool_;
  const SpooledStreamOptions options_;
  BatchStream::AckCallback on_final_ack_;
  std::unique_ptr<BatchStream> stream_;

  mutable Mutex mu_;
  // Spool sequences of the batches in the stream, by key (a key spooled
  // twice, by a producer that resent after a crash, has two).
  absl::flat_hash_map<std::string, std::vector<uint64_t>> in_stream_ ABSL_GUARDED_BY(mu_);
  SpooledStreamStats stats_ ABSL_GUARDED_BY(mu_);
  absl::Status fatal_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  std::thread sender_;
};

}  // namespace telemetry::client

#endif  // TELEMETRY_CLIENT_SPOOLED_STREAM_H_
