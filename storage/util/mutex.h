// telemetry::Mutex: absl::Mutex that ThreadSanitizer can see.
//
// Debian's abseil is not built with ThreadSanitizer, so absl::Mutex's own
// annotations (compiled into libabsl_synchronization) are absent and TSan
// sees no happens-before edge through it: every field it guards would look
// racy. This wrapper adds TSan's mutex annotations around each operation in
// builds with TELEMETRY_TSAN (deploy/dev/test.sh's build-tsan) and is
// exactly absl::Mutex otherwise. It carries the same lock annotations, so
// clang's -Wthread-safety checks ABSL_GUARDED_BY(mu_) fields against it.
//
// It lives in storage/ (the lowest layer) so that every module can use it;
// header only.
//
// Thread-safe, like absl::Mutex.
#ifndef TELEMETRY_STORAGE_UTIL_MUTEX_H_
#define TELEMETRY_STORAGE_UTIL_MUTEX_H_

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

#if defined(TELEMETRY_TSAN)
#include <sanitizer/tsan_interface.h>
#endif

namespace telemetry {

class ABSL_LOCKABLE Mutex {
 public:
  Mutex() { Annotate(kCreate); }
  ~Mutex() { Annotate(kDestroy); }
  Mutex(const Mutex&) = delete;
  Mutex& operator=(const Mutex&) = delete;

  void Lock() ABSL_EXCLUSIVE_LOCK_FUNCTION() {
    Annotate(kPreLock);
    mu_.Lock();
    Annotate(kPostLock);
  }
  void Unlock() ABSL_UNLOCK_FUNCTION() {
    Annotate(kPreUnlock);
    mu_.Unlock();
    Annotate(kPostUnlock);
  }
  void AssertHeld() const ABSL_ASSERT_EXCLUSIVE_LOCK() { mu_.AssertHeld(); }

  // As absl::Mutex::Await*: releases the lock while `cond` is false and
  // holds it again on return. To TSan the wait is an unlock and a lock, so
  // what other threads did meanwhile happens before the code after it.
  void Await(const absl::Condition& cond) ABSL_EXCLUSIVE_LOCKS_REQUIRED(this) {
    Released();
    mu_.Await(cond);
    Reacquired();
  }
  bool AwaitWithTimeout(const absl::Condition& cond, absl::Duration timeout)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(this) {
    Released();
    bool held = mu_.AwaitWithTimeout(cond, timeout);
    Reacquired();
    return held;
  }
  bool AwaitWithDeadline(const absl::Condition& cond, absl::Time deadline)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(this) {
    Released();
    bool held = mu_.AwaitWithDeadline(cond, deadline);
    Reacquired();
    return held;
  }

 private:
  enum Op { kCreate, kDestroy, kPreLock, kPostLock, kPreUnlock, kPostUnlock };

  void Annotate([[maybe_unused]] Op op) {
#if defined(TELEMETRY_TSAN)
    switch (op) {
      case kCreate: __tsan_mutex_create(this, 0); break;
      case kDestroy: __tsan_mutex_destroy(this, 0); break;
      case kPreLock: __tsan_mutex_pre_lock(this, 0); break;
      case kPostLock: __tsan_mutex_post_lock(this, 0, 0); break;
      case kPreUnlock: __tsan_mutex_pre_unlock(this, 0); break;
      case kPostUnlock: __tsan_mutex_post_unlock(this, 0); break;
    }
#endif
  }
  void Released() {
    Annotate(kPreUnlock);
    Annotate(kPostUnlock);
  }
  void Reacquired() {
    Annotate(kPreLock);
    Annotate(kPostLock);
  }

  absl::Mutex mu_;
};

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

}  // namespace telemetry

#endif  // TELEMETRY_STORAGE_UTIL_MUTEX_H_
