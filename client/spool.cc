#include "client/spool.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "client/spool_format.h"

namespace telemetry::client {
namespace {

namespace fs = std::filesystem;
using spool::Record;
using spool::RecordType;

absl::Status ErrnoStatus(absl::string_view what, const std::string& path, int err) {
  const std::string message = absl::StrCat(what, " ", path, ": ", std::strerror(err));
  if (err == ENOSPC || err == EDQUOT || err == EFBIG) return absl::ResourceExhaustedError(message);
  return absl::UnavailableError(message);
}

bool IsFullError(int err) { return err == ENOSPC || err == EDQUOT || err == EFBIG; }

absl::StatusOr<std::string> ReadWholeFile(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus("cannot open", path, errno);
  std::string out;
  char buffer[1 << 16];
  for (;;) {
    const ssize_t n = ::read(fd, buffer, sizeof(buffer));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      ::close(fd);
      return ErrnoStatus("cannot read", path, err);
    }
    if (n == 0) break;
    out.append(buffer, static_cast<size_t>(n));
  }
  ::close(fd);
  return out;
}

// pwrite all of `bytes`; 0 or the errno.
int WriteAll(int fd, absl::string_view bytes, uint64_t offset) {
  while (!bytes.empty()) {
    const ssize_t n = ::pwrite(fd, bytes.data(), bytes.size(), static_cast<off_t>(offset));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno;
    if (n == 0) return EIO;  // no progress: never loop on it
    bytes.remove_prefix(static_cast<size_t>(n));
    offset += static_cast<uint64_t>(n);
  }
  return 0;
}

void SyncFile(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) return;
  (void)::fdatasync(fd);
  ::close(fd);
}

void SyncDirectory(const std::string& directory) {
  const int fd = ::open(directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  (void)::fsync(fd);
  ::close(fd);
}

}  // namespace

Spool::Spool(SpoolOptions options) : options_(std::move(options)) {}

absl::StatusOr<std::unique_ptr<Spool>> Spool::Open(SpoolOptions options) {
  if (options.directory.empty()) return absl::InvalidArgumentError("the spool needs a directory");
  if (options.segment_bytes < 4096) {
    return absl::InvalidArgumentError("spool segments must be at least 4 KiB");
  }
  if (options.max_bytes < 2 * options.segment_bytes) {
    return absl::InvalidArgumentError("the spool's max_bytes must hold at least two segments");
  }
  if (options.sync_interval <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("the spool's sync_interval must be positive");
  }
  std::error_code ec;
  fs::create_directories(options.directory, ec);
  if (ec) {
    return absl::UnavailableError(
        absl::StrCat("cannot create the spool directory ", options.directory, ": ", ec.message()));
  }
  std::unique_ptr<Spool> spool(new Spool(std::move(options)));
  const std::string lock_path = (fs::path(spool->options_.directory) / "LOCK").string();
  spool->lock_fd_ = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (spool->lock_fd_ < 0) return ErrnoStatus("cannot open", lock_path, errno);
  if (::flock(spool->lock_fd_, LOCK_EX | LOCK_NB) != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("the spool ", spool->options_.directory, " is in use by another process"));
  }
  if (absl::Status recovered = spool->Recover(); !recovered.ok()) return recovered;
  spool->housekeeper_ = std::thread([raw = spool.get()] { raw->Housekeep(); });
  return spool;
}

Spool::~Spool() {
  Close();
  stop_housekeeping_.Notify();
  if (housekeeper_.joinable()) housekeeper_.join();
  (void)Flush();
  {
    MutexLock lock(&write_mu_);
    if (active_fd_ >= 0) ::close(active_fd_);
    active_fd_ = -1;
  }
  {
    MutexLock lock(&read_mu_);
    if (read_fd_ >= 0) ::close(read_fd_);
    read_fd_ = -1;
  }
  if (lock_fd_ >= 0) ::close(lock_fd_);  // releases the flock
}

