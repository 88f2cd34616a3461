#include "server/ingest/ingest_pipeline.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "server/common/log.h"
#include "storage/util/mutex.h"

namespace telemetry::ingest {

namespace {

// Heap bytes of a string's buffer (none while it fits the small-string
// buffer inside the object).
size_t HeapBytes(const std::string& s) {
  return s.capacity() > std::string().capacity() ? s.capacity() + 1 : 0;
}
size_t HeapBytes(const std::optional<std::string>& s) { return s ? HeapBytes(*s) : 0; }

}  // namespace

size_t QueuedBytes(const std::vector<ReadingRow>& rows) {
  size_t bytes = rows.capacity() * sizeof(ReadingRow);
  for (const ReadingRow& r : rows) {
    bytes += HeapBytes(r.sensor_id) + HeapBytes(r.sensor_type) + HeapBytes(r.unit) +
             HeapBytes(r.metadata_json);
  }
  return bytes;
}

IngestPipeline::IngestPipeline(PipelineOptions options, DedupeStore* dedupe,
                               SinkFactory sink_factory,
                               IngestMetrics* metrics)
    : options_(std::move(options)),
      dedupe_(dedupe),
      metrics_(metrics),
      flushers_count_(std::max(options_.flushers, 1)),
      token_prefix_(absl::StrCat(getpid(), ".",
                                 absl::ToUnixMicros(absl::Now()), ".")) {
  if (metrics_) {
    metrics_->queue_capacity_readings.Set(
        static_cast<double>(options_.max_queued_readings));
    metrics_->queue_capacity_bytes.Set(static_cast<double>(options_.max_queued_bytes));
  }
  const int n = flushers_count_;
  for (int i = 0; i < n; ++i) sinks_.push_back(sink_factory());
  for (int i = 0; i < n; ++i) {
    flushers_.emplace_back([this, i] { FlusherLoop(sinks_[static_cast<size_t>(i)].get()); });
  }
}

IngestPipeline::~IngestPipeline() { Shutdown(); }

void IngestPipeline::Shutdown() {
  std::vector<absl::AnyInvocable<void() &&>> waiters;
  {
    MutexLock lock(&mu_);
    shutting_down_ = true;
    waiters.swap(space_waiters_);
  }
  for (auto& w : waiters) std::move(w)();
  for (std::thread& t : flushers_) {
    if (t.joinable()) t.join();
  }
}

size_t IngestPipeline::queued_readings() const {
  MutexLock lock(&mu_);
  return reserved_rows_;
}


void IngestPipeline::NotifyWhenSpace(absl::AnyInvocable<void() &&> callback) {
  {
    MutexLock lock(&mu_);
    if (!shutting_down_ && reserved_rows_ > 0) {
      space_waiters_.push_back(std::move(callback));
      return;
    }
  }
  std::move(callback)();
}

void IngestPipeline::Finish(
    std::vector<std::pair<Callback, BatchOutcome>>& calls, absl::Time arrived,
    Callback done, BatchOutcome outcome) {
  if (metrics_) {
    metrics_->ack_latency_seconds.Observe(
        absl::ToDoubleSeconds(absl::Now() - arrived));
    metrics_->readings_accepted.Increment(outcome.accepted);
    metrics_->readings_duplicate.Increment(outcome.duplicates);
    if (!outcome.status.ok()) {
      metrics_->batches_failed.Increment();
    } else if (outcome.accepted == 0 && outcome.duplicates > 0) {
      metrics_->batches_duplicate.Increment();
    } else {
      metrics_->batches_committed.Increment();
    }
  }
  calls.emplace_back(std::move(done), std::move(outcome));
}

void IngestPipeline::SetQueueGauges() {
  metrics_->queue_readings.Set(static_cast<double>(reserved_rows_));
  metrics_->queue_bytes.Set(static_cast<double>(reserved_bytes_));
}

void IngestPipeline::NoteDedupeHealth(bool up) {
  if (metrics_) metrics_->redis_up.Set(up ? 1 : 0);
  int now = up ? 1 : 0;
  int before = dedupe_up_.exchange(now, std::memory_order_relaxed);
  if (before == now) return;
  if (!up) {
    Log(LogLevel::kWarning,
        "dedupe store unreachable; deduplicating in the database until it "
        "returns");
  } else if (before == 0) {
    Log(LogLevel::kInfo, "dedupe store reachable again");
  }
}

absl::Status IngestPipeline::Submit(const std::string& key,
                                    std::vector<ReadingRow>&& rows,
                                    Callback&& done) {
  const absl::Time arrived = absl::Now();
  const uint32_t n = static_cast<uint32_t>(rows.size());
  if (n == 0) {
    std::move(done)(BatchOutcome{});
    return absl::OkStatus();
  }
  const size_t bytes = QueuedBytes(rows);
  std::string token =
      absl::StrCat(token_prefix_, next_token_.fetch_add(1, std::memory_order_relaxed));
  MutexLock lock(&mu_);
  if (shutting_down_) {
    return absl::UnavailableError("the gateway is shutting down");
  }
  auto it = in_flight_.find(key);
  if (it != in_flight_.end()) {
    it->second.push_back(Waiter{n, arrived, std::move(done)});
    return absl::OkStatus();
  }
  // An empty queue takes any batch, so one larger than the bound still
  // makes progress.
  if (reserved_rows_ > 0 && (reserved_rows_ + n > options_.max_queued_readings ||
                             reserved_bytes_ + bytes > options_.max_queued_bytes)) {
    if (metrics_) metrics_->batches_overloaded.Increment();
    return absl::ResourceExhaustedError(absl::StrCat(
        "the gateway's write queue is full (", reserved_rows_, " readings, ",
        reserved_bytes_ >> 20, " MiB waiting for the database); retry with backoff"));
  }
  reserved_rows_ += n;
  reserved_bytes_ += bytes;
  if (metrics_) SetQueueGauges();
  in_flight_.emplace(key, std::vector<Waiter>());
  Pending p;
  p.key = key;
  p.token = std::move(token);
  p.rows = std::move(rows);
  p.bytes = bytes;
  p.arrived = arrived;
  p.done = std::move(done);
  queue_rows_ += n;
  queue_.push_back(std::move(p));
  return absl::OkStatus();
}

namespace {
// Time constant of the writers' load average: a few writes at light load.
constexpr absl::Duration kLoadTimeConstant = absl::Milliseconds(50);
}  // namespace

double IngestPipeline::BusyAverage(absl::Time now) const {
  // Time-weighted average of the writing flushers: their count has been
  // constant since writing_changed_, so the average decays towards it.
  const double writing = static_cast<double>(writing_);
  const double dt = std::max(0.0, absl::ToDoubleSeconds(now - writing_changed_));
  return writing + (writing_average_ - writing) *
                       std::exp(-dt / absl::ToDoubleSeconds(kLoadTimeConstant));
}

void IngestPipeline::ChangeWriting(int delta) {
  const absl::Time now = absl::Now();
  writing_average_ = BusyAverage(now);
  writing_changed_ = now;
  writing_ += delta;
  ++writing_changes_;
  if (metrics_) metrics_->busy_writers.Set(static_cast<double>(writing_));
}

absl::Time IngestPipeline::LoadEnds(absl::Time now) const {
  const double threshold = options_.load_threshold * flushers_count_;
  const double average = BusyAverage(now);
  if (average < threshold) return now;
  const double writing = static_cast<double>(writing_);
  if (writing >= threshold) return absl::InfiniteFuture();  // not while this lasts
  // average(now + t) = writing + (average - writing) * exp(-t / tau)
  return now + kLoadTimeConstant * std::log((average - writing) / (threshold - writing));
}

bool IngestPipeline::GroupFull() const {
  return shutting_down_ || queue_rows_ >= options_.flush_readings;
}

void IngestPipeline::TakeGroup(std::vector<Pending>& group) {
  size_t rows = 0;
  while (!queue_.empty() &&
         (group.empty() || rows + queue_.front().rows.size() <= options_.max_group_readings)) {
    rows += queue_.front().rows.size();
    group.push_back(std::move(queue_.front()));
    queue_.pop_front();
  }
  queue_rows_ -= rows;
}

void IngestPipeline::FlusherLoop(TelemetrySink* sink) {
  std::vector<Pending> group;
  bool wrote = false;
  while (true) {
    {
      MutexLock lock(&mu_);
      if (wrote) ChangeWriting(-1);
      while (true) {
        if (queue_.empty()) {
          if (shutting_down_) return;
          auto has_work = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
            return !queue_.empty() || shutting_down_;
          };
          mu_.Await(absl::Condition(&has_work));
          continue;
        }
        if (GroupFull()) break;
        // Under load, wait for company: until the group is full, its
        // oldest batch has waited flush_interval, or the load has decayed
        // (re-reckoned whenever a writer starts or finishes). Conditions
        // read only state under mu_; the clock is read here.
        const absl::Time now = absl::Now();
        const absl::Time deadline = std::min(queue_.front().arrived + options_.flush_interval,
                                             LoadEnds(now));
        if (now >= deadline) break;
        const uint64_t changes = writing_changes_;
        auto woken = [this, changes]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
          return GroupFull() || writing_changes_ != changes;
        };
        mu_.AwaitWithDeadline(absl::Condition(&woken), deadline);
      }
      TakeGroup(group);
      ChangeWriting(+1);
      wrote = true;
    }
    if (metrics_) {
      const absl::Time taken = absl::Now();
      for (const Pending& p : group) {
        metrics_->queue_wait_seconds.Observe(absl::ToDoubleSeconds(taken - p.arrived));
      }
    }
    if (dedupe_ != nullptr) ClaimGroup(group);
    if (!group.empty()) WriteGroup(sink, group);
    group.clear();
  }
}

