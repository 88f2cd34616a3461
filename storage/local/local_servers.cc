#include "storage/local/local_servers.h"

#include <hiredis/hiredis.h>
#include <libpq-fe.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "storage/pg/connection.h"
#include "storage/pg/migrator.h"

namespace telemetry::local {

namespace fs = std::filesystem;

std::string PostgresBindir() {
  if (const char* env = std::getenv("TELEMETRY_PG_BINDIR"); env && *env) return env;
  std::string best;
  if (fs::exists("/usr/lib/postgresql")) {
    for (const auto& e : fs::directory_iterator("/usr/lib/postgresql")) {
      std::string bin = (e.path() / "bin").string();
      if (fs::exists(bin + "/postgres") && bin > best) best = bin;
    }
  }
  return best;
}

// ---------------------------------------------------------------- PostgreSQL

bool PostgresServer::TimescaleInstalled() {
  std::string bindir = PostgresBindir();
  if (bindir.empty()) return false;
  // /usr/lib/postgresql/15/bin -> /usr/share/postgresql/15/extension
  fs::path version = fs::path(bindir).parent_path().filename();
  return fs::exists(fs::path("/usr/share/postgresql") / version / "extension" /
                    "timescaledb.control");
}

absl::StatusOr<std::unique_ptr<PostgresServer>> PostgresServer::Start(
    Options options) {
  std::unique_ptr<PostgresServer> s(new PostgresServer());
  s->bindir_ = PostgresBindir();
  if (s->bindir_.empty()) {
    return absl::NotFoundError(
        "no PostgreSQL server binaries under /usr/lib/postgresql (install "
        "postgresql-15 or set TELEMETRY_PG_BINDIR)");
  }
  s->options_ = options;
  s->root_ = MakeTempDir("tg-pg");
  if (s->root_.empty()) return absl::InternalError("mkdtemp failed");
  fs::create_directories(s->root_ + "/socket");
  std::string user = PostgresUser();
  ChownTree(s->root_, user);
  absl::StatusOr<int> rc;
  if (options.standby_of_port > 0) {
    // A copy of the primary, configured (-R) to stream from it.
    rc = RunCommand({s->bindir_ + "/pg_basebackup", "-h", "127.0.0.1", "-p",
                     std::to_string(options.standby_of_port), "-U", "postgres", "-D",
                     s->root_ + "/data", "-X", "stream", "-R", "--no-sync",
                     "--checkpoint=fast"},  // not a spread checkpoint: minutes
                    user, s->root_ + "/basebackup.log");
  } else {
    rc = RunCommand({s->bindir_ + "/initdb", "-D", s->root_ + "/data", "-U", "postgres",
                     "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync"},
                    user, s->root_ + "/initdb.log");
  }
  if (!rc.ok()) return rc.status();
  if (*rc != 0) {
    return absl::InternalError(
        absl::StrCat(options.standby_of_port > 0 ? "pg_basebackup" : "initdb", " failed (exit ",
                     *rc, "); see the log in ", s->root_));
  }
  s->port_ = FreeLoopbackPort();
  if (absl::Status st = s->Launch(); !st.ok()) return st;
  return s;
}

absl::Status PostgresServer::Launch() {
  std::vector<std::string> argv = {
      bindir_ + "/postgres", "-D", root_ + "/data", "-p", std::to_string(port_),
      "-c", "listen_addresses=127.0.0.1", "-c",
      "unix_socket_directories=" + root_ + "/socket", "-c",
      "max_connections=200", "-c", "shared_buffers=256MB", "-c", "max_wal_size=2GB",
      "-c", "log_min_messages=warning"};
  if (!options_.durable) {
    for (const char* setting : {"fsync=off", "full_page_writes=off"}) {
      argv.push_back("-c");
      argv.push_back(setting);
    }
  }
  if (options_.preload_timescale) {
    argv.push_back("-c");
    argv.push_back("shared_preload_libraries=timescaledb");
    argv.push_back("-c");
    argv.push_back("timescaledb.telemetry_level=off");
    // One job scheduler per database with the extension: room for the
    // test databases of a whole binary.
    argv.push_back("-c");
    argv.push_back("max_worker_processes=40");
    argv.push_back("-c");
    argv.push_back("timescaledb.max_background_workers=32");
  }
  pid_ = SpawnProcessAs(argv, PostgresUser(), root_ + "/postgres.log");
  if (pid_ < 0) return absl::InternalError("fork failed");
  std::string conninfo = ConnInfo();
  bool died = false;
  bool ready = PollUntil(
      [&] {
        if (waitpid(pid_, nullptr, WNOHANG) == pid_) died = true;  // and reaped
        return died || PQping(conninfo.c_str()) == PQPING_OK;
      },
      absl::Seconds(60));
  if (!ready || PQping(conninfo.c_str()) != PQPING_OK) {
    if (died) {
      pid_ = -1;  // reaped: never signal a PID that may be reused
    } else {
      (void)StopProcess(&pid_, SIGKILL, absl::Seconds(30));
    }
    return absl::UnavailableError(absl::StrCat(
        "PostgreSQL did not start; see ", root_, "/postgres.log"));
  }
  return absl::OkStatus();
}

std::string PostgresServer::ConnInfo(const std::string& dbname) const {
  return absl::StrCat("host=127.0.0.1 port=", port_, " user=postgres dbname=",
                      dbname, " connect_timeout=5");
}

absl::StatusOr<std::string> PostgresServer::CreateDatabase() {
  std::string name = absl::StrCat("test_", getpid(), "_", next_db_++);
  PGconn* conn = PQconnectdb(ConnInfo().c_str());
  std::string sql = absl::StrCat("CREATE DATABASE ", name);
  PGresult* res = PQexec(conn, sql.c_str());
  bool ok = PQresultStatus(res) == PGRES_COMMAND_OK;
  std::string err = PQerrorMessage(conn);
  PQclear(res);
  PQfinish(conn);
  if (!ok) return absl::InternalError(absl::StrCat("CREATE DATABASE: ", err));
  return name;
}

absl::Status PostgresServer::Stop() {
  return StopProcess(&pid_, SIGINT, absl::Seconds(30));
}

absl::Status PostgresServer::Kill() {
  return StopProcess(&pid_, SIGKILL, absl::Seconds(30));
}

absl::Status PostgresServer::Promote() {
  PGconn* conn = PQconnectdb(ConnInfo().c_str());
  PGresult* res = PQexec(conn, "SELECT pg_promote(true, 60)");
  const bool ok = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 &&
                  std::string(PQgetvalue(res, 0, 0)) == "t";
  std::string err = PQerrorMessage(conn);
  PQclear(res);
  PQfinish(conn);
  if (!ok) return absl::InternalError(absl::StrCat("pg_promote: ", err));
  return absl::OkStatus();
}

namespace {

// Whether a process other than this one runs with `dir` as its working
// directory: a killed postmaster's backends (children it can no longer
// reap, so not ours to wait for) keep PostgreSQL's data directory busy
// until each notices and exits.
bool AnyProcessIn(const std::string& dir) {
  std::error_code ec;
  const fs::path target = fs::canonical(dir, ec);
  if (ec) return false;
  for (const auto& entry : fs::directory_iterator("/proc", ec)) {
    const std::string name = entry.path().filename();
    if (name.empty() || !std::isdigit(static_cast<unsigned char>(name[0]))) continue;
    std::error_code link_ec;
    if (fs::read_symlink(entry.path() / "cwd", link_ec) == target) return true;
  }
  return false;
}

}  // namespace

absl::Status PostgresServer::Restart() {
  if (pid_ > 0) return absl::FailedPreconditionError("still running");
  // After SIGKILL the old backends linger until they notice, holding the
  // data directory's shared memory; a postmaster started meanwhile exits
  // at once ("pre-existing shared memory block is still in use"). Wait for
  // them, then start, retrying a start that still lost that race.
  (void)PollUntil([&] { return !AnyProcessIn(root_ + "/data"); }, absl::Seconds(30));
  const absl::Time deadline = absl::Now() + absl::Seconds(60);
  absl::Status started = Launch();
  while (!started.ok() && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(200));  // back off between attempts
    started = Launch();
  }
  return started;
}

