// A crash-safe on-disk queue of batches for an edge device: store and
// forward. A batch is appended (with its idempotency key, inside it) before
// it is offered to the gateway, and forgotten only once the gateway has
// answered it for good. A device process that is killed or loses power
// sends, after restart, exactly the batches that were not answered yet,
// under the same keys, so the gateway stores each once.
//
//   auto spool = Spool::Open({.directory = "/var/lib/agent/spool"});
//   (*spool)->Append(batch, cursor, deadline);     // durable on return
//   ... a sender: ReadNext() → gateway → on its ack, MarkDone(sequence)
//
// The layout is spool_format.h's: segments appended in order, every record
// checksummed. Open() recovers what is intact: a torn or damaged tail is
// cut, a damaged stretch inside a segment is skipped, and both are counted
// (recovery()). Segments are deleted from the oldest once every batch in
// them is done; done marks are written lazily (a lost one only resends a
// batch, which the gateway answers as a duplicate).
//
// Disk use is bounded by max_bytes. When full, Append either waits for the
// sender to free space (kBlock) or drops the oldest segment, counting what
// it held (kDropOldest). A device's disk filling up (ENOSPC) is treated the
// same way.
//
// Thread-safety: Append from one producer, ReadNext from one sender, and
// MarkDone from any thread (it never does I/O: a gRPC reaction may call
// it). stats() from any thread. One process at a time: Open() locks the
// directory.
#ifndef TELEMETRY_CLIENT_SPOOL_H_
#define TELEMETRY_CLIENT_SPOOL_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "storage/util/mutex.h"
#include "telemetry/v1/ingest.pb.h"

namespace telemetry::client {

struct SpoolOptions {
  std::string directory;  // created if missing

  // Disk bound: every segment's bytes together. At least two segments.
  uint64_t max_bytes = 256ull << 20;
  // A segment is closed and a new one started past this size; the unit of
  // deletion (and of what kDropOldest drops at once).
  uint64_t segment_bytes = 4ull << 20;

  enum class WhenFull {
    kBlock,       // Append waits for space until its deadline
    kDropOldest,  // the oldest segment's batches are dropped and counted
  };
  WhenFull when_full = WhenFull::kBlock;

  enum class Sync {
    kEveryBatch,  // fdatasync before Append returns: survives power loss
    kInterval,    // fdatasync every sync_interval: power loss may lose
                  // that much; a killed process loses nothing
    kNone,        // the OS writes back when it likes (about 30 s on Linux)
  };
  Sync sync = Sync::kEveryBatch;
  absl::Duration sync_interval = absl::Milliseconds(100);

  // Tests only: called before each write; a non-zero errno fails it as if
  // the file system had (e.g. ENOSPC).
  std::function<int()> write_fault_for_test;
};

// What Open found in the directory.
struct SpoolRecovery {
  uint64_t segments = 0;
  uint64_t pending_batches = 0;   // to be sent again
  uint64_t pending_readings = 0;
  uint64_t done_batches = 0;      // found answered already
  uint64_t tail_bytes_cut = 0;    // torn or damaged tails, cut off
  uint64_t damaged_spans = 0;     // damaged stretches skipped inside segments
  uint64_t damaged_bytes = 0;
  uint64_t unreadable_segments = 0;  // no valid header: set aside as *.bad
  uint64_t unparsable_batches = 0;   // checksum fine, protobuf not: skipped
  // Batches were lost with later ones intact: cursor() is the last one's
  // before the first loss, so a producer re-reads what was lost (and what
  // follows it, which the gateway answers as duplicates).
  bool cursor_before_loss = false;
};

struct SpoolStats {
  uint64_t pending_batches = 0;  // appended, not done
  uint64_t pending_readings = 0;
  uint64_t bytes = 0;            // on disk
  uint64_t segments = 0;
  uint64_t appended_batches = 0;  // by this process
  uint64_t done_batches = 0;
  uint64_t dropped_batches = 0;   // kDropOldest
  uint64_t dropped_readings = 0;
  uint64_t full_waits = 0;        // Appends that had to wait for space
  uint64_t appends_waiting = 0;   // Appends waiting for space right now
  uint64_t syncs = 0;             // fdatasync calls
  uint64_t read_errors = 0;       // ReadNext's failed opens and reads (retried)
};

struct SpoolEntry {
  uint64_t sequence = 0;
  telemetry::v1::ReadingBatch batch;
};

class Spool {
 public:
  static absl::StatusOr<std::unique_ptr<Spool>> Open(SpoolOptions options);
  ~Spool();  // Close(), then a last sync of what is written

