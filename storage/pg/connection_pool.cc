#include "storage/pg/connection_pool.h"

#include <utility>

#include "storage/util/mutex.h"

namespace telemetry::pg {

ConnectionPool::ConnectionPool(std::string conninfo, int max_size,
                               std::string session_sql)
    : conninfo_(std::move(conninfo)),
      max_size_(max_size < 1 ? 1 : max_size),
      session_sql_(std::move(session_sql)) {}

ConnectionPool::~ConnectionPool() = default;

absl::StatusOr<ConnectionPool::Lease> ConnectionPool::Acquire(
    absl::Duration timeout) {
  std::unique_ptr<Connection> conn;
  {
    MutexLock lock(&mu_);
    auto slot_free = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
      return !idle_.empty() || leased_ < max_size_;
    };
    if (!mu_.AwaitWithTimeout(absl::Condition(&slot_free), timeout)) {
      return absl::DeadlineExceededError(
          "timed out waiting for a free PostgreSQL connection");
    }
    ++leased_;
    if (!idle_.empty()) {
      conn = std::move(idle_.back());
      idle_.pop_back();
    }
  }
  if (conn) return Lease(this, std::move(conn));

  absl::StatusOr<std::unique_ptr<Connection>> opened =
      Connection::Open(conninfo_);
  if (opened.ok() && !session_sql_.empty()) {
    absl::Status s = (*opened)->Exec(session_sql_);
    if (!s.ok()) opened = s;
  }
  if (!opened.ok()) {
    MutexLock lock(&mu_);
    --leased_;
    return opened.status();
  }
  return Lease(this, *std::move(opened));
}

void ConnectionPool::Release(std::unique_ptr<Connection> conn) {
  bool reusable = conn->healthy() && !conn->InTransaction();
  if (!reusable) conn.reset();  // close outside the lock
  MutexLock lock(&mu_);
  --leased_;
  if (reusable) idle_.push_back(std::move(conn));
}

int ConnectionPool::open_connections() const {
  MutexLock lock(&mu_);
  return static_cast<int>(idle_.size()) + leased_;
}

}  // namespace telemetry::pg
