#include "server/ingest/ingest_pipeline.h"
#include "storage/util/mutex.h"

#include <gtest/gtest.h>

#include <atomic>
#include <memory>

#include "storage/memory/memory_sink.h"

namespace telemetry::ingest {
namespace {

std::vector<ReadingRow> Rows(const std::string& sensor, int n, int64_t t0 = 0) {
  std::vector<ReadingRow> rows(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) {
    rows[static_cast<size_t>(i)].sensor_id = sensor;
    rows[static_cast<size_t>(i)].timestamp_us = t0 + i;
  }
  return rows;
}

// Collects one batch's outcome.
struct Result {
  Notification done;
  BatchOutcome outcome;
  IngestPipeline::Callback Callback() {
    return [this](const BatchOutcome& o) {
      outcome = o;
      done.Notify();
    };
  }
  bool Wait() { return done.WaitForNotificationWithTimeout(absl::Seconds(10)); }
};

// Polls until `condition` holds or 10 s pass.
template <typename F>
bool Eventually(F condition) {
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (!condition()) {
    if (absl::Now() > deadline) return false;
    absl::SleepFor(absl::Milliseconds(1));
  }
  return true;
}

class IngestPipelineTest : public ::testing::Test {
 protected:
  void Start(PipelineOptions options, bool with_store = true) {
    pipeline_ = std::make_unique<IngestPipeline>(
        options, with_store ? &store_ : nullptr,
        [this] { return std::make_unique<MemorySink>(&db_); }, nullptr);
  }
  absl::Status Submit(const std::string& key, std::vector<ReadingRow> rows,
                      Result* r) {
    return pipeline_->Submit(key, std::move(rows), r->Callback());
  }
  // Occupies one writer with a batch of `rows` readings held at the
  // database's gate, so that what is submitted next queues up behind it.
  void HoldAWriter(Result* blocker, int rows = 1) {
    db_.SetGateOpen(false);
    ASSERT_TRUE(Submit("blocker", Rows("blocker", rows), blocker).ok());
    ASSERT_TRUE(Eventually([&] { return db_.writes_waiting() == 1; }));
  }

