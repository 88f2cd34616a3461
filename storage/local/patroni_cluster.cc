#include "storage/local/patroni_cluster.h"

#include <libpq-fe.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/time/clock.h"
#include "storage/local/http_get.h"
#include "storage/local/local_servers.h"
#include "storage/local/process.h"

#ifndef TELEMETRY_PATRONI_TEMPLATE
#error "TELEMETRY_PATRONI_TEMPLATE must name deploy/cluster/patroni.yml.in"
#endif

namespace telemetry::local {
namespace {

namespace fs = std::filesystem;

void RemoveTree(const std::string& path) {
  if (path.empty()) return;
  std::error_code ec;
  fs::remove_all(path, ec);
}

// The process group of `pid` (field 5 of /proc/<pid>/stat), or -1.
pid_t ProcessGroupOf(pid_t pid) {
  std::ifstream stat(absl::StrCat("/proc/", pid, "/stat"));
  std::string line;
  if (!std::getline(stat, line)) return -1;
  // "pid (comm) state ppid pgrp ...": comm may hold spaces; skip past ')'.
  const size_t paren = line.rfind(')');
  if (paren == std::string::npos) return -1;
  std::istringstream rest(line.substr(paren + 1));
  std::string state;
  pid_t ppid = 0, pgrp = -1;
  rest >> state >> ppid >> pgrp;
  return rest ? pgrp : -1;
}

bool ProcessAlive(pid_t pid) { return pid > 0 && kill(pid, 0) == 0; }

// Whether `sql` (one write transaction) commits and is acknowledged within
// `wait`, judged by the client: a server-side timeout would cancel a wait
// for the synchronous standby and report the local commit as a success.
bool CommitAcknowledged(const std::string& conninfo, const char* sql, const std::string& param,
                        absl::Duration wait) {
  const absl::Time deadline = absl::Now() + wait;
  PGconn* conn = PQconnectStart(conninfo.c_str());
  if (conn == nullptr) return false;
  // The server's notices ("terminating connection due to immediate
  // shutdown") are expected here, not for stderr.
  PQsetNoticeProcessor(conn, [](void*, const char*) {}, nullptr);
  auto wait_socket = [&](bool for_write) {
    const absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) return false;
    pollfd pfd{PQsocket(conn), static_cast<short>(for_write ? POLLOUT : POLLIN), 0};
    return poll(&pfd, 1, static_cast<int>(absl::ToInt64Milliseconds(left)) + 1) > 0;
  };
  bool acknowledged = false;
  PostgresPollingStatusType state = PGRES_POLLING_WRITING;
  while (state != PGRES_POLLING_OK && state != PGRES_POLLING_FAILED) {
    if (!wait_socket(state == PGRES_POLLING_WRITING)) break;
    state = PQconnectPoll(conn);
  }
  const char* values[] = {param.c_str()};
  if (state == PGRES_POLLING_OK &&
      PQsendQueryParams(conn, sql, 1, nullptr, values, nullptr, nullptr, 0) == 1) {
    bool failed = false;
    while (!failed) {
      while (!failed && PQisBusy(conn)) {
        failed = !wait_socket(false) || PQconsumeInput(conn) == 0;
      }
      if (failed) break;
      PGresult* res = PQgetResult(conn);
      if (res == nullptr) break;  // every statement answered
      acknowledged = PQresultStatus(res) == PGRES_COMMAND_OK;
      failed = !acknowledged;
      PQclear(res);
    }
    acknowledged = acknowledged && !failed;
  }
  PQfinish(conn);  // a commit still waiting goes on waiting, unacknowledged
  return acknowledged;
}

// Whether the server at `conninfo` answers and has finished recovery (a
// promoted standby whose promotion completed, or a primary).
bool OutOfRecovery(const std::string& conninfo) {
  PGconn* conn = PQconnectdb(conninfo.c_str());
  PGresult* res = PQexec(conn, "SELECT pg_is_in_recovery()");
  const bool primary = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 &&
                       std::string(PQgetvalue(res, 0, 0)) == "f";
  PQclear(res);
  PQfinish(conn);
  return primary;
}

}  // namespace

// ---------------------------------------------------------------------- etcd

