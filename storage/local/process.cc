#include "storage/local/process.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <algorithm>
#include <fstream>
#include <mutex>
#include <random>
#include <set>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"

namespace telemetry::local {
namespace {

namespace fs = std::filesystem;

// Resolves the uid/gid to run PostgreSQL as: ourselves unless we are root.
bool LookupRunAs(const std::string& user, uid_t* uid, gid_t* gid) {
  struct passwd pw;
  struct passwd* found = nullptr;
  std::vector<char> buf(16384);
  if (getpwnam_r(user.c_str(), &pw, buf.data(), buf.size(), &found) != 0 || found == nullptr) {
    return false;
  }
  *uid = pw.pw_uid;
  *gid = pw.pw_gid;
  return true;
}

// fork + exec; the child drops to `run_as` (if set) and redirects output.
pid_t Spawn(const std::vector<std::string>& argv, const std::string& run_as,
            const std::string& log_path) {
  uid_t uid = 0;
  gid_t gid = 0;
  const bool switch_user = !run_as.empty();
  // An unknown user is an error, not a reason to run as ourselves (root).
  if (switch_user && !LookupRunAs(run_as, &uid, &gid)) return -1;
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

// Waits for `pid` to exit, up to `timeout`. Returns its exit status, -1 on
// timeout, kNotOurChild when `pid` is not (or no longer) a child of ours.
// Never waits on "any child": waitpid(-1) would reap someone else's.
int WaitExit(pid_t pid, absl::Duration timeout) {
  if (pid <= 0) return kNotOurChild;
  int status = 0;
  int result = -1;
  PollUntil(
      [&] {
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid) {
          result = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
          return true;
        }
        if (r < 0) {
          result = kNotOurChild;
          return true;
        }
        return false;
      },
      timeout);
  return result;
}

// Whether `port` (0: any) can be bound on 127.0.0.1 right now; the bound
// port, or 0.
int BindProbe(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return 0;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  socklen_t len = sizeof(addr);
  int bound = 0;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    bound = ntohs(addr.sin_port);
  }
  close(fd);
  return bound;
}

// The lowest port the kernel picks for outgoing connections (and for
// bind(0)); 32768 when unknown.
int EphemeralLow() {
  std::ifstream in("/proc/sys/net/ipv4/ip_local_port_range");
  int low = 0;
  return (in >> low) && low > 2048 ? low : 32768;
}

// A port free on 127.0.0.1 below the ephemeral range: a port from bind(0)
// is one the kernel may give, between our probe and the server's bind, to
// any process's outgoing connection (tests run in parallel, and servers
// are restarted on their port). Below the range only another listener can
// take it.
int ProbeFreeLoopbackPort() {
  static std::mutex mu;
  static std::mt19937* random = new std::mt19937(std::random_device{}());
  const int high = EphemeralLow() - 1;
  const int low = std::max(1024, high - 12000);
  for (int attempt = 0; attempt < 200; ++attempt) {
    int candidate;
    {
      std::lock_guard<std::mutex> lock(mu);
      candidate = std::uniform_int_distribution<int>(low, high)(*random);
    }
    if (BindProbe(candidate) == candidate) return candidate;
  }
  return BindProbe(0);  // a crowded range: take the kernel's
}

}  // namespace

std::string MakeTempDir(const char* prefix) {
  const char* base = std::getenv("TMPDIR");
  std::string tmpl = absl::StrCat(base && *base ? base : "/tmp", "/", prefix,
                                  "-XXXXXX");
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  if (mkdtemp(buf.data()) == nullptr) return "";
  return std::string(buf.data());
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

pid_t SpawnProcess(const std::vector<std::string>& argv,
                   const std::string& log_path) {
  return Spawn(argv, "", log_path);
}

pid_t SpawnProcessAs(const std::vector<std::string>& argv, const std::string& run_as,
                     const std::string& log_path) {
  return Spawn(argv, run_as, log_path);
}

int WaitForExit(pid_t pid, absl::Duration timeout) { return WaitExit(pid, timeout); }

int FreeLoopbackPort() {
  // The kernel may hand out a port again once its probe socket is closed:
  // never give the same one twice in this process.
  static std::mutex mu;
  static std::set<int>* given = new std::set<int>();
  for (int attempt = 0; attempt < 100; ++attempt) {
    const int port = ProbeFreeLoopbackPort();
    std::lock_guard<std::mutex> lock(mu);
    if (port > 0 && given->insert(port).second) return port;
  }
  return 0;
}

bool PollUntil(const std::function<bool()>& condition, absl::Duration timeout,
               absl::Duration interval) {
  absl::Time deadline = absl::Now() + timeout;
  while (true) {
    if (condition()) return true;
    if (absl::Now() >= deadline) return false;
    absl::SleepFor(interval);
  }
}

absl::StatusOr<int> RunCommand(const std::vector<std::string>& argv,
                               const std::string& run_as,
                               const std::string& log_path, absl::Duration timeout) {
  pid_t pid = Spawn(argv, run_as, log_path);
  if (pid < 0) return absl::InternalError("cannot start the command (fork, or no such user)");
  int code = WaitForExit(pid, timeout);
  if (code == -1) {
    kill(pid, SIGKILL);
    WaitForExit(pid, absl::Seconds(10));
    return absl::DeadlineExceededError(absl::StrCat(argv[0], " timed out"));
  }
  return code;
}

absl::Status StopProcess(pid_t* pid, int signal, absl::Duration timeout) {
  if (*pid <= 0) return absl::OkStatus();
  // Only a child of ours: a reaped PID may belong to someone else by now.
  if (waitpid(*pid, nullptr, WNOHANG) != 0) {
    *pid = -1;
    return absl::OkStatus();
  }
  kill(*pid, signal);
  if (WaitForExit(*pid, timeout) == -1) {  // a timeout, not "not our child"
    kill(*pid, SIGKILL);
    WaitForExit(*pid, absl::Seconds(10));
  }
  *pid = -1;
  return absl::OkStatus();
}


int64_t ResidentKib(pid_t pid) {
  std::ifstream status(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) {
      int64_t kib = -1;
      return absl::SimpleAtoi(absl::StripAsciiWhitespace(
                                  absl::StripSuffix(line.substr(6), "kB")),
                              &kib)
                 ? kib
                 : -1;
    }
  }
  return -1;
}

}  // namespace telemetry::local