absl::Status Spool::Recover() {
  std::vector<std::pair<uint64_t, std::string>> files;
  std::error_code ec;
  for (const fs::directory_entry& entry : fs::directory_iterator(options_.directory, ec)) {
    uint64_t id;
    if (spool::ParseSegmentFileName(entry.path().filename().string(), &id)) {
      files.emplace_back(id, entry.path().string());
    }
  }
  if (ec) {
    return absl::UnavailableError(
        absl::StrCat("cannot list the spool ", options_.directory, ": ", ec.message()));
  }
  std::sort(files.begin(), files.end());

  MutexLock write_lock(&write_mu_);
  std::vector<std::pair<uint64_t, uint64_t>> done_ranges;  // [first, end)
  {
    MutexLock lock(&mu_);
    uint64_t highest_batch = 0;
    // The cursor is where a producer re-reads its input from: never past
    // a batch that is lost (damage, a hole, a segment set aside), whose
    // readings the input may still hold. Once one is, it stays put.
    bool lost = false;
    for (size_t file = 0; file < files.size(); ++file) {
      const auto& [id, path] = files[file];
      next_segment_id_ = std::max(next_segment_id_, id + 1);
      absl::StatusOr<std::string> bytes = ReadWholeFile(path);
      if (!bytes.ok()) return bytes.status();
      const spool::DecodedSegment decoded = spool::DecodeSegment(*bytes);
      if (!decoded.header_ok || decoded.id != id) {
        if (bytes->size() < spool::kSegmentHeaderBytes) {
          // Created, then the process died before its header was written.
          recovery_.tail_bytes_cut += bytes->size();
          fs::remove(path, ec);
        } else {
          ++recovery_.unreadable_segments;
          fs::rename(path, path + ".bad", ec);
          lost = true;
        }
        continue;
      }
      Segment segment;
      segment.id = id;
      segment.path = path;
      segment.bytes = decoded.intact_end;
      segment.sealed = true;
      bool has_slots = false;
      uint64_t expected_offset = spool::kSegmentHeaderBytes;
      for (const Record& r : decoded.records) {
        if (r.offset != expected_offset) lost = true;  // a damaged stretch before it
        expected_offset = r.offset + r.size;
        // A batch number skipped: written, then not on disk (power loss
        // with a lazy sync can keep later writes and lose earlier ones).
        if ((r.type == RecordType::kOrigin || r.type == RecordType::kBatch) &&
            highest_batch > 0 && r.sequence > highest_batch + 1) {
          lost = true;
        }
        switch (r.type) {
          case RecordType::kOrigin:
            next_sequence_ = std::max(next_sequence_, r.sequence);
            if (!lost) cursor_ = std::string(r.cursor);
            break;
          case RecordType::kRewind:
            // An earlier recovery dealt with the losses before this: its
            // producer re-read from here. Only later losses count.
            next_sequence_ = std::max(next_sequence_, r.sequence);
            lost = false;
            cursor_ = std::string(r.cursor);
            break;
          case RecordType::kDone:
            if (r.count <= UINT64_MAX - r.sequence) {
              done_ranges.emplace_back(r.sequence, r.sequence + r.count);
              next_sequence_ = std::max(next_sequence_, r.sequence + r.count);
            }
            break;
          case RecordType::kBatch: {
            if (r.sequence <= highest_batch || r.sequence == UINT64_MAX) break;  // not after the last
            if (!has_slots) {
              segment.first_sequence = r.sequence;
              has_slots = true;
            }
            // A damaged stretch may have taken batches: their slots stay done.
            while (segment.first_sequence + segment.pending.size() < r.sequence) {
              segment.pending.push_back(false);
              segment.readings.push_back(0);
            }
            telemetry::v1::ReadingBatch batch;
            const bool parsed = batch.ParseFromArray(r.batch.data(), static_cast<int>(r.batch.size())) &&
                                !batch.idempotency_key().empty();
            if (!parsed) {
              ++recovery_.unparsable_batches;
              lost = true;
            }
            segment.pending.push_back(parsed);
            segment.readings.push_back(static_cast<uint32_t>(batch.readings_size()));
            if (parsed) ++segment.pending_count;
            highest_batch = r.sequence;
            next_sequence_ = std::max(next_sequence_, r.sequence + 1);
            if (!lost) cursor_ = std::string(r.cursor);
            break;
          }
        }
      }
      if (!has_slots) segment.first_sequence = highest_batch + 1;
      if (decoded.tail_bytes > 0) {
        // Cut a torn or damaged tail, so that it is never read again. In
        // the newest segment it is the append a crash cut short; in an
        // older one, batches lost before later ones.
        if (file + 1 < files.size()) lost = true;
        recovery_.tail_bytes_cut += decoded.tail_bytes;
        if (::truncate(path.c_str(), static_cast<off_t>(decoded.intact_end)) != 0) {
          return ErrnoStatus("cannot cut the damaged tail of", path, errno);
        }
      }
      recovery_.damaged_spans += decoded.damaged_spans;
      recovery_.damaged_bytes += decoded.damaged_bytes;
      bytes_ += segment.bytes;
      segments_.push_back(std::move(segment));
    }
    for (const auto& [first, end] : done_ranges) {
      for (Segment& s : segments_) {
        const uint64_t lo = std::max(first, s.first_sequence);
        const uint64_t hi = std::min<uint64_t>(end, s.first_sequence + s.pending.size());
        for (uint64_t seq = lo; seq < hi; ++seq) {
          if (s.pending[seq - s.first_sequence]) {
            s.pending[seq - s.first_sequence] = false;
            --s.pending_count;
            ++recovery_.done_batches;
          }
        }
      }
    }
    for (const Segment& s : segments_) {
      for (size_t i = 0; i < s.pending.size(); ++i) {
        if (!s.pending[i]) continue;
        ++recovery_.pending_batches;
        recovery_.pending_readings += s.readings[i];
      }
    }
    recovery_.segments = segments_.size();
    recovery_.cursor_before_loss = lost;
    stats_.pending_batches = recovery_.pending_batches;
    stats_.pending_readings = recovery_.pending_readings;
  }
  // What the last run wrote may not be on the disk yet (a lazy sync, the
  // cut just made): it must be before what this run writes.
  if (!files.empty() && options_.sync != SpoolOptions::Sync::kNone) {
    SyncFile(files.back().second);
  }
  // Never append to a segment of an earlier run: start a fresh one.
  if (absl::Status started = StartSegment(); !started.ok()) return started;
  if (recovery_.cursor_before_loss) {
    // Say that the losses so far are dealt with, so that the next start
    // does not send the producer back again.
    std::string cursor;
    uint64_t next;
    {
      MutexLock lock(&mu_);
      cursor = cursor_;
      next = next_sequence_;
    }
    const std::string rewind = spool::EncodeRewind(next, cursor);
    if (const int err = WriteActive(rewind); err != 0) {
      return ErrnoStatus("cannot write to the spool", options_.directory, err);
    }
    if (absl::Status synced = SyncActive(); !synced.ok()) return synced;
    MutexLock lock(&mu_);
    segments_.back().bytes += rewind.size();
    bytes_ += rewind.size();
  }
  DeleteFinished();
  return absl::OkStatus();
}

