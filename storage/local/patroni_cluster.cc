#include "storage/local/patroni_cluster.h"

#include <libpq-fe.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
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

// What `sql` (one write transaction) got within `wait`, judged by the
// client: a server-side timeout would cancel a wait for the synchronous
// standby and report the local commit as a success.
PatroniCluster::WriteOutcome CommitOutcome(const std::string& conninfo, const char* sql,
                                           const std::string& param, absl::Duration wait) {
  using Outcome = PatroniCluster::WriteOutcome;
  const absl::Time deadline = absl::Now() + wait;
  PGconn* conn = PQconnectStart(conninfo.c_str());
  if (conn == nullptr) return Outcome::kNotConnected;
  if (PQstatus(conn) == CONNECTION_BAD) {
    PQfinish(conn);
    return Outcome::kNotConnected;
  }
  // The server's notices ("terminating connection due to immediate
  // shutdown") are expected here, not for stderr.
  PQsetNoticeProcessor(conn, [](void*, const char*) {}, nullptr);
  auto wait_socket = [&](bool for_write) {
    const absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) return false;
    pollfd pfd{PQsocket(conn), static_cast<short>(for_write ? POLLOUT : POLLIN), 0};
    return poll(&pfd, 1, static_cast<int>(absl::ToInt64Milliseconds(left)) + 1) > 0;
  };
  Outcome outcome = Outcome::kNotConnected;
  PostgresPollingStatusType state = PGRES_POLLING_WRITING;
  while (state != PGRES_POLLING_OK && state != PGRES_POLLING_FAILED) {
    if (!wait_socket(state == PGRES_POLLING_WRITING)) break;
    state = PQconnectPoll(conn);
  }
  const char* values[] = {param.c_str()};
  if (state == PGRES_POLLING_OK &&
      PQsendQueryParams(conn, sql, 1, nullptr, values, nullptr, nullptr, 0) == 1) {
    // Every result, then NULL once the server said ReadyForQuery (after the
    // commit, so after any wait for the synchronous standby).
    auto answer = [&]() -> Outcome {
      bool ok = false;
      while (true) {
        while (PQisBusy(conn)) {
          if (!wait_socket(false)) return Outcome::kUnanswered;
          if (PQconsumeInput(conn) == 0) return Outcome::kRefused;  // it hung up
        }
        PGresult* res = PQgetResult(conn);
        if (res == nullptr) return ok ? Outcome::kAcknowledged : Outcome::kRefused;
        ok = PQresultStatus(res) == PGRES_COMMAND_OK;
        PQclear(res);
        if (!ok) return Outcome::kRefused;
      }
    };
    outcome = answer();
  }
  PQfinish(conn);  // a commit still waiting goes on waiting, unacknowledged
  return outcome;
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
         "--initial-cluster-token", fs::path(c->root_).filename().string(),
         // Slower than etcd's LAN defaults (100 ms / 1 s), so that a loaded
         // test machine does not elect a new etcd leader mid-scenario.
         "--heartbeat-interval", "250", "--election-timeout", "2500",
         // Patroni uses etcd's v2 API (deploy/cluster/patroni.yml.in says why).
         "--enable-v2=true", "--logger", "zap",
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
      absl::Seconds(60), absl::Milliseconds(100));
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
  if (!PollUntil([&] { return c->Leader() == 0; }, absl::Seconds(90), absl::Milliseconds(100))) {
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
  return !members_[member].frozen && PatroniRunning(member);
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
      timeout, absl::Milliseconds(100));
  if (!healthy) {
    return absl::DeadlineExceededError(
        absl::StrCat("the Patroni cluster did not become healthy (leader ", leader, "); see ",
                     root_));
  }
  return leader;
}

bool PatroniCluster::IsPostmasterOf(pid_t pid, int member) const {
  if (pid <= 1) return false;
  // postmaster.pid outlives a killed postmaster and its PID may be reused:
  // only a process running with this member's data directory is it.
  std::ifstream cmdline(absl::StrCat("/proc/", pid, "/cmdline"));
  std::string args((std::istreambuf_iterator<char>(cmdline)), std::istreambuf_iterator<char>());
  return args.find(members_[member].dir + "/data") != std::string::npos;
}

pid_t PatroniCluster::PostmasterPid(int member) const {
  std::ifstream pidfile(members_[member].dir + "/data/postmaster.pid");
  pid_t pid = -1;
  if (!(pidfile >> pid) || !IsPostmasterOf(pid, member)) return -1;
  return pid;
}

bool PatroniCluster::PatroniRunning(int member) const {
  const pid_t pid = members_[member].patroni_pid;
  return pid > 0 && waitpid(pid, nullptr, WNOHANG) == 0;  // our child, not exited
}

PatroniCluster::Machine PatroniCluster::FindMachine(int member) const {
  Machine m;
  if (PatroniRunning(member)) m.patroni = members_[member].patroni_pid;
  m.postmaster = PostmasterPid(member);
  if (m.postmaster > 0) {
    // Patroni starts the postmaster from a helper that called setsid() and
    // exited, so the group is the helper's; the backends share it. Only a
    // group that is not ours (nor init's) is signalled as a whole.
    const pid_t group = ProcessGroupOf(m.postmaster);
    if (group > 1 && group != getpgrp()) m.group = group;
  }
  return m;
}

