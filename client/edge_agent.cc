#include "client/edge_agent.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <deque>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "client/channel_flags.h"
#include "client/csv_readings.h"
#include "storage/util/mutex.h"

namespace telemetry::client {
namespace {

int Fail(absl::string_view program, absl::string_view message, int code) {
  std::cerr << program << ": " << message << "\n";
  return code;
}

// Why readings were refused, with how many each (the reasons are the
// gateway's stable texts, so they are few). Filled from the stream's thread.
class RejectionTally {
 public:
  void Add(const telemetry::v1::BatchAck& ack) {
    MutexLock lock(&mu_);
    for (const auto& r : ack.rejections()) ++counts_[r.reason()];
  }
  void Print(absl::string_view program) {
    MutexLock lock(&mu_);
    for (const auto& [reason, count] : counts_) {
      std::cerr << program << ": rejected " << count << " readings: " << reason << "\n";
    }
  }

 private:
  Mutex mu_;
  std::map<std::string, uint64_t> counts_ ABSL_GUARDED_BY(mu_);
};

// What the reader thread hands over: a reading and the input offset after
// it, an unparsable line, or the end of the input.
struct Item {
  enum Kind { kReading, kUnparsable, kEnd } kind = kEnd;
  telemetry::v1::Reading reading;
  std::string error;
  uint64_t line = 0;          // where a reading or an unparsable record starts
  int64_t offset_after = -1;  // -1: not seekable (stdin)
};

// The reader thread's state, shared so that the thread may outlive the
// call when it is stuck in a read of stdin at shutdown (it is detached).
struct Input {
  int fd = -1;  // the input file, for its identity and fingerprints (never closed:
                // the reader may outlive the call)
  std::ifstream file;
  std::istream* in = &std::cin;
  std::optional<CsvReadingParser> parser;
  int64_t resumed_at = -1;  // lines are counted from this byte when >= 0

  Mutex mu;
  std::deque<Item> items ABSL_GUARDED_BY(mu);
  bool stop ABSL_GUARDED_BY(mu) = false;
  // The reader has handed over all it read and will add nothing more (it
  // ended, or saw `stop`): what `items` holds then is everything.
  bool parked ABSL_GUARDED_BY(mu) = false;
  size_t capacity = 0;