void IngestPipeline::ClaimGroup(std::vector<Pending>& group) {
  std::vector<DedupeStore::ClaimRequest> requests;
  requests.reserve(group.size());
  for (const Pending& p : group) requests.push_back({p.key, p.token});
  const absl::Time start = absl::Now();
  std::vector<DedupeStore::Claim> claims = dedupe_->TryClaimAll(requests);
  if (metrics_) metrics_->claim_seconds.Observe(absl::ToDoubleSeconds(absl::Now() - start));
  size_t unavailable = 0;
  std::vector<Pending> to_write, committed;
  std::vector<BatchOutcome> committed_outcomes;
  for (size_t i = 0; i < group.size(); ++i) {
    Pending& p = group[i];
    switch (claims[i].outcome) {
      case DedupeStore::ClaimOutcome::kClaimed:
        p.claimed = true;
        break;
      case DedupeStore::ClaimOutcome::kCommitted:
        committed_outcomes.push_back(
            BatchOutcome{absl::OkStatus(), 0, static_cast<uint32_t>(p.rows.size())});
        committed.push_back(std::move(p));
        continue;
      case DedupeStore::ClaimOutcome::kInFlight:
        p.may_contain_duplicates = true;
        if (metrics_) metrics_->dedupe_db_fallback_batches.Increment();
        break;
      case DedupeStore::ClaimOutcome::kUnavailable:
        ++unavailable;
        p.may_contain_duplicates = true;
        if (metrics_) metrics_->dedupe_db_fallback_batches.Increment();
        break;
    }
    to_write.push_back(std::move(p));
  }
  // One error per batch whose claim failed, as the metric has always counted.
  if (unavailable > 0 && metrics_) metrics_->redis_errors.Increment(static_cast<double>(unavailable));
  NoteDedupeHealth(unavailable == 0);  // the group is never empty
  group = std::move(to_write);
  if (!committed.empty()) Release(committed, std::move(committed_outcomes));
}