absl::Status Spool::StartSegment() {
  // What the old segment holds must reach the disk before the new one can:
  // a power cut must not keep later batches and lose earlier ones.
  if (active_fd_ >= 0 && unsynced_ && options_.sync != SpoolOptions::Sync::kNone) {
    if (absl::Status synced = SyncActive(); !synced.ok()) return synced;
  }
  uint64_t id, next_sequence;
  std::string cursor;
  {
    MutexLock lock(&mu_);
    id = next_segment_id_++;
    next_sequence = next_sequence_;
    cursor = cursor_;
  }
  const std::string path = (fs::path(options_.directory) / spool::SegmentFileName(id)).string();
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) return ErrnoStatus("cannot create", path, errno);
  const std::string start =
      spool::EncodeSegmentHeader(id) + spool::EncodeOrigin(next_sequence, cursor);
  int err = options_.write_fault_for_test ? options_.write_fault_for_test() : 0;
  if (err == 0) err = WriteAll(fd, start, 0);
  if (err == 0 && ::fdatasync(fd) != 0) err = errno;
  if (err != 0) {
    ::close(fd);
    std::error_code ec;
    fs::remove(path, ec);
    return ErrnoStatus("cannot start the spool segment", path, err);
  }
  SyncDirectory(options_.directory);
  if (active_fd_ >= 0) ::close(active_fd_);
  active_fd_ = fd;
  MutexLock lock(&mu_);
  if (!segments_.empty()) segments_.back().sealed = true;
  Segment segment;
  segment.id = id;
  segment.path = path;
  segment.bytes = start.size();
  segment.first_sequence = next_sequence;
  segments_.push_back(std::move(segment));
  bytes_ += start.size();
  ++stats_.syncs;
  return absl::OkStatus();
}