  void Read() {
    std::vector<std::string> cells;
    uint64_t line = resumed_at >= 0 ? 0 : 1;  // the header's, or none before the resume
    for (;;) {
      Item item;
      const bool got = ReadCsvRecord(*in, &cells);
      item.line = ++line;
      for (const std::string& c : cells) line += std::count(c.begin(), c.end(), '\n');
      if (!got) {
        item.kind = Item::kEnd;
      } else if (cells.size() == 1 && cells[0].empty()) {
        continue;  // a blank line
      } else if (auto reading = parser->Parse(cells); reading.ok()) {
        item.kind = Item::kReading;
        item.reading = *std::move(reading);
      } else {
        item.kind = Item::kUnparsable;
        item.error = std::string(reading.status().message());
      }
      if (in == &file) {
        std::streampos at = file.tellg();
        if (at < 0 && file.eof()) {  // the last line: tellg fails at the end
          file.clear();
          at = file.tellg();
        }
        item.offset_after = static_cast<int64_t>(at);
      }
      const bool end = item.kind == Item::kEnd;
      MutexLock lock(&mu);
      auto room = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
        return stop || items.size() < capacity;
      };
      mu.Await(absl::Condition(&room));
      // On stop, what was read still goes in (over capacity): a pipe
      // cannot give it again.
      items.push_back(std::move(item));
      if (end || stop) {
        parked = true;
        return;
      }
    }
  }
};

// CRC-32 of the (up to) 4 KiB of the file before `offset`: what tells the
// same file from one rewritten in place (cp over it, truncated and
// refilled, an inode reused), which keep the device and inode.
uint32_t Fingerprint(int fd, int64_t offset) {
  constexpr int64_t kWindow = 4096;
  const int64_t from = std::max<int64_t>(0, offset - kWindow);
  std::string bytes(static_cast<size_t>(offset - from), '\0');
  size_t got = 0;
  while (got < bytes.size()) {
    const ssize_t n = ::pread(fd, bytes.data() + got, bytes.size() - got,
                              static_cast<off_t>(from + static_cast<int64_t>(got)));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += static_cast<size_t>(n);
  }
  bytes.resize(got);
  return static_cast<uint32_t>(
      crc32(0, reinterpret_cast<const Bytef*>(bytes.data()), static_cast<uInt>(bytes.size())));
}

// "<device>:<inode>:<offset>:<fingerprint>" of the input file.
std::string Cursor(int fd, const struct stat& st, int64_t offset) {
  return absl::StrCat(st.st_dev, ":", st.st_ino, ":", offset, ":", Fingerprint(fd, offset));
}

// The offset a cursor names in the same file with the same bytes before
// it, if it does.
std::optional<int64_t> ResumeOffset(const std::string& cursor, int fd, const struct stat& st) {
  std::vector<std::string> parts = absl::StrSplit(cursor, ':');
  uint64_t dev, ino;
  int64_t offset;
  uint32_t fingerprint;
  if (parts.size() != 4 || !absl::SimpleAtoi(parts[0], &dev) ||
      !absl::SimpleAtoi(parts[1], &ino) || !absl::SimpleAtoi(parts[2], &offset) ||
      !absl::SimpleAtoi(parts[3], &fingerprint)) {
    return std::nullopt;
  }
  if (dev != static_cast<uint64_t>(st.st_dev) || ino != static_cast<uint64_t>(st.st_ino) ||
      offset < 0 || offset > st.st_size || Fingerprint(fd, offset) != fingerprint) {
    return std::nullopt;
  }
  return offset;
}

void PrintStatus(absl::string_view program, const char* when, const Spool& spool,
                 const SpooledStream& stream, uint64_t read) {
  const SpoolStats s = spool.stats();
  const SpooledStreamStats a = stream.stats();
  std::cerr << program << ": " << when << ": read " << read << " readings; backlog "
            << s.pending_batches << " batches (" << s.pending_readings << " readings, "
            << s.bytes << " bytes on disk); answered " << a.batches_answered << " batches ("
            << a.accepted << " stored, " << a.duplicates << " duplicates, " << a.rejected
            << " rejected); dropped " << s.dropped_batches << " batches";
  if (s.read_errors > 0) std::cerr << "; " << s.read_errors << " spool read errors (retrying)";
  std::cerr << "\n";
}

}  // namespace

