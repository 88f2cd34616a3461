#include "storage/memory/memory_sink.h"

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "storage/util/mutex.h"

namespace telemetry {

size_t MemoryDatabase::rows() const {
  MutexLock lock(&mu_);
  return keys_.size();
}

int64_t MemoryDatabase::groups_written() const {
  MutexLock lock(&mu_);
  return groups_;
}

size_t MemoryDatabase::largest_group() const {
  MutexLock lock(&mu_);
  return largest_group_;
}

void MemoryDatabase::FailNextWrites(int n, absl::Status status) {
  MutexLock lock(&mu_);
  fail_next_ = n;
  fail_status_ = std::move(status);
}

void MemoryDatabase::SetGateOpen(bool open) {
  MutexLock lock(&mu_);
  gate_open_ = open;
}

int64_t MemoryDatabase::writes_waiting() const {
  MutexLock lock(&mu_);
  return waiting_;
}

absl::StatusOr<std::vector<TelemetrySink::BatchResult>>
MemorySink::WriteBatches(
    absl::Span<const std::vector<ReadingRow>* const> batches,
    bool /*may_contain_duplicates*/) {
  MutexLock lock(&db_->mu_);
  ++db_->waiting_;
  db_->mu_.Await(absl::Condition(&db_->gate_open_));
  --db_->waiting_;
  if (db_->fail_next_ > 0) {
    --db_->fail_next_;
    return db_->fail_status_;
  }
  std::vector<BatchResult> results(batches.size());
  size_t rows = 0;
  for (size_t b = 0; b < batches.size(); ++b) {
    for (const ReadingRow& r : *batches[b]) {
      ++rows;
      if (db_->keys_.emplace(r.sensor_id, r.timestamp_us).second) {
        ++results[b].inserted;
      } else {
        ++results[b].duplicates;
      }
    }
  }
  ++db_->groups_;
  db_->largest_group_ = std::max(db_->largest_group_, rows);
  return results;
}

std::vector<DedupeStore::Claim> MemoryDedupeStore::TryClaimAll(
    const std::vector<ClaimRequest>& requests) {
  MutexLock lock(&mu_);
  ++round_trips_;
  ++waiting_;
  mu_.Await(absl::Condition(&gate_open_));
  --waiting_;
  std::vector<Claim> claims(requests.size());
  if (!available_) return claims;
  for (size_t i = 0; i < requests.size(); ++i) {
    Claim& c = claims[i];
    auto [it, inserted] = values_.emplace(requests[i].key, "p:" + requests[i].token);
    if (inserted || it->second == "p:" + requests[i].token) {
      c.outcome = ClaimOutcome::kClaimed;
    } else if (absl::StartsWith(it->second, "c:")) {
      c.outcome = ClaimOutcome::kCommitted;
      (void)absl::SimpleAtoi(it->second.substr(2), &c.committed_accepted);
    } else {
      c.outcome = ClaimOutcome::kInFlight;
    }
  }
  return claims;
}

void MemoryDedupeStore::SetGateOpen(bool open) {
  MutexLock lock(&mu_);
  gate_open_ = open;
}

int64_t MemoryDedupeStore::claim_round_trips() const {
  MutexLock lock(&mu_);
  return round_trips_;
}

int64_t MemoryDedupeStore::claims_waiting() const {
  MutexLock lock(&mu_);
  return waiting_;
}

bool MemoryDedupeStore::Complete(const std::vector<Completion>& completions) {
  MutexLock lock(&mu_);
  if (!available_) return false;
  for (const Completion& c : completions) {
    if (c.committed) {
      values_[c.key] = absl::StrCat("c:", c.accepted);
    } else if (values_[c.key] == "p:" + c.token) {
      values_.erase(c.key);
    }
  }
  return true;
}

void MemoryDedupeStore::SetAvailable(bool available) {
  MutexLock lock(&mu_);
  available_ = available;
}

std::string MemoryDedupeStore::Value(const std::string& key) const {
  MutexLock lock(&mu_);
  auto it = values_.find(key);
  return it == values_.end() ? "" : it->second;
}

}  // namespace telemetry