int Spool::WriteActive(absl::string_view bytes) {
  uint64_t offset;
  {
    MutexLock lock(&mu_);
    offset = segments_.back().bytes;
  }
  int err = options_.write_fault_for_test ? options_.write_fault_for_test() : 0;
  if (err == 0) err = WriteAll(active_fd_, bytes, offset);
  if (err != 0) {
    // A partial record must not stay: the next append goes where it began.
    (void)::ftruncate(active_fd_, static_cast<off_t>(offset));
  }
  return err;
}

absl::Status Spool::SyncActive() {
  if (::fdatasync(active_fd_) != 0) {
    return ErrnoStatus("cannot sync the spool", options_.directory, errno);
  }
  unsynced_ = false;
  MutexLock lock(&mu_);
  ++stats_.syncs;
  return absl::OkStatus();
}

absl::StatusOr<uint64_t> Spool::Append(const telemetry::v1::ReadingBatch& batch,
                                       absl::string_view cursor, absl::Time deadline) {
  if (batch.idempotency_key().empty()) {
    return absl::InvalidArgumentError("a spooled batch needs an idempotency_key");
  }
  std::string serialized;
  if (!batch.SerializeToString(&serialized)) {
    return absl::InvalidArgumentError("the batch cannot be serialised");
  }
  if (serialized.size() + 64 > options_.max_bytes / 2 ||
      serialized.size() + cursor.size() + 4 > spool::kMaxPayloadBytes) {
    return absl::InvalidArgumentError("the batch is larger than the spool can hold");
  }
  const auto readings = static_cast<uint32_t>(batch.readings_size());
  bool waited = false;
  for (;;) {
    AppendAttempt attempt = TryAppend(serialized, readings, cursor, waited);
    if (!attempt.full) return std::move(attempt.result);
    if (absl::Now() >= deadline) {
      return absl::ResourceExhaustedError(
          attempt.err != 0
              ? absl::StrCat("the spool's disk is full: ", std::strerror(attempt.err))
              : "the spool is full: nothing acknowledged frees space yet");
    }
    waited = true;
    // Wait for an answer to free space (for a full disk, maybe someone
    // else frees it): re-checked at least every 100 ms. Without write_mu_:
    // the housekeeper (interval syncs, done marks) goes on meanwhile.
    MutexLock lock(&mu_);
    auto changed = [this, seen = attempt.done_seen]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return closed_ || stats_.done_batches != seen;
    };
    ++stats_.appends_waiting;
    mu_.AwaitWithDeadline(absl::Condition(&changed),
                          std::min(deadline, absl::Now() + absl::Milliseconds(100)));
    --stats_.appends_waiting;
  }
}

