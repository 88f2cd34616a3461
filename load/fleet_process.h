// The benchmarks that measure the gateway as a user runs it: the gateway
// (a built ingest-gateway) and the fleet (loadgen) each in their own
// process, on loopback. Header only; programs, not library code.
#ifndef TELEMETRY_LOAD_FLEET_PROCESS_H_
#define TELEMETRY_LOAD_FLEET_PROCESS_H_

#include <signal.h>
#include <sys/types.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "load/bench_util.h"
#include "storage/local/http_get.h"
#include "storage/local/local_servers.h"
#include "storage/pg/connection.h"

namespace telemetry::load {



// CPU time (user + system) `pid` has used, in seconds; -1 if unknown.
inline double ProcessCpuSeconds(pid_t pid) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/stat"));
  std::string stat((std::istreambuf_iterator<char>(in)), {});
  size_t close = stat.rfind(')');  // the command name may hold spaces
  if (close == std::string::npos) return -1;
  std::vector<std::string> fields;
  std::string field;
  for (size_t i = close + 2; i <= stat.size(); ++i) {
    if (i == stat.size() || stat[i] == ' ') {
      fields.push_back(field);
      field.clear();
    } else {
      field += stat[i];
    }
  }
  // Fields after the name start at 3 (state); utime and stime are 14, 15.
  if (fields.size() < 13) return -1;
  double utime = 0, stime = 0;
  if (!absl::SimpleAtod(fields[11], &utime) || !absl::SimpleAtod(fields[12], &stime)) return -1;
  return (utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

// CPU seconds used so far by the live processes whose working directory is
// `dir`: every process of a PostgreSQL server runs in its data directory.
// Short-lived backends that exited are not counted.
inline double CpuSecondsOfProcessesIn(const std::string& dir) {
  std::error_code ec;
  const std::filesystem::path target = std::filesystem::canonical(dir, ec);
  if (ec) return -1;
  double total = 0;
  for (const auto& entry : std::filesystem::directory_iterator("/proc", ec)) {
    const std::string name = entry.path().filename();
    if (name.empty() || name[0] < '0' || name[0] > '9') continue;
    std::error_code link_ec;
    if (std::filesystem::read_symlink(entry.path() / "cwd", link_ec) != target) continue;
    const double cpu = ProcessCpuSeconds(static_cast<pid_t>(std::stol(name)));
    if (cpu > 0) total += cpu;
  }
  return total;
}

// An ingest-gateway process with plaintext loopback listeners, device
// authentication off, over `database_url` and `redis_url`.
class GatewayProcess {
 public:
  GatewayProcess(std::string binary, std::string database_url, std::string redis_url,
                 std::vector<std::string> extra_flags = {})
      : binary_(std::move(binary)), database_url_(std::move(database_url)),
        redis_url_(std::move(redis_url)), extra_flags_(std::move(extra_flags)) {}
  ~GatewayProcess() { Stop(); }
  GatewayProcess(const GatewayProcess&) = delete;
  GatewayProcess& operator=(const GatewayProcess&) = delete;

  // Starts it and waits for its metrics endpoint; ends the program if it
  // does not come up.
  void Start() {
    port_ = local::FreeLoopbackPort();
    metrics_port_ = local::FreeLoopbackPort();
    std::vector<std::string> argv = {
        binary_, "--plaintext", "--device_auth=false",
        absl::StrCat("--database_url=", database_url_), absl::StrCat("--redis_url=", redis_url_),
        absl::StrCat("--listen=127.0.0.1:", port_),
        absl::StrCat("--metrics_listen=127.0.0.1:", metrics_port_)};
    argv.insert(argv.end(), extra_flags_.begin(), extra_flags_.end());
    pid_ = local::SpawnProcess(argv, log_);
    if (!local::PollUntil([&] { return local::HttpGet(metrics_port_, "/metrics").ok(); })) {
      DieUnlessOk(absl::UnavailableError(absl::StrCat("did not start; see ", log_)),
                  binary_.c_str());
    }
  }
  void Stop() {
    if (pid_ <= 0) return;
    kill(pid_, SIGTERM);
    if (local::WaitForExit(pid_, absl::Seconds(60)) == -1) {  // timed out
      kill(pid_, SIGKILL);
      local::WaitForExit(pid_, absl::Seconds(10));
    }
    pid_ = -1;
  }
  int port() const { return port_; }
  int metrics_port() const { return metrics_port_; }
  pid_t pid() const { return pid_; }

 private:
  const std::string binary_, database_url_, redis_url_;
  const std::vector<std::string> extra_flags_;
  const std::string log_ = "/tmp/tg-bench-gateway.log";
  int port_ = 0, metrics_port_ = 0;
  pid_t pid_ = -1;
};

// The number `key` holds in a one-line JSON object (-1 when absent).
inline double JsonNumber(const std::string& json, const std::string& key) {
  size_t at = json.find(absl::StrCat("\"", key, "\":"));
  if (at == std::string::npos) return -1;
  at += key.size() + 3;
  size_t end = json.find_first_of(",}", at);
  double v = -1;
  if (!absl::SimpleAtod(json.substr(at, end - at), &v)) return -1;
  return v;
}

// Runs loadgen (--plaintext --quiet --json plus `args`) against the
// gateways at `target` (one address or a comma-separated list), waits at
// most `timeout`, and returns its JSON summary line. Ends the program
// unless loadgen verified its run ("ok":true). `loadgen` is this build's
// unless a before/after run names another.
inline std::string RunLoadgenAt(const std::string& target, const std::vector<std::string>& args,
                                absl::Duration timeout,
                                const std::string& loadgen = LOADGEN_PATH) {
  const std::string out = "/tmp/tg-bench-loadgen.txt";
  std::vector<std::string> argv = {loadgen, "--plaintext", "--quiet", "--json",
                                   absl::StrCat("--target=", target)};
  argv.insert(argv.end(), args.begin(), args.end());
  pid_t pid = local::SpawnProcess(argv, out);
  int code = local::WaitForExit(pid, timeout);
  if (code == -1) {  // timed out
    kill(pid, SIGKILL);
    local::WaitForExit(pid, absl::Seconds(10));
  }
  std::ifstream in(out);
  std::string line, json;
  while (std::getline(in, line)) {
    if (!line.empty() && line[0] == '{') json = line;
  }
  if (code != 0 || json.empty() || json.find("\"ok\":true") == std::string::npos) {
    DieUnlessOk(absl::InternalError(absl::StrCat("loadgen exited ", code, "; see ", out)),
                "fleet");
  }
  return json;
}

// RunLoadgenAt for the one gateway on 127.0.0.1:`port`.
inline std::string RunLoadgen(int port, const std::vector<std::string>& args,
                              absl::Duration timeout,
                              const std::string& loadgen = LOADGEN_PATH) {
  return RunLoadgenAt(absl::StrCat("127.0.0.1:", port), args, timeout, loadgen);
}

}  // namespace telemetry::load

#endif  // TELEMETRY_LOAD_FLEET_PROCESS_H_
