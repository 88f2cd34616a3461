// client::Spool on a real file system: what survives a restart, a killed
// process, a torn or damaged file, a full spool and a full disk.
#include "client/spool.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "client/spool_format.h"

namespace telemetry::client {
namespace {

namespace fs = std::filesystem;

class SpoolTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::path(::testing::TempDir()) /
           absl::StrCat("spool-", ::getpid(), "-",
                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  SpoolOptions Options() const {
    SpoolOptions o;
    o.directory = dir_.string();
    o.segment_bytes = 4096;
    o.max_bytes = 1 << 20;
    return o;
  }
  std::unique_ptr<Spool> OpenOrDie(const SpoolOptions& o) {
    auto spool = Spool::Open(o);
    EXPECT_TRUE(spool.ok()) << spool.status();
    return spool.ok() ? *std::move(spool) : nullptr;
  }
  std::vector<fs::path> Segments() const {
    std::vector<fs::path> out;
    for (const auto& e : fs::directory_iterator(dir_)) {
      if (e.path().extension() == ".seg") out.push_back(e.path());
    }
    std::sort(out.begin(), out.end());
    return out;
  }

  fs::path dir_;
};

telemetry::v1::ReadingBatch Batch(int i, int readings = 3) {
  telemetry::v1::ReadingBatch b;
  b.set_idempotency_key(absl::StrCat("key-", i));
  for (int r = 0; r < readings; ++r) {
    auto* reading = b.add_readings();
    reading->set_sensor_id(absl::StrCat("sensor-", i));
    reading->set_value(i + r * 0.5);
  }
  return b;
}

absl::Time Soon() { return absl::Now() + absl::Seconds(10); }
absl::Time Now() { return absl::Now(); }

// Every pending batch's key, in the order ReadNext gives them.
std::vector<std::string> DrainKeys(Spool& spool, bool mark_done = false) {
  std::vector<std::string> keys;
  for (;;) {
    auto entry = spool.ReadNext(absl::Now() + absl::Milliseconds(50));
    if (!entry.ok()) break;
    keys.push_back(entry->batch.idempotency_key());
    if (mark_done) spool.MarkDone(entry->sequence);
  }
  return keys;
}

std::vector<std::string> Keys(int from, int to) {
  std::vector<std::string> out;
  for (int i = from; i < to; ++i) out.push_back(absl::StrCat("key-", i));
  return out;
}

TEST_F(SpoolTest, WhatIsNotDoneIsSentAgainAfterARestartInOrderWithItsKeys) {
  {
    auto spool = OpenOrDie(Options());
    ASSERT_NE(spool, nullptr);
    EXPECT_EQ(spool->cursor(), "");
    for (int i = 0; i < 10; ++i) {
      ASSERT_TRUE(spool->Append(Batch(i), absl::StrCat("offset-", i), Soon()).ok());
    }
    std::vector<uint64_t> sequences;
    for (int i = 0; i < 10; ++i) {
      auto entry = spool->ReadNext(Soon());
      ASSERT_TRUE(entry.ok()) << entry.status();
      EXPECT_EQ(entry->batch.idempotency_key(), absl::StrCat("key-", i));
      EXPECT_EQ(entry->batch.readings_size(), 3);
      sequences.push_back(entry->sequence);
    }
    EXPECT_EQ(spool->ReadNext(absl::Now() + absl::Milliseconds(20)).status().code(),
              absl::StatusCode::kDeadlineExceeded);
    for (int i : {0, 1, 2, 4, 7}) spool->MarkDone(sequences[i]);
    spool->MarkDone(sequences[4]);  // twice: ignored
    spool->MarkDone(999);           // unknown: ignored
    const SpoolStats stats = spool->stats();
    EXPECT_EQ(stats.appended_batches, 10u);
    EXPECT_EQ(stats.done_batches, 5u);
    EXPECT_EQ(stats.pending_batches, 5u);
    EXPECT_EQ(stats.pending_readings, 15u);
  }
  auto spool = OpenOrDie(Options());
  ASSERT_NE(spool, nullptr);
  EXPECT_EQ(spool->recovery().pending_batches, 5u);
  EXPECT_EQ(spool->recovery().done_batches, 5u);
  EXPECT_EQ(spool->recovery().pending_readings, 15u);
  EXPECT_EQ(spool->recovery().tail_bytes_cut, 0u);
  EXPECT_EQ(spool->cursor(), "offset-9");
  EXPECT_EQ(DrainKeys(*spool), (std::vector<std::string>{"key-3", "key-5", "key-6", "key-8",
                                                         "key-9"}));
  // New batches continue the numbering after the recovered ones.
  auto next = spool->Append(Batch(10), "offset-10", Soon());
  ASSERT_TRUE(next.ok());
  EXPECT_GT(*next, 10u);
}

TEST_F(SpoolTest, AKilledProcessLosesNothingItAppended) {
  // The child appends, then dies without any destructor or flush.
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    SpoolOptions o = Options();
    o.sync = SpoolOptions::Sync::kNone;  // a kill, not a power loss: the page cache survives
    auto spool = Spool::Open(o);
    if (!spool.ok()) ::_exit(2);
    for (int i = 0; i < 50; ++i) {
      if (!(*spool)->Append(Batch(i), absl::StrCat(i), absl::Now() + absl::Seconds(10)).ok()) {
        ::_exit(3);
      }
    }
    ::_exit(0);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  ASSERT_EQ(WEXITSTATUS(status), 0);
  auto spool = OpenOrDie(Options());  // the lock died with the child
  ASSERT_NE(spool, nullptr);
  EXPECT_EQ(spool->recovery().pending_batches, 50u);
  EXPECT_EQ(DrainKeys(*spool), Keys(0, 50));
  EXPECT_EQ(spool->cursor(), "49");
}

TEST_F(SpoolTest, OneProcessAtATime) {
  auto first = OpenOrDie(Options());
  ASSERT_NE(first, nullptr);
  auto second = Spool::Open(Options());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(SpoolTest, OptionsThatCannotWorkAreRefused) {
  SpoolOptions o = Options();
  o.max_bytes = o.segment_bytes;
  EXPECT_EQ(Spool::Open(o).status().code(), absl::StatusCode::kInvalidArgument);
  auto spool = OpenOrDie(Options());
  telemetry::v1::ReadingBatch keyless = Batch(1);
  keyless.clear_idempotency_key();
  EXPECT_EQ(spool->Append(keyless, "", Soon()).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(SpoolTest, SegmentsRollAndAreDeletedOnceEverythingInThemIsDone) {
  auto spool = OpenOrDie(Options());
  ASSERT_NE(spool, nullptr);
  for (int i = 0; i < 200; ++i) ASSERT_TRUE(spool->Append(Batch(i, 10), "", Soon()).ok());
  EXPECT_GT(Segments().size(), 10u);
  // Done out of order: nothing is deleted while the oldest has a pending batch.
  std::vector<uint64_t> sequences;
  for (int i = 0; i < 200; ++i) sequences.push_back(spool->ReadNext(Soon())->sequence);
  for (int i = 1; i < 200; ++i) spool->MarkDone(sequences[i]);
  ASSERT_TRUE(spool->Flush().ok());
  EXPECT_GT(Segments().size(), 10u);
  spool->MarkDone(sequences[0]);
  ASSERT_TRUE(spool->Flush().ok());
  EXPECT_EQ(Segments().size(), 1u);  // the active one
  EXPECT_EQ(spool->stats().segments, 1u);
  EXPECT_LT(spool->stats().bytes, 4096u);
}

TEST_F(SpoolTest, WhenFullBlockPushesBackUntilAnAnswerFreesSpace) {
  SpoolOptions o = Options();
  o.max_bytes = 4 * o.segment_bytes;
  auto spool = OpenOrDie(o);
  ASSERT_NE(spool, nullptr);
  int appended = 0;
  for (; appended < 1000; ++appended) {
    auto s = spool->Append(Batch(appended, 10), "", absl::Now() + absl::Milliseconds(50));
    if (!s.ok()) {
      EXPECT_EQ(s.status().code(), absl::StatusCode::kResourceExhausted) << s.status();
      break;
    }
  }
  ASSERT_LT(appended, 1000);
  ASSERT_GT(appended, 10);
  EXPECT_LE(spool->stats().bytes, o.max_bytes);
  // A producer blocks; the sender's answers let it through.
  std::atomic<bool> blocked_append_ok{false};
  std::thread producer([&] {
    blocked_append_ok = spool->Append(Batch(appended, 10), "", absl::Now() + absl::Seconds(30)).ok();
  });
  // (Polled with a deadline: the producer is seen waiting before any answer.)
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (spool->stats().appends_waiting == 0 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(1));
  }
  EXPECT_EQ(spool->stats().appends_waiting, 1u);
  for (int i = 0; i < appended / 2; ++i) {
    auto entry = spool->ReadNext(Soon());
    if (!entry.ok()) break;
    spool->MarkDone(entry->sequence);
  }
  producer.join();
  EXPECT_TRUE(blocked_append_ok);
  EXPECT_EQ(spool->stats().dropped_batches, 0u);
  EXPECT_EQ(spool->stats().full_waits, 1u);
  // Nothing was lost: the rest come next, in order.
  EXPECT_EQ(DrainKeys(*spool), Keys(appended / 2, appended + 1));
}

TEST_F(SpoolTest, WhenFullDropOldestDropsWholeSegmentsAndCountsThem) {
  SpoolOptions o = Options();
  o.max_bytes = 4 * o.segment_bytes;
  o.when_full = SpoolOptions::WhenFull::kDropOldest;
  auto spool = OpenOrDie(o);
  ASSERT_NE(spool, nullptr);
  for (int i = 0; i < 300; ++i) {
    ASSERT_TRUE(spool->Append(Batch(i, 10), "", Now()).ok()) << i;  // never waits
  }
  const SpoolStats stats = spool->stats();
  EXPECT_GT(stats.dropped_batches, 0u);
  EXPECT_EQ(stats.dropped_readings, 10 * stats.dropped_batches);
  EXPECT_EQ(stats.dropped_batches + stats.pending_batches, 300u);
  EXPECT_LE(stats.bytes, o.max_bytes);
  // What is left is the newest, in order, without gaps.
  const std::vector<std::string> keys = DrainKeys(*spool);
  EXPECT_EQ(keys, Keys(300 - static_cast<int>(keys.size()), 300));
  EXPECT_EQ(keys.size(), stats.pending_batches);
}

TEST_F(SpoolTest, AFullDiskPushesBackAndLeavesNoPartialRecord) {
  std::atomic<bool> disk_full{false};
  SpoolOptions o = Options();
  o.write_fault_for_test = [&] { return disk_full.load() ? ENOSPC : 0; };
  {
    auto spool = OpenOrDie(o);
    ASSERT_NE(spool, nullptr);
    ASSERT_TRUE(spool->Append(Batch(0), "", Soon()).ok());
    disk_full = true;
    auto refused = spool->Append(Batch(1), "", absl::Now() + absl::Milliseconds(200));
    EXPECT_EQ(refused.status().code(), absl::StatusCode::kResourceExhausted);
    EXPECT_NE(refused.status().message().find("disk is full"), std::string::npos);
    disk_full = false;
    ASSERT_TRUE(spool->Append(Batch(2), "", Soon()).ok());
  }
  auto spool = OpenOrDie(Options());
  ASSERT_NE(spool, nullptr);
  EXPECT_EQ(spool->recovery().tail_bytes_cut, 0u);
  EXPECT_EQ(DrainKeys(*spool), (std::vector<std::string>{"key-0", "key-2"}));
}

// Writes `n` batches over several segments and closes the spool.
void WriteSpool(const SpoolOptions& o, int n) {
  auto spool = Spool::Open(o);
  ASSERT_TRUE(spool.ok()) << spool.status();
  for (int i = 0; i < n; ++i) ASSERT_TRUE((*spool)->Append(Batch(i, 5), "", Soon()).ok());
}

TEST_F(SpoolTest, PowerLossAtAnyByteRecoversEveryWholeBatchAndCutsTheRest) {
  SpoolOptions o = Options();
  WriteSpool(o, 60);
  const std::vector<fs::path> segments = Segments();
  ASSERT_GE(segments.size(), 3u);
  const fs::path last = segments.back();
  std::ifstream in(last, std::ios::binary);
  const std::string original((std::istreambuf_iterator<char>(in)), {});
  in.close();
  // Whole batches the last segment holds before each offset.
  const spool::DecodedSegment whole = spool::DecodeSegment(original);
  int batches_before_last = 0;
  for (size_t i = 0; i + 1 < segments.size(); ++i) {
    std::ifstream s(segments[i], std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(s)), {});
    for (const auto& r : spool::DecodeSegment(bytes).records) {
      batches_before_last += r.type == spool::RecordType::kBatch;
    }
  }
  std::mt19937 random(20261203);
  for (int trial = 0; trial < 40; ++trial) {
    const fs::path copy = dir_.string() + "-copy";
    fs::remove_all(copy);
    fs::copy(dir_, copy);
    const size_t cut = std::uniform_int_distribution<size_t>(0, original.size())(random);
    fs::resize_file(copy / last.filename(), cut);
    int whole_batches = 0;
    for (const auto& r : whole.records) {
      whole_batches += r.type == spool::RecordType::kBatch && r.offset + r.size <= cut;
    }
    SpoolOptions c = o;
    c.directory = copy.string();
    {
      auto spool = OpenOrDie(c);
      ASSERT_NE(spool, nullptr);
      const int expected = batches_before_last + (cut < spool::kSegmentHeaderBytes ? 0 : whole_batches);
      EXPECT_EQ(DrainKeys(*spool), Keys(0, expected)) << "cut at " << cut;
    }
    {  // the cut tail stays cut: a second open finds nothing to repair
      auto again = OpenOrDie(c);
      ASSERT_NE(again, nullptr);
      EXPECT_EQ(again->recovery().tail_bytes_cut, 0u) << "cut at " << cut;
    }
    fs::remove_all(copy);
  }
}

TEST_F(SpoolTest, FlippedBitsInTheTailLoseOnlyTheRecordsTheyHit) {
  SpoolOptions o = Options();
  WriteSpool(o, 50);  // the last segment holds about 20 batches
  const fs::path last = Segments().back();
  std::ifstream in(last, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), {});
  in.close();
  const spool::DecodedSegment whole = spool::DecodeSegment(bytes);
  // Hit every other one of the last batch records, one bit each: the last
  // makes a damaged tail, the two before it damaged stretches.
  std::set<std::string> hit_keys;
  int hits = 0, seen = 0;
  for (auto r = whole.records.rbegin(); r != whole.records.rend() && hits < 3; ++r) {
    if (r->type != spool::RecordType::kBatch || seen++ % 2 != 0) continue;
    telemetry::v1::ReadingBatch b;
    ASSERT_TRUE(b.ParseFromArray(r->batch.data(), static_cast<int>(r->batch.size())));
    hit_keys.insert(b.idempotency_key());
    bytes[r->offset + r->size / 2] ^= 0x04;
    ++hits;
  }
  ASSERT_EQ(hits, 3);
  std::ofstream(last, std::ios::binary | std::ios::trunc) << bytes;
  auto spool = OpenOrDie(o);
  ASSERT_NE(spool, nullptr);
  std::vector<std::string> expected;
  for (const std::string& k : Keys(0, 50)) {
    if (!hit_keys.count(k)) expected.push_back(k);
  }
  EXPECT_EQ(DrainKeys(*spool), expected);
  EXPECT_EQ(spool->recovery().damaged_spans + (spool->recovery().tail_bytes_cut > 0), 3u)
      << spool->recovery().damaged_spans << " spans, " << spool->recovery().tail_bytes_cut
      << " tail bytes, " << spool->recovery().unparsable_batches << " unparsable";
}

TEST_F(SpoolTest, AnUnreadableSegmentInTheMiddleIsSetAsideAndCounted) {
  SpoolOptions o = Options();
  WriteSpool(o, 60);
  const std::vector<fs::path> segments = Segments();
  ASSERT_GE(segments.size(), 3u);
  const fs::path middle = segments[1];
  std::ifstream in(middle, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), {});
  in.close();
  int lost = 0;
  for (const auto& r : spool::DecodeSegment(bytes).records) lost += r.type == spool::RecordType::kBatch;
  bytes[0] = 'X';  // its header
  std::ofstream(middle, std::ios::binary | std::ios::trunc) << bytes;
  auto spool = OpenOrDie(o);
  ASSERT_NE(spool, nullptr);
  EXPECT_EQ(spool->recovery().unreadable_segments, 1u);
  EXPECT_TRUE(fs::exists(middle.string() + ".bad"));
  EXPECT_EQ(DrainKeys(*spool).size(), static_cast<size_t>(60 - lost));
}

TEST_F(SpoolTest, AProducerAndASenderRunTogether) {
  auto spool = OpenOrDie(Options());
  ASSERT_NE(spool, nullptr);
  constexpr int kBatches = 2000;
  std::atomic<int> append_failures{0};
  std::thread producer([&] {
    for (int i = 0; i < kBatches; ++i) {
      if (!spool->Append(Batch(i), absl::StrCat(i), Soon()).ok()) ++append_failures;
    }
  });
  std::vector<std::string> sent;
  for (int i = 0; i < kBatches; ++i) {
    auto entry = spool->ReadNext(absl::Now() + absl::Seconds(30));
    if (!entry.ok()) break;
    sent.push_back(entry->batch.idempotency_key());
    spool->MarkDone(entry->sequence);  // as an ack would, from another thread's view
  }
  producer.join();
  EXPECT_EQ(append_failures.load(), 0);
  EXPECT_EQ(sent, Keys(0, kBatches));
  ASSERT_TRUE(spool->Flush().ok());
  EXPECT_EQ(spool->stats().pending_batches, 0u);
  EXPECT_EQ(Segments().size(), 1u);
}

TEST_F(SpoolTest, CloseWakesAWaitingSender) {
  auto spool = OpenOrDie(Options());
  ASSERT_NE(spool, nullptr);
  absl::Status read_status;
  std::thread sender([&] { read_status = spool->ReadNext(absl::InfiniteFuture()).status(); });
  spool->Close();
  sender.join();
  EXPECT_EQ(read_status.code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(spool->Append(Batch(1), "", Soon()).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

// A batch lost in the middle (its bytes damaged, later ones intact): the
// cursor is the one before it, so a producer re-reads the lost readings
// from its input instead of resuming past them.
TEST_F(SpoolTest, AfterALossInTheMiddleTheCursorIsTheOneBeforeIt) {
  {
    auto spool = OpenOrDie(Options());
    ASSERT_NE(spool, nullptr);
    for (int i = 0; i < 3; ++i) {
      ASSERT_TRUE(spool->Append(Batch(i), absl::StrCat("offset-", i), Soon()).ok());
    }
  }
  ASSERT_EQ(Segments().size(), 1u);
  std::string bytes;
  {
    std::ifstream in(Segments()[0], std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), {});
  }
  // The second batch's record: find its key, flip a byte in it.
  const size_t at = bytes.find("key-1");
  ASSERT_NE(at, std::string::npos);
  bytes[at] ^= 0x20;
  {
    std::ofstream out(Segments()[0], std::ios::binary | std::ios::trunc);
    out << bytes;
  }
  {
    auto spool = OpenOrDie(Options());
    ASSERT_NE(spool, nullptr);
    EXPECT_TRUE(spool->recovery().cursor_before_loss);
    EXPECT_EQ(spool->recovery().damaged_spans, 1u);
    EXPECT_EQ(spool->cursor(), "offset-0");
    EXPECT_EQ(DrainKeys(*spool), (std::vector<std::string>{"key-0", "key-2"}));
    // The producer re-reads from offset-0 and goes on.
    ASSERT_TRUE(spool->Append(Batch(11), "offset-1", Soon()).ok());
  }
  // The damage is still on disk, but it was dealt with: the next start
  // does not send the producer back again.
  auto spool = OpenOrDie(Options());
  ASSERT_NE(spool, nullptr);
  EXPECT_FALSE(spool->recovery().cursor_before_loss);
  EXPECT_EQ(spool->recovery().damaged_spans, 1u);
  EXPECT_EQ(spool->cursor(), "offset-1");
}

TEST_F(SpoolTest, AnOpenThatFailsLeavesNothingBehindToCrashOn) {
  auto first = OpenOrDie(Options());
  ASSERT_NE(first, nullptr);
  // The second Open fails on the lock; its half-built spool is destroyed.
  EXPECT_EQ(Spool::Open(Options()).status().code(), absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(first->Append(Batch(1), "", Soon()).ok());
}

TEST_F(SpoolTest, ARewoundReaderSendsAgainWhatWasReadButNotAnswered) {
  auto spool = OpenOrDie(Options());
  ASSERT_NE(spool, nullptr);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(spool->Append(Batch(i), "", Soon()).ok());
  auto first = spool->ReadNext(Soon());
  ASSERT_TRUE(first.ok());
  spool->MarkDone(first->sequence);
  ASSERT_TRUE(spool->ReadNext(Soon()).ok());  // read, never answered
  spool->RewindReader();
  EXPECT_EQ(DrainKeys(*spool), Keys(1, 3));
}

TEST_F(SpoolTest, WakeReaderEndsOneWaitButNeverHidesABatch) {
  auto spool = OpenOrDie(Options());
  ASSERT_NE(spool, nullptr);
  // Before or during the wait, it does not matter: the wake is kept.
  absl::Status read_status;
  std::thread sender([&] { read_status = spool->ReadNext(absl::InfiniteFuture()).status(); });
  spool->WakeReader();
  sender.join();
  EXPECT_EQ(read_status.code(), absl::StatusCode::kDeadlineExceeded);
  // A wake with a batch there: the batch comes first, the wake is spent on
  // the next wait.
  ASSERT_TRUE(spool->Append(Batch(1), "", Soon()).ok());
  spool->WakeReader();
  auto entry = spool->ReadNext(absl::InfiniteFuture());
  ASSERT_TRUE(entry.ok()) << entry.status();
  EXPECT_EQ(entry->batch.idempotency_key(), Batch(1).idempotency_key());
  EXPECT_EQ(spool->ReadNext(absl::InfiniteFuture()).status().code(),
            absl::StatusCode::kDeadlineExceeded);
}

}  // namespace
}  // namespace telemetry::client
