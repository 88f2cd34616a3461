// The write path behind the RPC handlers: deduplicate -> queue -> group
// commit -> acknowledge.
//
// Adaptive group commit: batches from every stream wait in one bounded
// queue; flusher threads take groups of them, each writes its group in one
// transaction through its own TelemetrySink and completes every batch it
// served with the shared outcome. While the writers are mostly idle (the
// number writing, averaged over the last ~50 ms, is under load_threshold
// of them) a flusher takes what is queued at once, so at light load a
// batch waits for nobody. Under load, a group smaller than flush_readings
// waits up to flush_interval for more, so groups grow only then:
// one-batch transactions would spend the capacity a loaded write path
// needs (each carries a commit, a claim and a completion), and the queue
// would grow into ever larger, slower groups. (LevelDB's BuildBatchGroup
// limits a group's growth the same way for the small writes of a quiet
// database.) Several flushers write in parallel, the way parallel COPY
// clients load faster than one.
//
// Memory is bounded: readings count against max_queued_readings from
// Submit until their ack, and Submit refuses (ResourceExhausted) what does
// not fit, after which the caller may wait with NotifyWhenSpace.
//
// Idempotency: a key already being written by this process waits for that
// write and is answered as a duplicate of it. The flusher claims the keys of
// a whole group in the DedupeStore in one round trip before writing it; a
// key already committed is answered as a duplicate without touching the
// database. When the store is unavailable, or the key is in flight in
// another process, the batch is written with may_contain_duplicates and the
// database's primary key decides.
//
// Submit does no I/O (reserve, note the key, enqueue): it is called from
// gRPC reactions, which must not block. Every store and database call is on
// a flusher thread.
//
// Thread-safe.
#ifndef TELEMETRY_SERVER_INGEST_INGEST_PIPELINE_H_
#define TELEMETRY_SERVER_INGEST_INGEST_PIPELINE_H_

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/time/time.h"
#include "server/ingest/ingest_metrics.h"
#include "storage/dedupe_store.h"
#include "storage/reading_row.h"
#include "storage/telemetry_sink.h"
#include "storage/util/mutex.h"

namespace telemetry::ingest {

struct PipelineOptions {
  // Bounds on what is queued or being written, from Submit to the ack: in
  // readings, and in bytes of memory the rows hold (QueuedBytes: each row's
  // struct and its strings, metadata included; about 190 bytes for a
  // reading with short strings and no metadata). Whichever is reached first
  // refuses further batches.
  size_t max_queued_readings = 200'000;
  size_t max_queued_bytes = 256 << 20;
  // Under load (see above), a group of fewer than flush_readings waits
  // until its oldest batch has waited flush_interval for more batches to
  // join it. At light load a flusher never waits.
  size_t flush_readings = 5'000;
  absl::Duration flush_interval = absl::Milliseconds(5);
  // "Under load": the writing flushers' time-average over the last ~50 ms
  // is at least this fraction of all flushers. 0 lingers always; above 1,
  // never.
  double load_threshold = 0.5;
  // Upper bound of one COPY transaction.
  size_t max_group_readings = 50'000;
  // Parallel writers (one database connection each).
  int flushers = 2;
};

struct BatchOutcome {
  absl::Status status;  // non-OK: nothing of the batch was stored by us
  uint32_t accepted = 0;
  uint32_t duplicates = 0;
};

// Memory `rows` hold while queued: the row structs and the heap blocks of
// their strings.
size_t QueuedBytes(const std::vector<ReadingRow>& rows);

class IngestPipeline {
 public:
  using Callback = absl::AnyInvocable<void(const BatchOutcome&) &&>;
  using SinkFactory = std::function<std::unique_ptr<TelemetrySink>()>;

  // `dedupe` may be null (deduplication by the database only); `dedupe` and
  // `metrics` (nullable) must outlive the pipeline. Starts the flushers.
  IngestPipeline(PipelineOptions options, DedupeStore* dedupe,
                 SinkFactory sink_factory, IngestMetrics* metrics);
  ~IngestPipeline();  // Shutdown()

  // Queues a validated batch; never blocks. On OK, `done` runs exactly
  // once: later on a flusher thread, or before Submit returns for an empty
  // batch, so the caller must not hold a lock that `done` takes. On error
  // neither `rows` nor `done` is moved from, so the caller can park the
  // batch and submit it again:
  //   ResourceExhausted - the queue is full; retry after NotifyWhenSpace
  //   Unavailable       - the pipeline is shutting down
  absl::Status Submit(const std::string& key, std::vector<ReadingRow>&& rows,
                      Callback&& done);

