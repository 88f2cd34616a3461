// A PostgreSQL cluster as operators run one: etcd for consensus and Patroni
// managing a primary and its standbys, with automatic failover. For the
// cluster tests and benchmarks; everything on free loopback ports under a
// temporary directory, started and stopped by PID. deploy/dev/cluster.sh
// starts the same thing from the same Patroni configuration
// (deploy/cluster/patroni.yml.in).
//
// Thread-safety: none; one thread drives a cluster (other threads may talk
// to its servers).
#ifndef TELEMETRY_STORAGE_LOCAL_PATRONI_CLUSTER_H_
#define TELEMETRY_STORAGE_LOCAL_PATRONI_CLUSTER_H_

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace telemetry::local {

// An etcd cluster of `members` members (3 tolerates the loss of one).
class EtcdCluster {
 public:
  static absl::StatusOr<std::unique_ptr<EtcdCluster>> Start(int members = 3);
  ~EtcdCluster();

  // "127.0.0.1:p1,127.0.0.1:p2,..." (client ports), as Patroni's etcd3.hosts.
  std::string ClientHosts() const;

 private:
  EtcdCluster() = default;

  std::string root_;
  std::vector<int> client_ports_;
  std::vector<pid_t> pids_;
};

class PatroniCluster {
 public:
  struct Options {
    int members = 2;
    // Patroni's synchronous_mode: an acknowledged commit is on a standby
    // too, and only that standby is promoted. false: asynchronous.
    bool synchronous = true;
    std::string scope = "telemetry";
  };
  // Bootstraps the members and waits until there is a leader and every
  // standby streams (one of them synchronously, when asked).
  static absl::StatusOr<std::unique_ptr<PatroniCluster>> Start(const EtcdCluster& etcd,
                                                               Options options);
  ~PatroniCluster();

  int members() const { return static_cast<int>(members_.size()); }
  int pg_port(int member) const { return members_[member].pg_port; }
  std::string name(int member) const { return members_[member].name; }
  // The member's Patroni log (which also holds PostgreSQL's), for a test
  // to show when it fails.
  std::string log_path(int member) const { return members_[member].dir + "/patroni.log"; }
  // The member's PostgreSQL data directory (every PostgreSQL process of
  // the member runs there).
  std::string data_dir(int member) const { return members_[member].dir + "/data"; }

  // Superuser conninfo for `dbname` on one member.
  std::string ConnInfo(int member, const std::string& dbname = "postgres") const;
  // Every member, libpq choosing the one that takes writes: what a gateway
  // is given (`target_session_attrs=read-write`).
  std::string WritableConnInfo(const std::string& dbname) const;

  // The member whose Patroni REST API says it leads (GET /primary is 200),
  // or -1 when none does right now.
  int Leader() const;
  // Waits for a leader other than `not_member` (-1: any) whose promotion
  // has completed (pg_is_in_recovery() is false), and for every
  // other running member to stream from it (one synchronously when the
  // cluster is synchronous). Returns the leader.
  absl::StatusOr<int> AwaitHealthy(int not_member = -1,
                                   absl::Duration timeout = absl::Seconds(90));

  // The machine dies: SIGKILL of its Patroni and of its PostgreSQL's
  // process group (Patroni starts the postmaster in a session of its own;
  // the backends share it).
  absl::Status Kill(int member);
  // The machine stops answering, as in a partition or a long pause: SIGSTOP
  // of the same processes; Thaw sends SIGCONT.
  absl::Status Freeze(int member);
  absl::Status Thaw(int member);
  // Starts Patroni again on the member's data directory; it rejoins as a
  // standby of whoever leads (pg_rewind when its timeline diverged).
  absl::Status Restart(int member);
  // A planned switchover to `candidate` (patronictl switchover).
  absl::Status Switchover(int candidate);
  // Turns Patroni's synchronous_mode on or off for the whole cluster
  // (patronictl edit-config) and waits until the standbys reflect it.
  absl::Status SetSynchronous(bool synchronous);
  // Writes `marker` into the member's database "postgres" directly (not
  // through Patroni) and says what became of the commit within `wait`.
  // With HasWrite on the new primary, the split-brain check: a deposed
  // primary may acknowledge a write only if it survives there.
  enum class WriteOutcome {
    kNotConnected,  // no connection (a stopped server, say)
    kRefused,       // an error, or the server hung up (read-only, shut down)
    kUnanswered,    // sent, no answer within `wait` (a commit waiting for its standby)
    kAcknowledged,  // committed and reported so
  };
  WriteOutcome WriteDirectly(int member, const std::string& marker, absl::Duration wait) const;
  static const char* WriteOutcomeName(WriteOutcome outcome);
  absl::StatusOr<bool> HasWrite(int member, const std::string& marker) const;

 private:
  struct Member {
    std::string name;
    std::string dir;  // data/, socket/, patroni.yml, patroni.log
    int pg_port = 0;
    int api_port = 0;
    pid_t patroni_pid = -1;
    bool frozen = false;  // its API would not answer: not asked
  };
  PatroniCluster() = default;
  absl::Status Launch(int member);
  // The processes of one member's machine, found before signalling them.
  struct Machine {
    pid_t patroni = -1;     // our child, running
    pid_t postmaster = -1;  // this member's, running
    pid_t group = -1;       // the postmaster's process group (its backends too)
  };
  // Running and not frozen: its REST API can answer.
  bool Answering(int member) const;
  // Whether Patroni, our child, is running (not exited, not reaped).
  bool PatroniRunning(int member) const;
  // The member's postmaster PID from postmaster.pid, or -1.
  pid_t PostmasterPid(int member) const;
  // Whether `pid` is a running postmaster of this member's data directory.
  bool IsPostmasterOf(pid_t pid, int member) const;
  Machine FindMachine(int member) const;
  // Sends `signal` to Patroni and to the postmaster's group (or the
  // postmaster alone when its group cannot be told apart from ours).
  void Signal(const Machine& machine, int signal) const;

  std::string root_;
  std::string config_path_;  // member 0's patroni.yml, for patronictl
  Options options_;
  std::vector<Member> members_;
};

}  // namespace telemetry::local

#endif  // TELEMETRY_STORAGE_LOCAL_PATRONI_CLUSTER_H_