absl::StatusOr<std::unique_ptr<EtcdCluster>> EtcdCluster::Start(int members) {
  const std::string bin = "/usr/bin/etcd";
  if (!fs::exists(bin)) return absl::NotFoundError("etcd is not installed (etcd-server)");
  std::unique_ptr<EtcdCluster> c(new EtcdCluster());
  c->root_ = MakeTempDir("tg-etcd");
  if (c->root_.empty()) return absl::InternalError("mkdtemp failed");
  std::vector<int> peer_ports;
  std::vector<std::string> initial;
  for (int i = 0; i < members; ++i) {
    c->client_ports_.push_back(FreeLoopbackPort());
    peer_ports.push_back(FreeLoopbackPort());
    initial.push_back(absl::StrCat("e", i, "=http://127.0.0.1:", peer_ports.back()));
  }
  const std::string cluster = absl::StrJoin(initial, ",");
  for (int i = 0; i < members; ++i) {
    const std::string client = absl::StrCat("http://127.0.0.1:", c->client_ports_[i]);
    const std::string peer = absl::StrCat("http://127.0.0.1:", peer_ports[i]);
    const pid_t pid = SpawnProcess(
        {bin, "--name", absl::StrCat("e", i), "--data-dir", absl::StrCat(c->root_, "/e", i),
         "--listen-client-urls", client, "--advertise-client-urls", client,
         "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
         "--initial-cluster", cluster, "--initial-cluster-state", "new",
         "--initial-cluster-token", fs::path(c->root_).filename().string(), "--logger", "zap",
         "--log-level", "warn"},
        absl::StrCat(c->root_, "/e", i, ".log"));
    if (pid < 0) return absl::InternalError("fork failed");
    c->pids_.push_back(pid);
  }
  // Healthy once every member answers and a leader was elected.
  const bool healthy = PollUntil(
      [&] {
        for (int port : c->client_ports_) {
          absl::StatusOr<std::string> health = HttpGet(port, "/health");
          if (!health.ok() || health->find("\"true\"") == std::string::npos) return false;
        }
        return true;
      },
      absl::Seconds(60));
  if (!healthy) {
    return absl::UnavailableError(absl::StrCat("etcd did not become healthy; see ", c->root_));
  }
  return c;
}

std::string EtcdCluster::ClientHosts() const {
  std::vector<std::string> hosts;
  for (int port : client_ports_) hosts.push_back(absl::StrCat("127.0.0.1:", port));
  return absl::StrJoin(hosts, ",");
}

EtcdCluster::~EtcdCluster() {
  for (pid_t& pid : pids_) (void)StopProcess(&pid, SIGTERM, absl::Seconds(20));
  RemoveTree(root_);
}

// ------------------------------------------------------------------- Patroni

absl::StatusOr<std::unique_ptr<PatroniCluster>> PatroniCluster::Start(const EtcdCluster& etcd,
                                                                      Options options) {
  if (!fs::exists("/usr/bin/patroni")) return absl::NotFoundError("patroni is not installed");
  const std::string bindir = PostgresBindir();
  if (bindir.empty()) return absl::NotFoundError("no PostgreSQL server binaries");
  std::ifstream in(TELEMETRY_PATRONI_TEMPLATE);
  std::stringstream text;
  text << in.rdbuf();
  if (!in || text.str().empty()) {
    return absl::NotFoundError(absl::StrCat("cannot read ", TELEMETRY_PATRONI_TEMPLATE));
  }
  std::unique_ptr<PatroniCluster> c(new PatroniCluster());
  c->options_ = options;
  c->root_ = MakeTempDir("tg-patroni");
  if (c->root_.empty()) return absl::InternalError("mkdtemp failed");
  for (int i = 0; i < options.members; ++i) {
    Member m;
    m.name = absl::StrCat("pg", i);
    m.dir = absl::StrCat(c->root_, "/", m.name);
    m.pg_port = FreeLoopbackPort();
    m.api_port = FreeLoopbackPort();
    fs::create_directories(m.dir + "/socket");
    const std::string config = absl::StrReplaceAll(
        text.str(), {{"@SCOPE@", options.scope},
                     {"@MEMBER@", m.name},
                     {"@API_PORT@", absl::StrCat(m.api_port)},
                     {"@ETCD_HOSTS@", etcd.ClientHosts()},
                     {"@SYNCHRONOUS_MODE@", options.synchronous ? "true" : "false"},
                     {"@PG_PORT@", absl::StrCat(m.pg_port)},
                     {"@DATA_DIR@", m.dir + "/data"},
                     {"@PG_BINDIR@", bindir},
                     {"@SOCKET_DIR@", m.dir + "/socket"}});
    std::ofstream out(m.dir + "/patroni.yml");
    out << config;
    if (!out) return absl::InternalError(absl::StrCat("cannot write ", m.dir, "/patroni.yml"));
    c->members_.push_back(std::move(m));
  }
  c->config_path_ = c->members_[0].dir + "/patroni.yml";
  ChownTree(c->root_, PostgresUser());
  // The first member bootstraps (initdb) alone; the others then clone it.
  if (absl::Status st = c->Launch(0); !st.ok()) return st;
  if (!PollUntil([&] { return c->Leader() == 0; }, absl::Seconds(90))) {
    return absl::UnavailableError(absl::StrCat("Patroni did not bootstrap a leader; see ",
                                               c->members_[0].dir, "/patroni.log"));
  }
  for (int i = 1; i < options.members; ++i) {
    if (absl::Status st = c->Launch(i); !st.ok()) return st;
  }
  // The table of the split-brain probe (WriteAcknowledged), replicated
  // like any other.
  PGconn* conn = PQconnectdb(c->ConnInfo(0).c_str());
  PGresult* res = PQexec(conn, "CREATE TABLE split_brain_probe (marker text NOT NULL)");
  const bool created = PQresultStatus(res) == PGRES_COMMAND_OK;
  PQclear(res);
  PQfinish(conn);
  if (!created) return absl::InternalError("cannot create the split-brain probe table");
  if (absl::StatusOr<int> leader = c->AwaitHealthy(); !leader.ok()) return leader.status();
  return c;
}