  // Runs `callback` once, after queue space was freed (or at shutdown). The
  // callback runs on a flusher thread (or, when the queue is already empty,
  // before NotifyWhenSpace returns), with no lock held; it must not block.
  void NotifyWhenSpace(absl::AnyInvocable<void() &&> callback);

  // Stops accepting batches, writes and acknowledges everything queued, and
  // joins the flushers. Idempotent.
  void Shutdown();

  size_t queued_readings() const;
  // Whether the last dedupe store operation reached it; unset before the
  // first one (or without a store).
  std::optional<bool> dedupe_up() const {
    const int up = dedupe_up_.load(std::memory_order_relaxed);
    return up < 0 ? std::nullopt : std::optional<bool>(up == 1);
  }

 private:
  struct Pending {
    std::string key;
    std::string token;
    std::vector<ReadingRow> rows;
    size_t bytes = 0;             // QueuedBytes(rows), reserved at Submit
    bool claimed = false;         // we hold the dedupe key
    bool may_contain_duplicates = false;
    absl::Time arrived;
    Callback done;
  };
  struct Waiter {  // a local re-delivery waiting for the original's outcome
    uint32_t readings;
    absl::Time arrived;
    Callback done;
  };

  void FlusherLoop(TelemetrySink* sink);
  // Claims the group's keys in one round trip. Batches already committed
  // are taken out of `group` and answered as duplicates.
  void ClaimGroup(std::vector<Pending>& group);
  void WriteGroup(TelemetrySink* sink, std::vector<Pending>& group);
  // Releases the batches' reservations and keys, and runs their callbacks
  // and those of their local re-deliveries (and of space waiters).
  void Release(std::vector<Pending>& batches, std::vector<BatchOutcome> outcomes);
  // Whether a group is due whatever the load (full, or shutting down).
  bool GroupFull() const ABSL_SHARED_LOCKS_REQUIRED(mu_);
  // The writing flushers' recent average at `now`, and when it will be
  // below load_threshold of them if the number writing stays as it is
  // (`now` if it is below already: not under load).
  double BusyAverage(absl::Time now) const ABSL_SHARED_LOCKS_REQUIRED(mu_);
  absl::Time LoadEnds(absl::Time now) const ABSL_SHARED_LOCKS_REQUIRED(mu_);
  void ChangeWriting(int delta) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Moves the next group out of the queue into `group`.
  void TakeGroup(std::vector<Pending>& group) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void SetQueueGauges() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Records whether the dedupe store answered; logs on each change.
  void NoteDedupeHealth(bool up);
  void Finish(std::vector<std::pair<Callback, BatchOutcome>>& calls,
              absl::Time arrived, Callback done, BatchOutcome outcome);

  const PipelineOptions options_;
  DedupeStore* const dedupe_;
  IngestMetrics* const metrics_;
  std::atomic<uint64_t> next_token_{1};
  std::atomic<int> dedupe_up_{-1};  // -1 unknown, 0 down, 1 up
  const int flushers_count_;
  const std::string token_prefix_;

  mutable Mutex mu_;
  std::deque<Pending> queue_ ABSL_GUARDED_BY(mu_);
  size_t queue_rows_ ABSL_GUARDED_BY(mu_) = 0;      // rows in queue_
  size_t reserved_rows_ ABSL_GUARDED_BY(mu_) = 0;   // queued + being written
  size_t reserved_bytes_ ABSL_GUARDED_BY(mu_) = 0;  // their QueuedBytes
  absl::flat_hash_map<std::string, std::vector<Waiter>> in_flight_
      ABSL_GUARDED_BY(mu_);
  std::vector<absl::AnyInvocable<void() &&>> space_waiters_
      ABSL_GUARDED_BY(mu_);
  bool shutting_down_ ABSL_GUARDED_BY(mu_) = false;
  // Flushers between taking a group and coming back for the next (claim,
  // write, acks).
  int writing_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t writing_changes_ ABSL_GUARDED_BY(mu_) = 0;
  double writing_average_ ABSL_GUARDED_BY(mu_) = 0;  // as of writing_changed_
  absl::Time writing_changed_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();

  std::vector<std::unique_ptr<TelemetrySink>> sinks_;
  std::vector<std::thread> flushers_;
};

}  // namespace telemetry::ingest

#endif  // TELEMETRY_SERVER_INGEST_INGEST_PIPELINE_H_