Spool::AppendAttempt Spool::TryAppend(const std::string& serialized, uint32_t readings,
                                      absl::string_view cursor, bool waited) {
  MutexLock write_lock(&write_mu_);
  for (;;) {
    uint64_t sequence, active_bytes, active_slots, total, done_seen;
    {
      MutexLock lock(&mu_);
      if (closed_) return {absl::FailedPreconditionError("the spool is closed")};
      sequence = next_sequence_;
      active_bytes = segments_.back().bytes;
      active_slots = segments_.back().pending.size();
      total = bytes_;
      done_seen = stats_.done_batches;
    }
    const std::string record = spool::EncodeBatch(sequence, cursor, serialized);
    bool full = total + record.size() > options_.max_bytes;
    int err = 0;
    if (!full && active_slots > 0 && active_bytes + record.size() > options_.segment_bytes) {
      absl::Status started = StartSegment();
      if (started.ok()) continue;
      if (!absl::IsResourceExhausted(started)) return {started};
      full = true;  // the disk is full
      err = ENOSPC;
    }
    if (!full) {
      err = WriteActive(record);
      if (err == 0) {
        if (options_.sync == SpoolOptions::Sync::kEveryBatch) {
          // Not committed unless synced: cut it again. (A crash before the
          // cut may keep it; that only sends a batch whose Append failed,
          // and its readings lie after the cursor, so none is lost.)
          if (absl::Status synced = SyncActive(); !synced.ok()) {
            (void)::ftruncate(active_fd_, static_cast<off_t>(active_bytes));
            return {synced};
          }
        } else {
          unsynced_ = true;
        }
        MutexLock lock(&mu_);
        Segment& active = segments_.back();
        active.bytes += record.size();
        bytes_ += record.size();
        active.pending.push_back(true);
        active.readings.push_back(readings);
        ++active.pending_count;
        next_sequence_ = sequence + 1;
        cursor_ = std::string(cursor);
        ++stats_.appended_batches;
        ++stats_.pending_batches;
        stats_.pending_readings += readings;
        if (waited) ++stats_.full_waits;
        return {sequence};
      }
      if (!IsFullError(err)) {
        return {ErrnoStatus("cannot write the spool", options_.directory, err)};
      }
    }
    // Full: our bound, or the disk itself.
    DeleteFinished();
    {
      MutexLock lock(&mu_);
      if (bytes_ < total) continue;  // finished segments freed space
    }
    if (options_.when_full == SpoolOptions::WhenFull::kDropOldest && DropOldest()) continue;
    return {absl::ResourceExhaustedError("full"), /*full=*/true, err, done_seen};
  }
}

Spool::Segment* Spool::Find(uint64_t sequence) {
  auto it = std::upper_bound(
      segments_.begin(), segments_.end(), sequence,
      [](uint64_t seq, const Segment& s) { return seq < s.first_sequence; });
  if (it == segments_.begin()) return nullptr;
  --it;
  if (sequence - it->first_sequence >= it->pending.size()) return nullptr;
  return &*it;
}

void Spool::SetDone(Segment& segment, uint64_t sequence, bool dropped) {
  const size_t slot = sequence - segment.first_sequence;
  if (!segment.pending[slot]) return;
  segment.pending[slot] = false;
  --segment.pending_count;
  --stats_.pending_batches;
  stats_.pending_readings -= segment.readings[slot];
  if (dropped) {
    ++stats_.dropped_batches;
    stats_.dropped_readings += segment.readings[slot];
  } else {
    ++stats_.done_batches;
  }
}

void Spool::MarkDone(uint64_t sequence) {
  MutexLock lock(&mu_);
  Segment* segment = Find(sequence);
  if (segment == nullptr || !segment->pending[sequence - segment->first_sequence]) return;
  SetDone(*segment, sequence, /*dropped=*/false);
  unwritten_done_.push_back(sequence);
}