  MemoryDatabase db_;
  MemoryDedupeStore store_;
  std::unique_ptr<IngestPipeline> pipeline_;
};

TEST_F(IngestPipelineTest, UnderLoadASmallBatchIsFlushedAfterTheInterval) {
  PipelineOptions o;
  o.flush_readings = 1000;
  o.flush_interval = absl::Milliseconds(50);
  o.load_threshold = 0;  // always under load: the linger applies
  Start(o);
  Result r;
  const absl::Time start = absl::Now();
  ASSERT_TRUE(Submit("k", Rows("s", 3), &r).ok());
  ASSERT_TRUE(r.Wait());
  EXPECT_GE(absl::Now() - start, o.flush_interval) << "it waited for company";
  EXPECT_EQ(r.outcome.accepted, 3u);
}

// Adaptive group commit: a writer with no other writer busy takes a lone
// batch at once, whatever the linger; batches that arrive while it writes
// become the next, larger group.
TEST_F(IngestPipelineTest, GroupsGrowOnlyWhileTheWriterIsBusy) {
  PipelineOptions o;
  o.flushers = 1;
  o.flush_readings = 1'000'000;
  o.flush_interval = absl::Hours(1);  // a linger would show
  o.load_threshold = 2;  // never under load
  Start(o);
  db_.SetGateOpen(false);
  Result first;
  ASSERT_TRUE(Submit("k0", Rows("s0", 10), &first).ok());
  ASSERT_TRUE(Eventually([&] { return db_.writes_waiting() == 1; }))
      << "a lone batch is written without waiting for company";
  Result later[9];
  for (int i = 0; i < 9; ++i) {
    ASSERT_TRUE(Submit("k" + std::to_string(i + 1), Rows("s" + std::to_string(i + 1), 10),
                       &later[i]).ok());
  }
  db_.SetGateOpen(true);
  ASSERT_TRUE(first.Wait());
  for (Result& r : later) ASSERT_TRUE(r.Wait());
  EXPECT_EQ(db_.groups_written(), 2);
  EXPECT_EQ(db_.largest_group(), 90u);  // everything that queued meanwhile
}

// Under load a small group waits for company rather than going out as a
// one-batch transaction.
TEST_F(IngestPipelineTest, UnderLoadAGroupWaitsForCompany) {
  PipelineOptions o;
  o.flushers = 2;
  o.flush_readings = 100;
  o.flush_interval = absl::Seconds(30);  // only the size trigger can fire
  o.load_threshold = 0;                   // always under load
  Start(o);
  Result blocker;
  HoldAWriter(&blocker, 100);  // a full group: written at once
  Result results[10];
  for (int i = 0; i < 9; ++i) {
    ASSERT_TRUE(Submit("k" + std::to_string(i), Rows("s" + std::to_string(i), 10),
                       &results[i]).ok());
  }
  EXPECT_EQ(db_.writes_waiting(), 1) << "90 readings: the second writer still waits";
  ASSERT_TRUE(Submit("k9", Rows("s9", 10), &results[9]).ok());
  ASSERT_TRUE(Eventually([&] { return db_.writes_waiting() == 2; }))
      << "100 readings: a full group";
  db_.SetGateOpen(true);
  ASSERT_TRUE(blocker.Wait());
  for (Result& r : results) ASSERT_TRUE(r.Wait());
  EXPECT_EQ(db_.groups_written(), 2);
  EXPECT_EQ(db_.largest_group(), 100u);
}

TEST_F(IngestPipelineTest, CommittedKeyIsAnsweredAsDuplicateWithoutWriting) {
  Start(PipelineOptions());
  Result first, second;
  ASSERT_TRUE(Submit("k", Rows("s", 5), &first).ok());
  ASSERT_TRUE(first.Wait());
  EXPECT_EQ(store_.Value("k"), "c:5");
  int64_t groups = db_.groups_written();
  ASSERT_TRUE(Submit("k", Rows("s", 5), &second).ok());
  ASSERT_TRUE(second.Wait());
  EXPECT_TRUE(second.outcome.status.ok());
  EXPECT_EQ(second.outcome.accepted, 0u);
  EXPECT_EQ(second.outcome.duplicates, 5u);
  EXPECT_EQ(db_.groups_written(), groups);
}

TEST_F(IngestPipelineTest, ConcurrentRedeliveryWaitsForTheOriginal) {
  Start(PipelineOptions());
  db_.SetGateOpen(false);
  Result first, second;
  ASSERT_TRUE(Submit("k", Rows("s", 4), &first).ok());
  ASSERT_TRUE(Submit("k", Rows("s", 4), &second).ok());
  EXPECT_FALSE(second.done.HasBeenNotified());
  db_.SetGateOpen(true);
  ASSERT_TRUE(first.Wait() && second.Wait());
  EXPECT_EQ(first.outcome.accepted, 4u);
  EXPECT_EQ(second.outcome.accepted, 0u);
  EXPECT_EQ(second.outcome.duplicates, 4u);
  EXPECT_EQ(db_.rows(), 4u);
}

TEST_F(IngestPipelineTest, FullQueueRefusesUntilSpaceFrees) {
  PipelineOptions o;
  o.max_queued_readings = 100;
  Start(o);
  db_.SetGateOpen(false);
  Result a, b;
  ASSERT_TRUE(Submit("a", Rows("s", 60), &a).ok());
  std::vector<ReadingRow> rows = Rows("t", 60);
  absl::Status s = pipeline_->Submit("b", std::move(rows), b.Callback());
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(rows.size(), 60u) << "a refused batch must be left intact";
  EXPECT_EQ(pipeline_->queued_readings(), 60u);

  Notification space;
  pipeline_->NotifyWhenSpace([&space] { space.Notify(); });
  EXPECT_FALSE(space.HasBeenNotified());
  db_.SetGateOpen(true);
  ASSERT_TRUE(space.WaitForNotificationWithTimeout(absl::Seconds(10)));
  ASSERT_TRUE(pipeline_->Submit("b", std::move(rows), b.Callback()).ok());
  ASSERT_TRUE(a.Wait() && b.Wait());
  EXPECT_EQ(db_.rows(), 120u);
  EXPECT_EQ(pipeline_->queued_readings(), 0u);
}

TEST_F(IngestPipelineTest, TheQueueIsBoundedInBytesToo) {
  // Few readings, much metadata: the byte bound refuses what the reading
  // bound would let in.
  auto fat = [](const std::string& sensor) {
    std::vector<ReadingRow> rows = Rows(sensor, 10);
    for (ReadingRow& r : rows) r.metadata_json = std::string(4096, 'm');
    return rows;
  };
  PipelineOptions o;
  o.max_queued_readings = 1'000'000;
  o.max_queued_bytes = 64 * 1024;
  Start(o);
  db_.SetGateOpen(false);
  Result a, b;
  ASSERT_TRUE(Submit("a", fat("s"), &a).ok());  // ~41 KiB: fits
  EXPECT_GT(QueuedBytes(fat("x")), 40u * 1024);
  std::vector<ReadingRow> rows = fat("t");
  EXPECT_EQ(pipeline_->Submit("b", std::move(rows), b.Callback()).code(),
            absl::StatusCode::kResourceExhausted);
  db_.SetGateOpen(true);
  ASSERT_TRUE(a.Wait());
  ASSERT_TRUE(Submit("b", std::move(rows), &b).ok());  // space again
  ASSERT_TRUE(b.Wait());
  EXPECT_EQ(db_.rows(), 20u);
}

TEST_F(IngestPipelineTest, FailedWriteReleasesTheKeySoARetryIsStored) {
  Start(PipelineOptions());
  db_.FailNextWrites(1, absl::UnavailableError("database restarting"));
  Result first, retry;
  ASSERT_TRUE(Submit("k", Rows("s", 3), &first).ok());
  ASSERT_TRUE(first.Wait());
  EXPECT_EQ(first.outcome.status.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(store_.Value("k"), "");
  ASSERT_TRUE(Submit("k", Rows("s", 3), &retry).ok());
  ASSERT_TRUE(retry.Wait());
  EXPECT_EQ(retry.outcome.accepted, 3u);
  EXPECT_EQ(db_.rows(), 3u);
}

TEST_F(IngestPipelineTest, WithoutTheStoreTheDatabaseKeyDeduplicates) {
  Start(PipelineOptions());
  store_.SetAvailable(false);
  Result first, second;
  ASSERT_TRUE(Submit("k", Rows("s", 6), &first).ok());
  ASSERT_TRUE(first.Wait());
  ASSERT_TRUE(Submit("k", Rows("s", 6), &second).ok());
  ASSERT_TRUE(second.Wait());
  EXPECT_EQ(first.outcome.accepted, 6u);
  EXPECT_EQ(second.outcome.accepted, 0u);
  EXPECT_EQ(second.outcome.duplicates, 6u);
  EXPECT_EQ(db_.rows(), 6u);
}

TEST_F(IngestPipelineTest, ShutdownWritesAndAcknowledgesEverythingQueued) {
  PipelineOptions o;
  o.flush_readings = 1'000'000;
  o.flush_interval = absl::Hours(1);
  o.load_threshold = 0;  // the batch lingers until the shutdown
  Start(o);
  Result r;
  ASSERT_TRUE(Submit("k", Rows("s", 7), &r).ok());
  EXPECT_EQ(db_.groups_written(), 0);
  pipeline_->Shutdown();
  ASSERT_TRUE(r.done.HasBeenNotified());
  EXPECT_EQ(r.outcome.accepted, 7u);
  Result late;
  EXPECT_EQ(Submit("late", Rows("s", 1, 100), &late).code(),
            absl::StatusCode::kUnavailable);
}

TEST_F(IngestPipelineTest, SubmitDoesNotWaitForAStalledStore) {
  // Submit runs inside gRPC reactions: it must return while the store
  // hangs, and the claim happens on the flusher.
  Start(PipelineOptions());
  store_.SetGateOpen(false);
  Result r;
  ASSERT_TRUE(Submit("k", Rows("s", 3), &r).ok());  // returns: no claim in Submit
  ASSERT_TRUE(Eventually([&] { return store_.claims_waiting() == 1; }))
      << "the flusher asks the store";
  EXPECT_FALSE(r.done.HasBeenNotified());
  store_.SetGateOpen(true);
  ASSERT_TRUE(r.Wait());
  EXPECT_EQ(r.outcome.accepted, 3u);
  EXPECT_EQ(store_.Value("k"), "c:3");
}

TEST_F(IngestPipelineTest, ClaimsAWholeGroupInOneRoundTrip) {
  PipelineOptions o;
  o.flushers = 1;
  Start(o);
  Result blocker;
  HoldAWriter(&blocker);
  Result results[10];
  for (int i = 0; i < 10; ++i) {
    ASSERT_TRUE(Submit("k" + std::to_string(i), Rows("s" + std::to_string(i), 10),
                       &results[i]).ok());
  }
  db_.SetGateOpen(true);
  ASSERT_TRUE(blocker.Wait());
  for (Result& r : results) ASSERT_TRUE(r.Wait());
  EXPECT_EQ(db_.groups_written(), 2);
  EXPECT_EQ(db_.largest_group(), 100u);
  EXPECT_EQ(store_.claim_round_trips(), 2) << "one for the blocker, one for the ten";
}

TEST_F(IngestPipelineTest, CommittedKeysInAGroupAreAnsweredAndTheRestWritten) {
  PipelineOptions o;
  o.flushers = 1;
  Start(o);
  Result first;
  ASSERT_TRUE(Submit("old", Rows("s", 10), &first).ok());
  ASSERT_TRUE(first.Wait());
  Result blocker;
  HoldAWriter(&blocker);  // the next two queue up as one group
  Result resend, fresh;
  ASSERT_TRUE(Submit("old", Rows("s", 10), &resend).ok());
  ASSERT_TRUE(Submit("new", Rows("t", 10), &fresh).ok());
  db_.SetGateOpen(true);
  ASSERT_TRUE(blocker.Wait() && resend.Wait() && fresh.Wait());
  EXPECT_EQ(resend.outcome.duplicates, 10u);
  EXPECT_EQ(resend.outcome.accepted, 0u);
  EXPECT_EQ(fresh.outcome.accepted, 10u);
  EXPECT_EQ(db_.rows(), 21u);
  EXPECT_EQ(db_.groups_written(), 3) << "first, the blocker, then one group";
  EXPECT_EQ(db_.largest_group(), 10u) << "the resend was answered without a write";
}

TEST_F(IngestPipelineTest, ACommittedKeyFreesSpaceForAParkedCaller) {
  // The resend is answered from the store without a write; the space it
  // held must still wake whoever waits for space.
  PipelineOptions o;
  o.max_queued_readings = 5;
  Start(o);
  Result first;
  ASSERT_TRUE(Submit("k", Rows("s", 5), &first).ok());
  ASSERT_TRUE(first.Wait());
  store_.SetGateOpen(false);  // hold the resend before its claim
  Result resend;
  ASSERT_TRUE(Submit("k", Rows("s", 5), &resend).ok());
  std::vector<ReadingRow> rows = Rows("t", 5);
  Result other;
  ASSERT_EQ(pipeline_->Submit("other", std::move(rows), other.Callback()).code(),
            absl::StatusCode::kResourceExhausted);
  Notification space;
  pipeline_->NotifyWhenSpace([&space] { space.Notify(); });
  EXPECT_FALSE(space.HasBeenNotified());
  store_.SetGateOpen(true);
  ASSERT_TRUE(space.WaitForNotificationWithTimeout(absl::Seconds(10)));
  ASSERT_TRUE(resend.Wait());
  EXPECT_EQ(resend.outcome.duplicates, 5u);
  EXPECT_EQ(pipeline_->queued_readings(), 0u);
}

TEST_F(IngestPipelineTest, EmptyBatchIsAcknowledgedAtOnce) {
  Start(PipelineOptions());
  Result r;
  ASSERT_TRUE(Submit("k", {}, &r).ok());
  EXPECT_TRUE(r.done.HasBeenNotified());
  EXPECT_EQ(r.outcome.accepted, 0u);
}

}  // namespace
}  // namespace telemetry::ingest