PostgresServer::~PostgresServer() {
  (void)Stop();
  if (!root_.empty()) {
    std::error_code ec;
    fs::remove_all(root_, ec);
  }
}

// --------------------------------------------------------------------- Redis

namespace {

// Whether the Redis on `port` answers PING.
bool RedisAnswers(int port) {
  timeval tv{0, 200000};
  redisContext* c = redisConnectWithTimeout("127.0.0.1", port, tv);
  bool ok = false;
  if (c != nullptr && !c->err) {
    auto* r = static_cast<redisReply*>(redisCommand(c, "PING"));
    ok = r != nullptr && r->type == REDIS_REPLY_STATUS;
    if (r) freeReplyObject(r);
  }
  if (c) redisFree(c);
  return ok;
}

}  // namespace

absl::StatusOr<std::unique_ptr<RedisServer>> RedisServer::Start(Options options) {
  std::unique_ptr<RedisServer> s(new RedisServer());
  s->options_ = options;
  s->root_ = MakeTempDir("tg-redis");
  if (s->root_.empty()) return absl::InternalError("mkdtemp failed");
  s->port_ = FreeLoopbackPort();
  if (absl::Status st = s->Launch(); !st.ok()) return st;
  return s;
}

absl::Status RedisServer::Launch() {
  std::string bin = "/usr/bin/redis-server";
  if (!fs::exists(bin)) {
    return absl::NotFoundError("redis-server is not installed");
  }
  std::vector<std::string> argv = {bin, "--port", std::to_string(port_), "--bind", "127.0.0.1",
                                   "--save", "", "--appendonly", "no", "--dir", root_,
                                   "--daemonize", "no", "--protected-mode", "yes"};
  if (options_.replica_of_port > 0) {
    argv.insert(argv.end(),
                {"--replicaof", "127.0.0.1", std::to_string(options_.replica_of_port)});
  }
  pid_ = SpawnProcess(argv, root_ + "/redis.log");
  if (pid_ < 0) return absl::InternalError("fork failed");
  bool ready = PollUntil([&] { return RedisAnswers(port_); }, absl::Seconds(30));
  if (!ready) {
    return absl::UnavailableError(
        absl::StrCat("redis-server did not start; see ", root_, "/redis.log"));
  }
  return absl::OkStatus();
}