void Spool::DeleteFinished() {
  std::vector<std::string> doomed;
  {
    MutexLock lock(&mu_);
    // From the oldest only: a segment's done marks are in it or later ones.
    while (segments_.size() > 1 && segments_.front().sealed &&
           segments_.front().pending_count == 0) {
      bytes_ -= segments_.front().bytes;
      doomed.push_back(segments_.front().path);
      segments_.pop_front();
    }
  }
  for (const std::string& path : doomed) ::unlink(path.c_str());
}

bool Spool::DropOldest() {
  std::string doomed;
  {
    MutexLock lock(&mu_);
    if (segments_.size() < 2) return false;  // only the active one
    Segment& oldest = segments_.front();
    for (size_t i = 0; i < oldest.pending.size(); ++i) {
      if (oldest.pending[i]) SetDone(oldest, oldest.first_sequence + i, /*dropped=*/true);
    }
    bytes_ -= oldest.bytes;
    doomed = oldest.path;
    segments_.pop_front();
  }
  ::unlink(doomed.c_str());
  return true;
}

absl::Status Spool::WriteDoneMarks() {
  std::vector<uint64_t> done;
  {
    MutexLock lock(&mu_);
    done.swap(unwritten_done_);
    // Marks of deleted segments are not needed any more.
    const uint64_t oldest = segments_.front().first_sequence;
    done.erase(std::remove_if(done.begin(), done.end(), [&](uint64_t s) { return s < oldest; }),
               done.end());
  }
  if (done.empty()) return absl::OkStatus();
  std::sort(done.begin(), done.end());
  std::string records;
  for (size_t i = 0; i < done.size();) {
    size_t j = i + 1;
    while (j < done.size() && done[j] == done[j - 1] + 1) ++j;
    records += spool::EncodeDone(done[i], j - i);
    i = j;
  }
  const int err = WriteActive(records);
  MutexLock lock(&mu_);
  if (err != 0) {  // kept for the next try; they are only an optimisation
    unwritten_done_.insert(unwritten_done_.end(), done.begin(), done.end());
    return ErrnoStatus("cannot write to the spool", options_.directory, err);
  }
  segments_.back().bytes += records.size();
  bytes_ += records.size();
  unsynced_ = true;
  return absl::OkStatus();
}

absl::Status Spool::Flush() {
  MutexLock write_lock(&write_mu_);
  if (active_fd_ < 0) return absl::OkStatus();  // never opened (Open failed)
  absl::Status status = WriteDoneMarks();
  DeleteFinished();
  if (unsynced_ && options_.sync != SpoolOptions::Sync::kNone && active_fd_ >= 0) {
    if (absl::Status synced = SyncActive(); !synced.ok() && status.ok()) status = synced;
  }
  return status;
}

void Spool::Housekeep() {
  while (!stop_housekeeping_.WaitForNotificationWithTimeout(options_.sync_interval)) {
    (void)Flush();
  }
}