int RunEdgeAgent(const EdgeAgentOptions& options) {
  const std::string& program = options.program_name;
  if (options.batch_size == 0) return Fail(program, "--batch_size must be positive", 2);
  auto input = std::make_shared<Input>();
  input->capacity = 4 * options.batch_size;
  struct stat file_stat {};
  if (options.input != "-") {
    // One open file: its identity (fstat), the stream over it, and the
    // fingerprints all describe the same file, renamed or not.
    input->fd = ::open(options.input.c_str(), O_RDONLY | O_CLOEXEC);
    if (input->fd < 0 || ::fstat(input->fd, &file_stat) != 0) {
      return Fail(program, absl::StrCat("cannot open ", options.input), 2);
    }
    input->file.open(absl::StrCat("/proc/self/fd/", input->fd), std::ios::binary);
    if (!input->file) return Fail(program, absl::StrCat("cannot open ", options.input), 2);
    input->in = &input->file;
  }
  std::vector<std::string> header;
  if (!ReadCsvRecord(*input->in, &header)) return Fail(program, "the CSV input is empty", 2);
  auto parser = CsvReadingParser::Create(header);
  if (!parser.ok()) return Fail(program, absl::StrCat("line 1: ", parser.status().message()), 2);
  input->parser = *std::move(parser);

  auto spool = Spool::Open(options.spool);
  if (!spool.ok()) return Fail(program, spool.status().ToString(), 2);
  const SpoolRecovery& recovered = (*spool)->recovery();
  if (recovered.segments > 0) {
    std::cerr << program << ": spool " << options.spool.directory << ": "
              << recovered.pending_batches << " batches (" << recovered.pending_readings
              << " readings) to send again; cut " << recovered.tail_bytes_cut
              << " bytes of torn tail, skipped " << recovered.damaged_spans
              << " damaged stretches, " << recovered.unreadable_segments
              << " unreadable segments set aside\n";
    if (recovered.cursor_before_loss) {
      std::cerr << program << ": batches were lost in the middle of the spool; the input is "
                << "read again from before them (what follows comes back as duplicates)\n";
    }
  }
  if (options.input != "-" && !(*spool)->cursor().empty()) {
    if (auto offset = ResumeOffset((*spool)->cursor(), input->fd, file_stat)) {
      input->file.seekg(*offset);
      input->resumed_at = *offset;
      std::cerr << program << ": resuming " << options.input << " at byte " << *offset << "\n";
    } else {
      std::cerr << program << ": " << options.input << " is not the file the spool was "
                << "reading (or it changed): reading it from its start\n";
    }
  }

  // Without a connection check: a device starts whether or not its link is up.
  auto channel = OpenChannelFromFlags(options.target);
  if (!channel.ok()) return Fail(program, channel.status().message(), 2);
  RejectionTally rejections;
  SpooledStream stream(*channel, spool->get(), options.stream,
                       [&rejections](const telemetry::v1::BatchAck& ack) { rejections.Add(ack); });
  std::thread([input] { input->Read(); }).detach();

  uint64_t read = 0, unparsable = 0;
  telemetry::v1::ReadingBatch batch;
  size_t batch_bytes = 0;
  int64_t offset = -1;  // in the input after what was handled; -1 for stdin
  absl::Time batch_started = absl::InfiniteFuture();
  absl::Time next_status = options.progress_interval > absl::ZeroDuration()
                               ? absl::Now() + options.progress_interval
                               : absl::InfiniteFuture();
  auto stopping = [&] { return options.stop != nullptr && options.stop->load(); };
  absl::Status refused;
  auto flush = [&]() -> bool {
    if (batch.readings_size() == 0) return true;
    batch.set_idempotency_key(ContentKey(batch));
    const std::string cursor = offset >= 0 ? Cursor(input->fd, file_stat, offset) : "";
    for (;;) {  // a full spool (kBlock) waits here: the input waits with it
      auto appended = stream.Send(batch, cursor, absl::Now() + absl::Seconds(1));
      if (appended.ok()) break;
      if (!absl::IsResourceExhausted(appended.status()) || stopping()) {
        refused = appended.status();
        return false;
      }
    }
    batch.Clear();
    batch_bytes = 0;
    batch_started = absl::InfiniteFuture();
    return true;
  };
  bool ended = false;
  // A batch's bound by size, far below the gateway's message limit (8 MiB),
  // so that no batch is ever refused for its size: one it would refuse
  // with a retryable status would stay at the spool's head for good.
  constexpr size_t kMaxBatchBytes = 1 << 20;
  auto unparsable_line = [&](const Item& item, absl::string_view error) {
    if (++unparsable <= 10) {
      std::cerr << program << ": line " << item.line;
      if (input->resumed_at >= 0) std::cerr << " (counted from byte " << input->resumed_at << ")";
      std::cerr << ": unparsable: " << error << "\n";
    }
  };
  // Takes one item into the batch; false if the spool refused a batch.
  auto handle = [&](Item& item) -> bool {
    switch (item.kind) {
      case Item::kEnd:
        ended = true;
        break;
      case Item::kUnparsable:
        unparsable_line(item, item.error);
        break;
      case Item::kReading: {
        const size_t bytes = item.reading.ByteSizeLong();
        if (bytes > kMaxBatchBytes / 2) {
          unparsable_line(item, "the reading is larger than 512 KiB");
          break;
        }
        // The batch goes first if this reading would take it past the bound.
        if (batch_bytes + bytes > kMaxBatchBytes && !flush()) return false;
        ++read;
        if (batch.readings_size() == 0) batch_started = absl::Now();
        batch_bytes += bytes;
        *batch.add_readings() = std::move(item.reading);
        break;
      }
    }
    if (item.offset_after >= 0) offset = item.offset_after;
    return true;
  };
  auto full = [&] {
    return static_cast<size_t>(batch.readings_size()) >= options.batch_size ||
           batch_bytes >= kMaxBatchBytes;
  };
  while (!ended && !stopping()) {
    std::optional<Item> item;
    {
      MutexLock lock(&input->mu);
      auto ready = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(input->mu) {
        return !input->items.empty();
      };
      const absl::Time wake = std::min({batch_started + options.flush_interval, next_status,
                                        absl::Now() + absl::Milliseconds(200)});
      if (input->mu.AwaitWithDeadline(absl::Condition(&ready), wake)) {
        item = std::move(input->items.front());
        input->items.pop_front();
      }
    }
    if (item && !handle(*item)) break;
    if ((full() || ended || absl::Now() >= batch_started + options.flush_interval) && !flush()) {
      break;
    }
    if (absl::Now() >= next_status) {
      PrintStatus(program, "status", **spool, stream, read);
      next_status = absl::Now() + options.progress_interval;
    }
  }
  std::deque<Item> read_ahead;
  {
    MutexLock lock(&input->mu);
    input->stop = true;  // the reader ends (or, stuck in a read, is left behind)
    // A reader between reads hands over what it holds at once; one
    // blocked in a read of stdin is not waited for.
    auto parked = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(input->mu) { return input->parked; };
    input->mu.AwaitWithDeadline(absl::Condition(&parked), absl::Now() + absl::Milliseconds(200));
    read_ahead.swap(input->items);
  }
  if (refused.ok() && stopping()) {
    // What was read goes to disk: the batch being filled and the reader's
    // queue (a pipe cannot give them again).
    for (Item& item : read_ahead) {
      if (!handle(item) || (full() && !flush())) break;
    }
    if (refused.ok()) (void)flush();
  }
  // The drain: status lines go on while the backlog is sent.
  absl::Time drain_until =
      absl::Now() + (stopping() ? options.stop_drain_timeout : options.drain_timeout);
  while (refused.ok() && stream.refusal().ok() && (*spool)->stats().pending_batches > 0 &&
         absl::Now() < drain_until && !stopping()) {
    absl::SleepFor(std::min(absl::Milliseconds(50), drain_until - absl::Now()));
    if (absl::Now() >= next_status) {
      PrintStatus(program, "status", **spool, stream, read);
      next_status = absl::Now() + options.progress_interval;
    }
  }
  if (stopping()) {
    drain_until = std::min(drain_until, absl::Now() + options.stop_drain_timeout);
  }
  auto closed = stream.Close(refused.ok() ? std::max(drain_until - absl::Now(), absl::ZeroDuration())
                                          : absl::ZeroDuration());
  PrintStatus(program, "done", **spool, stream, read);
  const SpoolStats s = (*spool)->stats();
  const SpooledStreamStats a = stream.stats();
  rejections.Print(program);
  if (unparsable > 10) {
    std::cerr << program << ": " << unparsable - 10 << " more unparsable lines not listed\n";
  }
  std::cout << program << ": read " << read << " readings (" << unparsable
            << " unparsable lines); answered " << a.batches_answered << " batches: "
            << a.accepted << " stored, " << a.duplicates << " duplicates, " << a.rejected
            << " rejected, " << a.batches_failed << " batches refused; spool: "
            << s.pending_batches << " batches pending, " << s.dropped_batches
            << " dropped (" << s.dropped_readings << " readings)\n"
            << std::flush;
  if (!refused.ok()) return Fail(program, absl::StrCat("cannot spool: ", refused.ToString()), 1);
  if (!closed.ok()) return Fail(program, closed.status().message(), 1);
  return a.batches_failed == 0 && s.dropped_batches == 0 && unparsable == 0 && a.rejected == 0
             ? 0
             : 1;
}

}  // namespace telemetry::client
