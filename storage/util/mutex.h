// telemetry::Mutex: absl::Mutex that ThreadSanitizer can see.
//
// Debian's abseil is not built with ThreadSanitizer, so absl::Mutex's own
// annotations (compiled into libabsl_synchronization) are absent and TSan
// sees no happens-before edge through it: every field it guards would look
// racy. In builds with TELEMETRY_TSAN (deploy/dev/test.sh's build-tsan)
// this class is a std::mutex with a condition variable, which TSan
// intercepts; Await re-checks its condition after every Unlock, as
// absl::Mutex does. Everywhere else it is exactly absl::Mutex. It carries
// the same lock annotations, so clang's -Wthread-safety checks
// ABSL_GUARDED_BY(mu_) fields against it.
//
// It lives in storage/ (the lowest layer) so that every module can use it;
// header only.
//
// Thread-safe, like absl::Mutex.
#ifndef TELEMETRY_STORAGE_UTIL_MUTEX_H_
#define TELEMETRY_STORAGE_UTIL_MUTEX_H_

#include <cstdlib>
#include <string_view>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

#if defined(TELEMETRY_TSAN)
#include <condition_variable>
#include <mutex>
#endif

namespace telemetry {

// Debian's abseil is built without NDEBUG, so by default every
// absl::Mutex::Lock also records the acquisition in a process-wide deadlock
// graph, under one global lock that every thread of the process contends
// for (measured: the gateway's CPU per one-reading batch fell from 23 to
// 17 us without it). The binaries call this first thing in main(). Tests
// keep the detection, which reports a lock-order inversion the moment one
// happens: the test binaries never call this, and they set
// TELEMETRY_MUTEX_DEADLOCK_DETECTION=on for the binaries they start.
inline void DisableMutexDeadlockDetection() {
  const char* keep = std::getenv("TELEMETRY_MUTEX_DEADLOCK_DETECTION");
  if (keep != nullptr && std::string_view(keep) == "on") return;
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
}

#if !defined(TELEMETRY_TSAN)

class ABSL_LOCKABLE Mutex {
 public:
  Mutex() = default;
  Mutex(const Mutex&) = delete;
  Mutex& operator=(const Mutex&) = delete;

  void Lock() ABSL_EXCLUSIVE_LOCK_FUNCTION() { mu_.Lock(); }
  void Unlock() ABSL_UNLOCK_FUNCTION() { mu_.Unlock(); }
  void AssertHeld() const ABSL_ASSERT_EXCLUSIVE_LOCK() { mu_.AssertHeld(); }

  // As absl::Mutex::Await*: releases the lock while `cond` is false and
  // holds it again on return.
  void Await(const absl::Condition& cond) ABSL_EXCLUSIVE_LOCKS_REQUIRED(this) { mu_.Await(cond); }
  bool AwaitWithTimeout(const absl::Condition& cond, absl::Duration timeout)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(this) {
    return mu_.AwaitWithTimeout(cond, timeout);
  }
  bool AwaitWithDeadline(const absl::Condition& cond, absl::Time deadline)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(this) {
    return mu_.AwaitWithDeadline(cond, deadline);
  }

 private:
  absl::Mutex mu_;
};

#else  // TELEMETRY_TSAN: pthread-based, visible to ThreadSanitizer

class ABSL_LOCKABLE Mutex {
 public:
  Mutex() = default;
  Mutex(const Mutex&) = delete;
  Mutex& operator=(const Mutex&) = delete;

  void Lock() ABSL_EXCLUSIVE_LOCK_FUNCTION() { mu_.lock(); }
  void Unlock() ABSL_UNLOCK_FUNCTION() {
    // A waiter's condition may hold now. Notified before the unlock: once
    // unlocked, another thread may destroy this mutex.
    changed_.notify_all();
    mu_.unlock();
  }
  void AssertHeld() const ABSL_ASSERT_EXCLUSIVE_LOCK() {}

  void Await(const absl::Condition& cond) ABSL_EXCLUSIVE_LOCKS_REQUIRED(this) {
    AwaitWithDeadline(cond, absl::InfiniteFuture());
  }
  bool AwaitWithTimeout(const absl::Condition& cond, absl::Duration timeout)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(this) {
    return AwaitWithDeadline(cond, absl::Now() + timeout);
  }
  bool AwaitWithDeadline(const absl::Condition& cond, absl::Time deadline)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(this) {
    std::unique_lock<std::mutex> held(mu_, std::adopt_lock);
    while (!cond.Eval()) {
      if (deadline == absl::InfiniteFuture()) {
        changed_.wait(held);
      } else if (changed_.wait_until(held, absl::ToChronoTime(deadline)) ==
                     std::cv_status::timeout) {
        bool result = cond.Eval();
        held.release();
        return result;
      }
    }
    held.release();  // still locked: the caller unlocks
    return true;
  }

 private:
  std::mutex mu_;
  std::condition_variable changed_;
};

#endif  // TELEMETRY_TSAN

// Holds `mu` for its scope, like absl::MutexLock.
class ABSL_SCOPED_LOCKABLE MutexLock {
 public:
  explicit MutexLock(Mutex* mu) ABSL_EXCLUSIVE_LOCK_FUNCTION(mu) : mu_(mu) { mu_->Lock(); }
  ~MutexLock() ABSL_UNLOCK_FUNCTION() { mu_->Unlock(); }
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;

 private:
  Mutex* const mu_;
};

// absl::Notification on telemetry::Mutex, for the same reason: a one-shot
// event TSan can see. Thread-safe.
class Notification {
 public:
  void Notify() {
    MutexLock lock(&mu_);
    notified_ = true;
  }
  bool HasBeenNotified() {
    MutexLock lock(&mu_);
    return notified_;
  }
  void WaitForNotification() {
    MutexLock lock(&mu_);
    mu_.Await(absl::Condition(&notified_));
  }
  bool WaitForNotificationWithTimeout(absl::Duration timeout) {
    MutexLock lock(&mu_);
    return mu_.AwaitWithTimeout(absl::Condition(&notified_), timeout);
  }

 private:
  Mutex mu_;
  bool notified_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace telemetry

#endif  // TELEMETRY_STORAGE_UTIL_MUTEX_H_
