// Remembers which batch idempotency keys are in flight or committed, so a
// retried batch is answered without touching the database.
//
// The store is an optimisation, never the last line of defence: when it is
// unreachable (kUnavailable) or a key is in flight in another gateway, the
// caller writes through the database's primary key instead, which cannot
// store a reading twice.
#ifndef TELEMETRY_STORAGE_DEDUPE_STORE_H_
#define TELEMETRY_STORAGE_DEDUPE_STORE_H_

#include <cstdint>
#include <string>
#include <vector>

namespace telemetry {

class DedupeStore {
 public:
  enum class ClaimOutcome {
    kClaimed,      // key was free; it is now in flight under our token
    kCommitted,    // a delivery of this batch already committed
    kInFlight,     // another delivery holds the key right now
    kUnavailable,  // the store could not be asked
  };
  struct Claim {
    ClaimOutcome outcome = ClaimOutcome::kUnavailable;
    // For kCommitted: how many readings the committing delivery stored.
    uint32_t committed_accepted = 0;
  };

  virtual ~DedupeStore() = default;

  struct ClaimRequest {
    std::string key;
    std::string token;  // identifies this delivery
  };
  // Atomically claims each key for its delivery's token unless it is
  // already claimed or committed; one answer per request, in order. A whole
  // commit group is asked in one round trip. The keys are distinct.
  // Thread-safe.
  virtual std::vector<Claim> TryClaimAll(const std::vector<ClaimRequest>& requests) = 0;

  // One key (tests and tools).
  Claim TryClaim(const std::string& key, const std::string& token) {
    return TryClaimAll({ClaimRequest{key, token}}).front();
  }

  struct Completion {
    std::string key;
    std::string token;
    bool committed = false;      // false: release so a retry can proceed
    uint32_t accepted = 0;       // for committed keys
  };
  // Marks keys committed (kept for the committed TTL) or releases them (only
  // if still held by the same token). Best effort; returns false when the
  // store could not be reached. Thread-safe.
  virtual bool Complete(const std::vector<Completion>& completions) = 0;
};

}  // namespace telemetry

#endif  // TELEMETRY_STORAGE_DEDUPE_STORE_H_