  Spool(const Spool&) = delete;
  Spool& operator=(const Spool&) = delete;

  const SpoolRecovery& recovery() const { return recovery_; }
  // The cursor of the last batch appended, recovered by Open: where a
  // producer reading a file resumes (before a loss: recovery()). Empty for
  // a new spool.
  std::string cursor() const ABSL_LOCKS_EXCLUDED(mu_);

  // Appends `batch` (it must carry an idempotency key) with the producer's
  // `cursor` (opaque, e.g. an input file offset) and returns its sequence.
  // On return it is as durable as options.sync says. When the spool is
  // full: kBlock waits until `deadline` (ResourceExhausted then), and
  // kDropOldest drops the oldest segment. FailedPrecondition after Close.
  absl::StatusOr<uint64_t> Append(const telemetry::v1::ReadingBatch& batch,
                                  absl::string_view cursor, absl::Time deadline)
      ABSL_LOCKS_EXCLUDED(mu_, write_mu_);

  // The next pending batch after the last one this returned (in sequence
  // order; after Open, the first pending). Waits until one is appended or
  // `deadline` (DeadlineExceeded); Cancelled once Close is called.
  absl::StatusOr<SpoolEntry> ReadNext(absl::Time deadline) ABSL_LOCKS_EXCLUDED(mu_);

  // ReadNext starts again from the oldest pending batch: a new sender on
  // this spool resends what an earlier one sent but never had answered.
  // Not while a ReadNext runs.
  void RewindReader() ABSL_LOCKS_EXCLUDED(mu_, read_mu_);

  // Ends a ReadNext that is waiting (or the next one, if none is) at once
  // with DeadlineExceeded, as if its deadline had come: a sender that is
  // asked to stop need not wait out its poll.
  void WakeReader() ABSL_LOCKS_EXCLUDED(mu_);

  // The batch needs no more sending. Unknown and repeated sequences are
  // ignored. No I/O: the mark is written with the next housekeeping.
  void MarkDone(uint64_t sequence) ABSL_LOCKS_EXCLUDED(mu_);

  // Writes the pending done marks, deletes finished segments and syncs.
  absl::Status Flush() ABSL_LOCKS_EXCLUDED(mu_, write_mu_);

  // Wakes a waiting Append or ReadNext; later calls fail. Idempotent.
  void Close() ABSL_LOCKS_EXCLUDED(mu_);

  SpoolStats stats() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  struct Segment {
    uint64_t id = 0;
    std::string path;
    uint64_t bytes = 0;  // committed: the end of the last whole record
    uint64_t first_sequence = 0;  // of its first batch slot
    // One slot per sequence from first_sequence: whether it still needs
    // sending, and its readings (for the counts).
    std::vector<bool> pending;
    std::vector<uint32_t> readings;
    uint64_t pending_count = 0;
    bool sealed = false;        // no more appends
  };