void IngestPipeline::WriteGroup(TelemetrySink* sink,
                                std::vector<Pending>& group) {
  std::vector<const std::vector<ReadingRow>*> batches;
  bool may_contain_duplicates = false;
  for (const Pending& p : group) {
    batches.push_back(&p.rows);
    may_contain_duplicates |= p.may_contain_duplicates;
  }
  absl::StatusOr<std::vector<TelemetrySink::BatchResult>> results =
      sink->WriteBatches(batches, may_contain_duplicates);

  if (dedupe_ != nullptr) {
    std::vector<DedupeStore::Completion> completions;
    for (size_t i = 0; i < group.size(); ++i) {
      if (!group[i].claimed) continue;
      DedupeStore::Completion c;
      c.key = group[i].key;
      c.token = group[i].token;
      c.committed = results.ok();
      if (results.ok()) c.accepted = (*results)[i].inserted;
      completions.push_back(std::move(c));
    }
    if (!completions.empty() && !dedupe_->Complete(completions)) {
      if (metrics_) metrics_->redis_errors.Increment();
      NoteDedupeHealth(false);
    }
  }

  std::vector<BatchOutcome> outcomes(group.size());
  for (size_t i = 0; i < group.size(); ++i) {
    if (results.ok()) {
      outcomes[i].accepted = (*results)[i].inserted;
      outcomes[i].duplicates = (*results)[i].duplicates;
    } else {
      outcomes[i].status = results.status();
    }
  }
  Release(group, std::move(outcomes));
}

void IngestPipeline::Release(std::vector<Pending>& batches,
                             std::vector<BatchOutcome> outcomes) {
  std::vector<std::pair<Callback, BatchOutcome>> calls;
  std::vector<absl::AnyInvocable<void() &&>> space;
  std::vector<std::vector<Waiter>> waiters(batches.size());
  {
    MutexLock lock(&mu_);
    size_t rows = 0, bytes = 0;
    for (size_t i = 0; i < batches.size(); ++i) {
      rows += batches[i].rows.size();
      bytes += batches[i].bytes;
      auto node = in_flight_.extract(batches[i].key);
      if (!node.empty()) waiters[i] = std::move(node.mapped());
    }
    reserved_rows_ -= rows;
    reserved_bytes_ -= bytes;
    if (metrics_) SetQueueGauges();
    // Space freed: a parked stream may be waiting for exactly this (with
    // nothing else queued, no later release would wake it).
    space.swap(space_waiters_);
  }
  for (size_t i = 0; i < batches.size(); ++i) {
    const absl::Status status = outcomes[i].status;
    Finish(calls, batches[i].arrived, std::move(batches[i].done), std::move(outcomes[i]));
    for (Waiter& w : waiters[i]) {
      // A local re-delivery: a duplicate of what the original stored, or
      // refused the same way.
      BatchOutcome dup;
      if (status.ok()) {
        dup.duplicates = w.readings;
      } else {
        dup.status = status;
      }
      Finish(calls, w.arrived, std::move(w.done), dup);
    }
  }
  for (auto& [cb, outcome] : calls) std::move(cb)(outcome);
  for (auto& cb : space) std::move(cb)();
}

}  // namespace telemetry::ingest
