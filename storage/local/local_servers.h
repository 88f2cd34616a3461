// Private, throw-away PostgreSQL and Redis servers for the tests and the
// benchmarks: each in a fresh temporary directory, on a free loopback port,
// started and stopped by PID (never by name), removed afterwards. When the tests run as root,
// PostgreSQL runs as the `postgres` system user, as it refuses root.
#ifndef TELEMETRY_STORAGE_LOCAL_LOCAL_SERVERS_H_
#define TELEMETRY_STORAGE_LOCAL_LOCAL_SERVERS_H_

#include <sys/types.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "storage/local/process.h"  // the process helpers, for the servers' users
#include "storage/pg/migration.h"

namespace telemetry::local {

// The newest installed PostgreSQL's bin directory (TELEMETRY_PG_BINDIR
// when set), or "" when there is none.
std::string PostgresBindir();

class PostgresServer {
 public:
  struct Options {
    // Add timescaledb to shared_preload_libraries (only when
    // TimescaleInstalled()).
    bool preload_timescale = false;
    // PostgreSQL's own durability (fsync, full-page writes), as a
    // deployment runs it. Off by default: tests need correctness, not
    // survival of a power cut, and run faster without it.
    bool durable = false;
    // A streaming-replication standby of the server on this loopback port
    // (pg_basebackup -R of it, then started); 0: a primary of its own.
    int standby_of_port = 0;
  };
  // initdb + start.
  static absl::StatusOr<std::unique_ptr<PostgresServer>> Start(Options options);
  static absl::StatusOr<std::unique_ptr<PostgresServer>> Start() { return Start(Options()); }
  ~PostgresServer();

  // Whether the TimescaleDB extension is installed for this PostgreSQL.
  static bool TimescaleInstalled();

  int port() const { return port_; }
  // Superuser conninfo for `dbname`.
  std::string ConnInfo(const std::string& dbname = "postgres") const;
  // Creates a fresh, uniquely named database and returns its name.
  absl::StatusOr<std::string> CreateDatabase();

  // Fast shutdown (SIGINT), waits for the process to exit.
  absl::Status Stop();
  // Hard kill (SIGKILL), as a crash would.
  absl::Status Kill();
  // Starts again on the same data directory and port.
  absl::Status Restart();
  // A standby becomes a primary (pg_promote, waiting for it to finish).
  absl::Status Promote();
  bool running() const { return pid_ > 0; }
  pid_t pid() const { return pid_; }  // the postmaster

 private:
  PostgresServer() = default;
  absl::Status Launch();

  std::string bindir_;
  std::string root_;  // temp dir: data/ and socket/
  int port_ = 0;
  pid_t pid_ = -1;
  Options options_;
  int next_db_ = 0;
};

class RedisServer {
 public:
  struct Options {
    int replica_of_port = 0;  // a replica of the Redis on this loopback port; 0: a primary
  };
  static absl::StatusOr<std::unique_ptr<RedisServer>> Start() { return Start(Options{}); }
  static absl::StatusOr<std::unique_ptr<RedisServer>> Start(Options options);
  ~RedisServer();

  int port() const { return port_; }
  std::string Url() const;
  absl::Status Stop();
  // SIGKILL: a crash, no shutdown of its own.
  absl::Status Kill();
  absl::Status Restart();
  // SIGSTOP / SIGCONT: a Redis that accepts connections but never answers
  // (a stalled or overloaded server), unlike a stopped one that refuses.
  absl::Status Pause();
  absl::Status Resume();
  bool running() const { return pid_ > 0; }
  pid_t pid() const { return pid_; }

 private:
  RedisServer() = default;
  absl::Status Launch();

  Options options_;
  std::string root_;
  int port_ = 0;
  pid_t pid_ = -1;
};

// A Redis Sentinel (redis-server --sentinel) on a free loopback port,
// monitoring the primary on `primary_port` under `master_name`. Failure
// detection is fast (down after 1 s) so that tests fail over in seconds.
class RedisSentinel {
 public:
  static absl::StatusOr<std::unique_ptr<RedisSentinel>> Start(const std::string& master_name,
                                                              int primary_port, int quorum);
  ~RedisSentinel();

  int port() const { return port_; }
  // The port of the primary this sentinel names for `master_name` now
  // (SENTINEL get-master-addr-by-name).
  absl::StatusOr<int> MasterPort(const std::string& master_name) const;
  absl::Status Stop();
  // Starts again on the same port and configuration file, which holds what
  // it knew when stopped (a sentinel that missed a failover, until its
  // peers tell it).
  absl::Status Restart();

 private:
  RedisSentinel() = default;
  absl::Status Launch();

  std::string root_;
  int port_ = 0;
  pid_t pid_ = -1;
};

// Migrates the schema in `mode` into the (existing) database `conninfo`.
absl::Status MigrateDatabase(const std::string& conninfo,
                             pg::StorageMode mode = pg::StorageMode::kNative);

// Creates a fresh database on `server`, migrates the schema in `mode`, and
// returns its name (server.ConnInfo(name) connects to it).
absl::StatusOr<std::string> CreateMigratedDatabase(
    PostgresServer& server, pg::StorageMode mode = pg::StorageMode::kNative);

}  // namespace telemetry::local

#endif  // TELEMETRY_STORAGE_LOCAL_LOCAL_SERVERS_H_