absl::Status PatroniCluster::Launch(int member) {
  Member& m = members_[member];
  m.patroni_pid = SpawnProcessAs({"/usr/bin/patroni", m.dir + "/patroni.yml"}, PostgresUser(),
                                 m.dir + "/patroni.log");
  if (m.patroni_pid < 0) return absl::InternalError("fork failed");
  return absl::OkStatus();
}

std::string PatroniCluster::ConnInfo(int member, const std::string& dbname) const {
  return absl::StrCat("host=127.0.0.1 port=", members_[member].pg_port,
                      " user=postgres connect_timeout=5 dbname=", dbname);
}

std::string PatroniCluster::WritableConnInfo(const std::string& dbname) const {
  std::vector<std::string> hosts, ports;
  for (const Member& m : members_) {
    hosts.push_back("127.0.0.1");
    ports.push_back(absl::StrCat(m.pg_port));
  }
  return absl::StrCat("host=", absl::StrJoin(hosts, ","), " port=", absl::StrJoin(ports, ","),
                      " user=postgres dbname=", dbname,
                      " connect_timeout=2 target_session_attrs=read-write");
}

bool PatroniCluster::Answering(int member) const {
  return !members_[member].frozen && ProcessAlive(members_[member].patroni_pid);
}

int PatroniCluster::Leader() const {
  for (int i = 0; i < members(); ++i) {
    if (!Answering(i)) continue;
    absl::StatusOr<HttpResponse> r = HttpFetch(members_[i].api_port, "/primary");
    if (r.ok() && r->status == 200) return i;
  }
  return -1;
}

absl::StatusOr<int> PatroniCluster::AwaitHealthy(int not_member, absl::Duration timeout) {
  int leader = -1;
  const bool healthy = PollUntil(
      [&] {
        leader = Leader();
        if (leader < 0 || leader == not_member || !OutOfRecovery(ConnInfo(leader))) {
          return false;
        }
        bool any_sync = false;
        for (int i = 0; i < members(); ++i) {
          if (i == leader || !Answering(i)) continue;
          absl::StatusOr<HttpResponse> replica = HttpFetch(members_[i].api_port, "/replica");
          if (!replica.ok() || replica->status != 200) return false;
          absl::StatusOr<HttpResponse> sync = HttpFetch(members_[i].api_port, "/sync");
          any_sync = any_sync || (sync.ok() && sync->status == 200);
        }
        // A synchronous cluster with a running standby has a sync standby.
        const bool wants_sync = options_.synchronous && [&] {
          for (int i = 0; i < members(); ++i) {
            if (i != leader && Answering(i)) return true;
          }
          return false;
        }();
        return !wants_sync || any_sync;
      },
      timeout);
  if (!healthy) {
    return absl::DeadlineExceededError(
        absl::StrCat("the Patroni cluster did not become healthy (leader ", leader, "); see ",
                     root_));
  }
  return leader;
}

pid_t PatroniCluster::PostmasterPid(int member) const {
  std::ifstream pidfile(members_[member].dir + "/data/postmaster.pid");
  pid_t pid = -1;
  if (!(pidfile >> pid) || pid <= 1) return -1;
  // The file outlives a killed postmaster and its PID may be reused: only
  // a process running with this member's data directory is it.
  std::ifstream cmdline(absl::StrCat("/proc/", pid, "/cmdline"));
  std::string args((std::istreambuf_iterator<char>(cmdline)), std::istreambuf_iterator<char>());
  if (args.find(members_[member].dir + "/data") == std::string::npos) return -1;
  return pid;
}