void PatroniCluster::Signal(const Machine& m, int signal) const {
  if (m.patroni > 0) kill(m.patroni, signal);
  if (m.group > 0) {
    kill(-m.group, signal);
  } else if (m.postmaster > 0) {
    kill(m.postmaster, signal);
  }
}

absl::Status PatroniCluster::Kill(int member) {
  // Found once, before any signal: after SIGKILL the postmaster would be
  // gone from the process table while its backends linger.
  const Machine m = FindMachine(member);
  Signal(m, SIGCONT);  // a frozen member dies as well
  Signal(m, SIGKILL);
  members_[member].frozen = false;
  if (m.patroni > 0) (void)WaitForExit(m.patroni, absl::Seconds(10));
  members_[member].patroni_pid = -1;
  if (!PollUntil([&] { return !IsPostmasterOf(m.postmaster, member); }, absl::Seconds(30),
                 absl::Milliseconds(50))) {
    return absl::DeadlineExceededError("the killed postmaster did not exit");
  }
  return absl::OkStatus();
}

absl::Status PatroniCluster::Freeze(int member) {
  const Machine m = FindMachine(member);
  // Stopping Patroni alone would let its PostgreSQL go on serving: a
  // split brain made by the harness, not by the system under test.
  if (m.patroni <= 0 || m.postmaster <= 0) {
    return absl::FailedPreconditionError("the member's Patroni or PostgreSQL is not running");
  }
  Signal(m, SIGSTOP);
  members_[member].frozen = true;
  return absl::OkStatus();
}

absl::Status PatroniCluster::Thaw(int member) {
  Signal(FindMachine(member), SIGCONT);
  members_[member].frozen = false;
  return absl::OkStatus();
}

absl::Status PatroniCluster::Restart(int member) {
  if (PatroniRunning(member)) {
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
      PostgresUser(), root_ + "/patronictl.log", absl::Seconds(90));
  if (!rc.ok()) return rc.status();
  if (*rc != 0) {
    return absl::InternalError(
        absl::StrCat("patronictl switchover failed (exit ", *rc, "); see ", root_));
  }
  return absl::OkStatus();
}

absl::Status PatroniCluster::SetSynchronous(bool synchronous) {
  absl::StatusOr<int> rc = RunCommand(
      {"/usr/bin/patronictl", "-c", config_path_, "edit-config", "--force", "--set",
       absl::StrCat("synchronous_mode=", synchronous ? "true" : "false")},
      PostgresUser(), root_ + "/patronictl.log", absl::Seconds(60));
  if (!rc.ok()) return rc.status();
  if (*rc != 0) {
    return absl::InternalError(
        absl::StrCat("patronictl edit-config failed (exit ", *rc, "); see ", root_));
  }
  options_.synchronous = synchronous;
  // Synchronous: a standby becomes synchronous. Asynchronous: none stays so.
  const bool settled = PollUntil(
      [&] {
        bool any_sync = false;
        for (int i = 0; i < members(); ++i) {
          if (!Answering(i)) continue;
          absl::StatusOr<HttpResponse> sync = HttpFetch(members_[i].api_port, "/sync");
          any_sync = any_sync || (sync.ok() && sync->status == 200);
        }
        return any_sync == synchronous;
      },
      absl::Seconds(60), absl::Milliseconds(100));
  if (!settled) return absl::DeadlineExceededError("synchronous_mode did not take effect");
  return AwaitHealthy().status();
}

PatroniCluster::WriteOutcome PatroniCluster::WriteDirectly(int member, const std::string& marker,
                                                          absl::Duration wait) const {
  return CommitOutcome(ConnInfo(member), "INSERT INTO split_brain_probe VALUES ($1)", marker,
                       wait);
}

const char* PatroniCluster::WriteOutcomeName(WriteOutcome outcome) {
  switch (outcome) {
    case WriteOutcome::kNotConnected:
      return "not connected";
    case WriteOutcome::kRefused:
      return "refused";
    case WriteOutcome::kUnanswered:
      return "sent, never answered";
    case WriteOutcome::kAcknowledged:
      return "acknowledged";
  }
  return "?";
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
    Signal(FindMachine(i), SIGCONT);
    // Patroni stops its PostgreSQL on SIGTERM.
    (void)StopProcess(&members_[i].patroni_pid, SIGTERM, absl::Seconds(30));
  }
  for (int i = 0; i < members(); ++i) {
    const pid_t postmaster = PostmasterPid(i);
    if (postmaster > 0) {        // its Patroni was killed, or stopped too slowly
      kill(postmaster, SIGQUIT);  // immediate shutdown
      (void)PollUntil([&] { return !IsPostmasterOf(postmaster, i); }, absl::Seconds(20),
                      absl::Milliseconds(50));
    }
  }
  RemoveTree(root_);
}

}  // namespace telemetry::local
