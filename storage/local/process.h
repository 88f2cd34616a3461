// Child processes for the local servers (tests, benchmarks): started in
// their own process group, optionally as another user, stopped by PID and
// never by name. Every function is thread-safe; a PID is waited for by the
// thread that started it.
#ifndef TELEMETRY_STORAGE_LOCAL_PROCESS_H_
#define TELEMETRY_STORAGE_LOCAL_PROCESS_H_

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace telemetry::local {

// A free TCP port on 127.0.0.1 (bound, released), below the ephemeral
// range so that no outgoing connection takes it before the server binds,
// and never one this process was given before.
int FreeLoopbackPort();

// Polls `condition` every `interval` until it holds or `timeout` passes.
// Returns whether it held. For waiting on other processes; a condition
// that costs a connection or a query deserves a longer interval.
bool PollUntil(const std::function<bool()>& condition,
               absl::Duration timeout = absl::Seconds(30),
               absl::Duration interval = absl::Milliseconds(5));

// A fresh directory $TMPDIR/<prefix>-XXXXXX (or /tmp), or "" on failure.
std::string MakeTempDir(const char* prefix);

// The user PostgreSQL (and Patroni, which runs it) must run as: "postgres"
// when we are root (PostgreSQL refuses root), "" (ourselves) otherwise.
std::string PostgresUser();

// Gives `path` and everything under it to `user` ("" : nothing to do).
void ChownTree(const std::string& path, const std::string& user);

// Starts `argv` in the background (its own process group; output to
// `log_path` when non-empty; as `run_as` when non-empty). The child gets
// SIGTERM when this process dies. Returns its PID, or -1 (also for an
// unknown `run_as`).
pid_t SpawnProcess(const std::vector<std::string>& argv,
                   const std::string& log_path = "");
pid_t SpawnProcessAs(const std::vector<std::string>& argv, const std::string& run_as,
                     const std::string& log_path);

// Waits up to `timeout` for child `pid` to exit; its exit code (128+signal
// when killed), -1 on timeout, kNotOurChild when `pid` is not a child of
// ours (any more) or not a PID.
inline constexpr int kNotOurChild = -2;
int WaitForExit(pid_t pid, absl::Duration timeout);

// Sends `signal` to child *pid, waits up to `timeout` for it to exit (then
// SIGKILL), and sets *pid to -1. Nothing when *pid <= 0 or is no longer a
// running child of ours (never a signal to a PID that may be reused).
absl::Status StopProcess(pid_t* pid, int signal, absl::Duration timeout);

// Runs `argv` as a child process (optionally as user `run_as`), waits for
// it up to `timeout` (then kills it: DeadlineExceeded), and returns its
// exit code; output goes to `log_path` when non-empty.
absl::StatusOr<int> RunCommand(const std::vector<std::string>& argv,
                               const std::string& run_as = "",
                               const std::string& log_path = "",
                               absl::Duration timeout = absl::Minutes(5));

// The resident set of process `pid` in KiB (VmRSS in /proc), or -1.
int64_t ResidentKib(pid_t pid);

}  // namespace telemetry::local

#endif  // TELEMETRY_STORAGE_LOCAL_PROCESS_H_
