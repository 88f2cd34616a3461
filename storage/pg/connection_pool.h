// A bounded pool of PostgreSQL connections.
//
// Thread-safe. Acquire() hands a connection to one caller exclusively; the
// Lease gives it back when destroyed. A connection that lost its server, or is
// left inside a transaction, is closed instead of returned, so the next
// caller never inherits a broken session.
#ifndef TELEMETRY_STORAGE_PG_CONNECTION_POOL_H_
#define TELEMETRY_STORAGE_PG_CONNECTION_POOL_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "storage/pg/connection.h"
#include "storage/util/mutex.h"

namespace telemetry::pg {

class ConnectionPool {
 public:
  class Lease {
   public:
    Lease(ConnectionPool* pool, std::unique_ptr<Connection> conn)
        : pool_(pool), conn_(std::move(conn)) {}
    Lease(Lease&&) = default;
    Lease& operator=(Lease&&) = delete;
    ~Lease() {
      if (conn_) pool_->Release(std::move(conn_));
    }
    Connection* operator->() { return conn_.get(); }
    Connection& operator*() { return *conn_; }

   private:
    ConnectionPool* pool_;
    std::unique_ptr<Connection> conn_;
  };

  // `session_sql` runs on every new connection (e.g. SET statement_timeout).
  ConnectionPool(std::string conninfo, int max_size,
                 std::string session_sql = "");
  ~ConnectionPool();

  // Waits up to `timeout` for a free slot, then connects if no idle
  // connection is available. Unavailable when PostgreSQL cannot be reached,
  // DeadlineExceeded when every connection stayed busy.
  absl::StatusOr<Lease> Acquire(absl::Duration timeout = absl::Seconds(10));

  // Connections currently open (idle + leased).
  int open_connections() const;

 private:
  void Release(std::unique_ptr<Connection> conn);

  const std::string conninfo_;
  const int max_size_;
  const std::string session_sql_;
  mutable Mutex mu_;
  std::vector<std::unique_ptr<Connection>> idle_ ABSL_GUARDED_BY(mu_);
  int leased_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace telemetry::pg

#endif  // TELEMETRY_STORAGE_PG_CONNECTION_POOL_H_