  explicit Spool(SpoolOptions options);
  // One try at appending, under write_mu_. `full`: there is no room now
  // (err: the disk's errno, or 0 for our bound); the caller waits for an
  // answer that changes done_batches from done_seen, and tries again.
  struct AppendAttempt {
    absl::StatusOr<uint64_t> result;
    bool full = false;
    int err = 0;
    uint64_t done_seen = 0;
  };
  AppendAttempt TryAppend(const std::string& serialized, uint32_t readings,
                          absl::string_view cursor, bool waited)
      ABSL_LOCKS_EXCLUDED(mu_, write_mu_);
  absl::Status Recover() ABSL_LOCKS_EXCLUDED(mu_, write_mu_);
  // Starts a new active segment (header and origin record, synced).
  absl::Status StartSegment() ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_);
  // Writes `bytes` at the active segment's end and returns 0 or the errno;
  // a failed write is cut off again, so a partial record never stays. The
  // caller commits the bytes (Segment::bytes, under mu_): a reader never
  // sees a record before its slot exists.
  int WriteActive(absl::string_view bytes) ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_);
  absl::Status SyncActive() ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_);
  // Segment of `sequence`, or null.
  Segment* Find(uint64_t sequence) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void SetDone(Segment& segment, uint64_t sequence, bool dropped)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Deletes finished segments from the oldest (never the active one).
  void DeleteFinished() ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_) ABSL_LOCKS_EXCLUDED(mu_);
  // kDropOldest: drops the oldest closed segment; false if there is none.
  bool DropOldest() ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_) ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status WriteDoneMarks() ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_)
      ABSL_LOCKS_EXCLUDED(mu_);
  void Housekeep();  // the background thread: interval syncs, done marks
  // ReadNext after an I/O error: waits until `deadline` (or a wake, or
  // Close), then returns `error` (Cancelled after Close).
  absl::Status WaitAfterReadError(absl::Status error, absl::Time deadline)
      ABSL_LOCKS_EXCLUDED(mu_);

  const SpoolOptions options_;
  SpoolRecovery recovery_;
  int lock_fd_ = -1;

  // Serialises file writes (Append, housekeeping). Taken before mu_.
  Mutex write_mu_ ABSL_ACQUIRED_BEFORE(mu_);
  int active_fd_ ABSL_GUARDED_BY(write_mu_) = -1;
  bool unsynced_ ABSL_GUARDED_BY(write_mu_) = false;

  // The in-memory index; never held across I/O.
  mutable Mutex mu_;
  std::deque<Segment> segments_ ABSL_GUARDED_BY(mu_);  // by id; back() is active
  uint64_t next_sequence_ ABSL_GUARDED_BY(mu_) = 1;
  uint64_t next_segment_id_ ABSL_GUARDED_BY(mu_) = 1;
  std::string cursor_ ABSL_GUARDED_BY(mu_);
  bool wake_reader_ ABSL_GUARDED_BY(mu_) = false;  // WakeReader, not yet seen
  uint64_t bytes_ ABSL_GUARDED_BY(mu_) = 0;
  // Done marks not yet on disk, and what ReadNext returned last.
  std::vector<uint64_t> unwritten_done_ ABSL_GUARDED_BY(mu_);
  uint64_t read_after_ ABSL_GUARDED_BY(mu_) = 0;
  SpoolStats stats_ ABSL_GUARDED_BY(mu_);
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  bool space_freed_ ABSL_GUARDED_BY(mu_) = false;  // wakes a blocked Append

  // ReadNext's place: the lowest segment id it may still read, and the
  // segment whose bytes (so far) it holds, with its offset in them.
  Mutex read_mu_ ABSL_ACQUIRED_BEFORE(mu_);
  uint64_t read_segment_ ABSL_GUARDED_BY(read_mu_) = 0;
  uint64_t read_loaded_ ABSL_GUARDED_BY(read_mu_) = 0;
  int read_fd_ ABSL_GUARDED_BY(read_mu_) = -1;
  std::string read_bytes_ ABSL_GUARDED_BY(read_mu_);
  uint64_t read_offset_ ABSL_GUARDED_BY(read_mu_) = 0;

  Notification stop_housekeeping_;
  std::thread housekeeper_;
};

}  // namespace telemetry::client

#endif  // TELEMETRY_CLIENT_SPOOL_H_
