// In-memory TelemetrySink and DedupeStore, for unit tests of the pipeline.
// They follow the real contracts (primary-key dedupe, claim/commit/release)
// and add knobs the tests need: injected failures and a gate that holds
// writes until released.
#ifndef TELEMETRY_STORAGE_MEMORY_MEMORY_SINK_H_
#define TELEMETRY_STORAGE_MEMORY_MEMORY_SINK_H_

#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "storage/dedupe_store.h"
#include "storage/telemetry_sink.h"
#include "storage/util/mutex.h"

namespace telemetry {

// Shared state of every MemorySink of one test (one "database").
class MemoryDatabase {
 public:
  size_t rows() const;
  int64_t groups_written() const;
  size_t largest_group() const;
  // The next `n` writes fail with `status`.
  void FailNextWrites(int n, absl::Status status);
  // While closed, writes block (simulates a slow database).
  void SetGateOpen(bool open);
  int64_t writes_waiting() const;

 private:
  friend class MemorySink;
  mutable Mutex mu_;
  std::set<std::pair<std::string, int64_t>> keys_ ABSL_GUARDED_BY(mu_);
  int64_t groups_ ABSL_GUARDED_BY(mu_) = 0;
  size_t largest_group_ ABSL_GUARDED_BY(mu_) = 0;
  int fail_next_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Status fail_status_ ABSL_GUARDED_BY(mu_);
  bool gate_open_ ABSL_GUARDED_BY(mu_) = true;
  int64_t waiting_ ABSL_GUARDED_BY(mu_) = 0;
};

class MemorySink : public TelemetrySink {
 public:
  explicit MemorySink(MemoryDatabase* db) : db_(db) {}
  absl::StatusOr<std::vector<BatchResult>> WriteBatches(
      absl::Span<const std::vector<ReadingRow>* const> batches,
      bool may_contain_duplicates) override;

 private:
  MemoryDatabase* db_;
};

class MemoryDedupeStore : public DedupeStore {
 public:
  std::vector<Claim> TryClaimAll(const std::vector<ClaimRequest>& requests) override;
  bool Complete(const std::vector<Completion>& completions) override;
  void SetAvailable(bool available);
  // While closed, TryClaimAll waits (a slow or stalled store).
  void SetGateOpen(bool open);
  // TryClaimAll calls (round trips) so far, and those waiting at the gate.
  int64_t claim_round_trips() const;
  int64_t claims_waiting() const;
  // Current value of `key` ("p:<token>", "c:<n>" or "" when absent).
  std::string Value(const std::string& key) const;

 private:
  mutable Mutex mu_;
  std::map<std::string, std::string> values_ ABSL_GUARDED_BY(mu_);
  bool available_ ABSL_GUARDED_BY(mu_) = true;
  bool gate_open_ ABSL_GUARDED_BY(mu_) = true;
  int64_t round_trips_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t waiting_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace telemetry

#endif  // TELEMETRY_STORAGE_MEMORY_MEMORY_SINK_H_
