#include "storage/local/local_servers.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <grp.h>
#include <hiredis/hiredis.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "storage/pg/connection.h"
#include "storage/pg/migrator.h"

namespace telemetry::local {
namespace {

namespace fs = std::filesystem;

std::string MakeTempDir(const char* prefix) {
  const char* base = std::getenv("TMPDIR");
  std::string tmpl = absl::StrCat(base && *base ? base : "/tmp", "/", prefix,
                                  "-XXXXXX");
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  if (mkdtemp(buf.data()) == nullptr) return "";
  return std::string(buf.data());
}

// Resolves the uid/gid to run PostgreSQL as: ourselves unless we are root.
bool LookupRunAs(const std::string& user, uid_t* uid, gid_t* gid) {
  struct passwd* pw = getpwnam(user.c_str());
  if (pw == nullptr) return false;
  *uid = pw->pw_uid;
  *gid = pw->pw_gid;
  return true;
}

std::string PostgresUser() { return geteuid() == 0 ? "postgres" : ""; }

void ChownTree(const std::string& path, const std::string& user) {
  uid_t uid;
  gid_t gid;
  if (user.empty() || !LookupRunAs(user, &uid, &gid)) return;
  if (chown(path.c_str(), uid, gid) != 0) return;
  for (const auto& e : fs::recursive_directory_iterator(path)) {
    (void)chown(e.path().c_str(), uid, gid);
  }
}

// fork + exec; the child drops to `run_as` (if set) and redirects output.
pid_t Spawn(const std::vector<std::string>& argv, const std::string& run_as,
            const std::string& log_path) {
  uid_t uid = 0;
  gid_t gid = 0;
  bool switch_user = !run_as.empty() && LookupRunAs(run_as, &uid, &gid);
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  const pid_t parent = getpid();
  pid_t pid = fork();
  if (pid != 0) return pid;
  // Child: own process group, so a terminal Ctrl-C goes to the test only.
  setpgid(0, 0);
  int out = log_path.empty() ? open("/dev/null", O_WRONLY)
                             : open(log_path.c_str(),
                                    O_WRONLY | O_CREAT | O_APPEND, 0644);
  if (out >= 0) {
    dup2(out, STDOUT_FILENO);
    dup2(out, STDERR_FILENO);
    close(out);
  }
  int in = open("/dev/null", O_RDONLY);
  if (in >= 0) {
    dup2(in, STDIN_FILENO);
    close(in);
  }
  if (switch_user) {
    if (setgroups(0, nullptr) != 0 || setgid(gid) != 0 || setuid(uid) != 0) {
      _exit(126);
    }
  }
  // A test that crashes or aborts takes its servers with it instead of
  // leaving them running. Set after the user switch, which would clear it;
  // kept across exec.
  prctl(PR_SET_PDEATHSIG, SIGTERM);
  if (getppid() != parent) _exit(125);  // the test died before this line
  execv(args[0], args.data());
  _exit(127);
}

// Waits for `pid` to exit, up to `timeout`. Returns its exit status or -1.
int WaitExit(pid_t pid, absl::Duration timeout) {
  int status = 0;
  int result = -1;
  PollUntil(
      [&] {
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid) {
          result = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
          return true;
        }
        return r < 0;  // not our child any more
      },
      timeout);
  return result;
}

absl::Status StopProcess(pid_t* pid, int signal, absl::Duration timeout) {
  if (*pid <= 0) return absl::OkStatus();
  kill(*pid, signal);
  if (WaitExit(*pid, timeout) == -1) {
    kill(*pid, SIGKILL);
    WaitExit(*pid, absl::Seconds(10));
  }
  *pid = -1;
  return absl::OkStatus();
}

std::string FindPostgresBindir() {
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

}  // namespace

pid_t SpawnProcess(const std::vector<std::string>& argv,
                   const std::string& log_path) {
  return Spawn(argv, "", log_path);
}

int WaitForExit(pid_t pid, absl::Duration timeout) { return WaitExit(pid, timeout); }

int FreeLoopbackPort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  int port = 0;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  close(fd);
  return port;
}

bool PollUntil(const std::function<bool()>& condition, absl::Duration timeout) {
  absl::Time deadline = absl::Now() + timeout;
  while (true) {
    if (condition()) return true;
    if (absl::Now() >= deadline) return false;
    absl::SleepFor(absl::Milliseconds(5));
  }
}

absl::StatusOr<int> RunCommand(const std::vector<std::string>& argv,
                               const std::string& run_as,
                               const std::string& log_path) {
  pid_t pid = Spawn(argv, run_as, log_path);
  if (pid < 0) return absl::InternalError("fork failed");
  int code = WaitExit(pid, absl::Minutes(5));
  if (code < 0) {
    kill(pid, SIGKILL);
    WaitExit(pid, absl::Seconds(10));
    return absl::DeadlineExceededError(absl::StrCat(argv[0], " timed out"));
  }
  return code;
}

// ---------------------------------------------------------------- PostgreSQL

bool PostgresServer::TimescaleInstalled() {
  std::string bindir = FindPostgresBindir();
  if (bindir.empty()) return false;
  // /usr/lib/postgresql/15/bin -> /usr/share/postgresql/15/extension
  fs::path version = fs::path(bindir).parent_path().filename();
  return fs::exists(fs::path("/usr/share/postgresql") / version / "extension" /
                    "timescaledb.control");
}

absl::StatusOr<std::unique_ptr<PostgresServer>> PostgresServer::Start(
    Options options) {
  std::unique_ptr<PostgresServer> s(new PostgresServer());
  s->bindir_ = FindPostgresBindir();
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
  pid_ = Spawn(argv, PostgresUser(), root_ + "/postgres.log");
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
  pid_ = Spawn(argv, "", root_ + "/redis.log");
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
  s->pid_ = Spawn({bin, conf, "--sentinel"}, "", s->root_ + "/sentinel.log");
  if (s->pid_ < 0) return absl::InternalError("fork failed");
  if (!PollUntil([&] { return RedisAnswers(s->port_); }, absl::Seconds(30))) {
    return absl::UnavailableError(
        absl::StrCat("redis sentinel did not start; see ", s->root_, "/sentinel.log"));
  }
  return s;
}

absl::Status RedisSentinel::Stop() { return StopProcess(&pid_, SIGTERM, absl::Seconds(30)); }

RedisSentinel::~RedisSentinel() {
  (void)Stop();
  if (!root_.empty()) {
    std::error_code ec;
    fs::remove_all(root_, ec);
  }
}

absl::StatusOr<std::string> CreateMigratedDatabase(PostgresServer& server,
                                                   pg::StorageMode mode) {
  auto db = server.CreateDatabase();
  if (!db.ok()) return db.status();
  std::string conninfo = server.ConnInfo(*db);
  auto conn = pg::Connection::Open(conninfo);
  if (!conn.ok()) return conn.status();
  auto migrations = pg::LoadEmbeddedMigrations();
  if (!migrations.ok()) return migrations.status();
  pg::MigratorOptions options;
  options.mode = mode;
  pg::Migrator migrator(conn->get(), *migrations, options);
  if (auto applied = migrator.Up(); !applied.ok()) return applied.status();
  return *db;
}

}  // namespace telemetry::local