std::string RedisServer::Url() const {
  return absl::StrCat("redis://127.0.0.1:", port_);
}

absl::Status RedisServer::Stop() {
  if (pid_ > 0) kill(pid_, SIGCONT);  // a paused server cannot act on SIGTERM
  return StopProcess(&pid_, SIGTERM, absl::Seconds(30));
}

absl::Status RedisServer::Kill() {
  if (pid_ > 0) kill(pid_, SIGCONT);
  return StopProcess(&pid_, SIGKILL, absl::Seconds(10));
}

absl::Status RedisServer::Pause() {
  if (pid_ <= 0 || kill(pid_, SIGSTOP) != 0) {
    return absl::FailedPreconditionError("redis is not running");
  }
  return absl::OkStatus();
}

absl::Status RedisServer::Resume() {
  if (pid_ <= 0 || kill(pid_, SIGCONT) != 0) {
    return absl::FailedPreconditionError("redis is not running");
  }
  return absl::OkStatus();
}

absl::Status RedisServer::Restart() {
  if (pid_ > 0) return absl::FailedPreconditionError("still running");
  return Launch();
}

RedisServer::~RedisServer() {
  (void)Stop();
  if (!root_.empty()) {
    std::error_code ec;
    fs::remove_all(root_, ec);
  }
}