void PatroniCluster::SignalMachine(int member, int signal) const {
  if (members_[member].patroni_pid > 0) kill(members_[member].patroni_pid, signal);
  const pid_t postmaster = PostmasterPid(member);
  if (!ProcessAlive(postmaster)) return;
  // Patroni starts the postmaster in a session of its own; its backends
  // share the postmaster's group. Signal that group only when it is
  // really this member's postmaster's (never our own, never init's).
  const pid_t group = ProcessGroupOf(postmaster);
  if (group > 1 && group != getpgrp()) {
    kill(-group, signal);
  } else {
    kill(postmaster, signal);
  }
}

absl::Status PatroniCluster::Kill(int member) {
  SignalMachine(member, SIGCONT);  // a frozen member dies as well
  SignalMachine(member, SIGKILL);
  members_[member].frozen = false;
  (void)WaitForExit(members_[member].patroni_pid, absl::Seconds(10));
  members_[member].patroni_pid = -1;
  const pid_t postmaster = PostmasterPid(member);
  if (!PollUntil([&] { return !ProcessAlive(postmaster); }, absl::Seconds(30))) {
    return absl::DeadlineExceededError("the killed postmaster did not exit");
  }
  return absl::OkStatus();
}

absl::Status PatroniCluster::Freeze(int member) {
  if (!ProcessAlive(members_[member].patroni_pid)) {
    return absl::FailedPreconditionError("member is not running");
  }
  SignalMachine(member, SIGSTOP);
  members_[member].frozen = true;
  return absl::OkStatus();
}

absl::Status PatroniCluster::Thaw(int member) {
  SignalMachine(member, SIGCONT);
  members_[member].frozen = false;
  return absl::OkStatus();
}

absl::Status PatroniCluster::Restart(int member) {
  if (ProcessAlive(members_[member].patroni_pid)) {
    return absl::FailedPreconditionError("member is still running");
  }
  return Launch(member);
}

absl::Status PatroniCluster::Switchover(int candidate) {
  const int leader = Leader();
  if (leader < 0) return absl::UnavailableError("no leader to switch over from");
  absl::StatusOr<int> rc = RunCommand(
      {"/usr/bin/patronictl", "-c", config_path_, "switchover", "--leader", name(leader),
       "--candidate", name(candidate), "--force"},
      PostgresUser(), root_ + "/patronictl.log");
  if (!rc.ok()) return rc.status();
  if (*rc != 0) {
    return absl::InternalError(
        absl::StrCat("patronictl switchover failed (exit ", *rc, "); see ", root_));
  }
  return absl::OkStatus();
}

bool PatroniCluster::WriteAcknowledged(int member, const std::string& marker,
                                       absl::Duration wait) const {
  return CommitAcknowledged(ConnInfo(member), "INSERT INTO split_brain_probe VALUES ($1)", marker,
                            wait);
}

absl::StatusOr<bool> PatroniCluster::HasWrite(int member, const std::string& marker) const {
  PGconn* conn = PQconnectdb(ConnInfo(member).c_str());
  const char* values[] = {marker.c_str()};
  PGresult* res = PQexecParams(conn, "SELECT count(*) FROM split_brain_probe WHERE marker = $1",
                               1, nullptr, values, nullptr, nullptr, 0);
  absl::StatusOr<bool> found = absl::UnavailableError("the member did not answer");
  if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1) {
    found = std::string(PQgetvalue(res, 0, 0)) != "0";
  }
  PQclear(res);
  PQfinish(conn);
  return found;
}

PatroniCluster::~PatroniCluster() {
  for (int i = 0; i < members(); ++i) {
    SignalMachine(i, SIGCONT);
    // Patroni stops its PostgreSQL on SIGTERM.
    (void)StopProcess(&members_[i].patroni_pid, SIGTERM, absl::Seconds(30));
  }
  for (int i = 0; i < members(); ++i) {
    const pid_t postmaster = PostmasterPid(i);
    if (ProcessAlive(postmaster)) {  // its Patroni was killed, or stopped too slowly
      kill(postmaster, SIGQUIT);     // immediate shutdown
      (void)PollUntil([&] { return !ProcessAlive(postmaster); }, absl::Seconds(20));
    }
  }
  RemoveTree(root_);
}

}  // namespace telemetry::local