absl::StatusOr<SpoolEntry> Spool::ReadNext(absl::Time deadline) {
  MutexLock read_lock(&read_mu_);
  for (;;) {
    // Which segment to read, and how much of it is written.
    uint64_t segment_bytes = 0, appended_seen = 0;
    bool sealed = false, found = false;
    std::string path;
    {
      MutexLock lock(&mu_);
      if (closed_) return absl::CancelledError("the spool is closed");
      appended_seen = stats_.appended_batches + next_segment_id_;
      for (const Segment& s : segments_) {
        if (s.id < read_segment_) continue;
        read_segment_ = s.id;
        if (s.id != read_loaded_) {  // the next one (the last was read or deleted)
          read_loaded_ = s.id;
          read_bytes_.clear();
          read_offset_ = spool::kSegmentHeaderBytes;
          if (read_fd_ >= 0) ::close(read_fd_);
          read_fd_ = -1;
        }
        segment_bytes = s.bytes;
        sealed = s.sealed;
        path = s.path;
        found = true;
        break;
      }
    }
    if (found) {
      if (read_fd_ < 0) {
        read_fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
        if (read_fd_ < 0) {
          if (errno == ENOENT) {  // deleted meanwhile (dropped): on to the next
            ++read_segment_;
            continue;
          }
          // Out of descriptors, say: its batches are still there, so try
          // again later rather than skip them.
          return WaitAfterReadError(ErrnoStatus("cannot open", path, errno), deadline);
        }
      }
      while (read_bytes_.size() < segment_bytes) {
        char buffer[1 << 16];
        const size_t want = std::min<size_t>(sizeof(buffer), segment_bytes - read_bytes_.size());
        const ssize_t n = ::pread(read_fd_, buffer, want, static_cast<off_t>(read_bytes_.size()));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return WaitAfterReadError(ErrnoStatus("cannot read", path, errno), deadline);
        if (n == 0) break;  // cut by a failed write after we looked: read it later
        read_bytes_.append(buffer, static_cast<size_t>(n));
      }
      Record r;
      while (read_offset_ < read_bytes_.size()) {
        if (!spool::DecodeRecordAt(read_bytes_, read_offset_, &r)) {
          ++read_offset_;  // a damaged stretch (counted by Open): find the next record
          continue;
        }
        read_offset_ += r.size;
        if (r.type != RecordType::kBatch) continue;
        {
          MutexLock lock(&mu_);
          if (r.sequence <= read_after_) continue;
          Segment* segment = Find(r.sequence);
          if (segment == nullptr || !segment->pending[r.sequence - segment->first_sequence]) {
            continue;  // answered already, or dropped
          }
          read_after_ = r.sequence;
        }
        SpoolEntry entry;
        entry.sequence = r.sequence;
        if (!entry.batch.ParseFromArray(r.batch.data(), static_cast<int>(r.batch.size()))) {
          continue;  // counted by Open (its slot is never pending)
        }
        return entry;
      }
      if (sealed && read_bytes_.size() >= segment_bytes) {
        ++read_segment_;  // read to its end: the next one
        continue;
      }
    }
    // Everything written is read: wait for more.
    MutexLock lock(&mu_);
    auto more = [this, appended_seen]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return closed_ || wake_reader_ ||
             stats_.appended_batches + next_segment_id_ != appended_seen;
    };
    if (!mu_.AwaitWithDeadline(absl::Condition(&more), deadline) || wake_reader_) {
      wake_reader_ = false;
      return absl::DeadlineExceededError("no batch to send yet");
    }
  }
}

absl::Status Spool::WaitAfterReadError(absl::Status error, absl::Time deadline) {
  MutexLock lock(&mu_);
  ++stats_.read_errors;
  auto woken = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return closed_ || wake_reader_; };
  mu_.AwaitWithDeadline(absl::Condition(&woken), deadline);
  wake_reader_ = false;
  if (closed_) return absl::CancelledError("the spool is closed");
  return error;
}

void Spool::RewindReader() {
  MutexLock read_lock(&read_mu_);
  if (read_fd_ >= 0) ::close(read_fd_);
  read_fd_ = -1;
  read_loaded_ = 0;  // no segment has id 0: the first is loaded again
  read_bytes_.clear();
  read_segment_ = 0;
  MutexLock lock(&mu_);
  read_after_ = 0;
}

void Spool::WakeReader() {
  MutexLock lock(&mu_);
  wake_reader_ = true;
}

void Spool::Close() {
  MutexLock lock(&mu_);
  closed_ = true;
}

std::string Spool::cursor() const {
  MutexLock lock(&mu_);
  return cursor_;
}

SpoolStats Spool::stats() const {
  MutexLock lock(&mu_);
  SpoolStats out = stats_;
  out.bytes = bytes_;
  out.segments = segments_.size();
  return out;
}

}  // namespace telemetry::client