absl::StatusOr<std::unique_ptr<RedisSentinel>> RedisSentinel::Start(
    const std::string& master_name, int primary_port, int quorum) {
  const std::string bin = "/usr/bin/redis-server";
  if (!fs::exists(bin)) return absl::NotFoundError("redis-server is not installed");
  std::unique_ptr<RedisSentinel> s(new RedisSentinel());
  s->root_ = MakeTempDir("tg-sentinel");
  if (s->root_.empty()) return absl::InternalError("mkdtemp failed");
  s->port_ = FreeLoopbackPort();
  // Sentinel rewrites its configuration file (what it learns of replicas
  // and other sentinels), so the file is its own, in its directory.
  const std::string conf = s->root_ + "/sentinel.conf";
  {
    std::ofstream out(conf);
    out << "port " << s->port_ << "\nbind 127.0.0.1\ndir " << s->root_ << "\n"
        << "sentinel monitor " << master_name << " 127.0.0.1 " << primary_port << " " << quorum
        << "\n"
        << "sentinel down-after-milliseconds " << master_name << " 1000\n"
        << "sentinel failover-timeout " << master_name << " 10000\n"
        << "sentinel parallel-syncs " << master_name << " 1\n";
    if (!out) return absl::InternalError(absl::StrCat("cannot write ", conf));
  }
  if (absl::Status st = s->Launch(); !st.ok()) return st;
  return s;
}

absl::Status RedisSentinel::Launch() {
  pid_ = SpawnProcess({"/usr/bin/redis-server", root_ + "/sentinel.conf", "--sentinel"},
                      root_ + "/sentinel.log");
  if (pid_ < 0) return absl::InternalError("fork failed");
  if (!PollUntil([&] { return RedisAnswers(port_); }, absl::Seconds(30))) {
    return absl::UnavailableError(
        absl::StrCat("redis sentinel did not start; see ", root_, "/sentinel.log"));
  }
  return absl::OkStatus();
}

absl::Status RedisSentinel::Restart() {
  if (pid_ > 0) return absl::FailedPreconditionError("still running");
  return Launch();
}

absl::StatusOr<int> RedisSentinel::MasterPort(const std::string& master_name) const {
  timeval tv{1, 0};
  redisContext* c = redisConnectWithTimeout("127.0.0.1", port_, tv);
  if (c == nullptr || c->err) {
    if (c) redisFree(c);
    return absl::UnavailableError("cannot reach the sentinel");
  }
  (void)redisSetTimeout(c, tv);
  auto* r = static_cast<redisReply*>(
      redisCommand(c, "SENTINEL get-master-addr-by-name %s", master_name.c_str()));
  int port = -1;
  if (r != nullptr && r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
      r->element[1]->type == REDIS_REPLY_STRING) {
    port = std::atoi(r->element[1]->str);
  }
  if (r) freeReplyObject(r);
  redisFree(c);
  if (port <= 0) return absl::NotFoundError("the sentinel names no primary");
  return port;
}

absl::Status RedisSentinel::Stop() { return StopProcess(&pid_, SIGTERM, absl::Seconds(30)); }

RedisSentinel::~RedisSentinel() {
  (void)Stop();
  if (!root_.empty()) {
    std::error_code ec;
    fs::remove_all(root_, ec);
  }
}

absl::Status MigrateDatabase(const std::string& conninfo, pg::StorageMode mode) {
  auto conn = pg::Connection::Open(conninfo);
  if (!conn.ok()) return conn.status();
  auto migrations = pg::LoadEmbeddedMigrations();
  if (!migrations.ok()) return migrations.status();
  pg::MigratorOptions options;
  options.mode = mode;
  pg::Migrator migrator(conn->get(), *migrations, options);
  if (auto applied = migrator.Up(); !applied.ok()) return applied.status();
  return absl::OkStatus();
}

absl::StatusOr<std::string> CreateMigratedDatabase(PostgresServer& server,
                                                   pg::StorageMode mode) {
  auto db = server.CreateDatabase();
  if (!db.ok()) return db.status();
  if (absl::Status st = MigrateDatabase(server.ConnInfo(*db), mode); !st.ok()) return st;
  return *db;
}

}  // namespace telemetry::local
