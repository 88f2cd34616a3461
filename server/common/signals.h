// Shutdown signals for the server binaries: block SIGINT/SIGTERM in every
// thread (call before any thread starts), then wait for one on the main
// thread and shut down in order.
#ifndef TELEMETRY_SERVER_COMMON_SIGNALS_H_
#define TELEMETRY_SERVER_COMMON_SIGNALS_H_

#include <signal.h>

#include <cstring>
#include <string>

namespace telemetry {

class TerminationSignals {
 public:
  // Blocks SIGINT and SIGTERM for this thread and the threads it creates.
  TerminationSignals() {
    sigemptyset(&set_);
    sigaddset(&set_, SIGINT);
    sigaddset(&set_, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set_, nullptr);
  }
  // Waits for SIGINT or SIGTERM and returns its name.
  std::string Wait() {
    int sig = 0;
    sigwait(&set_, &sig);
    return strsignal(sig);
  }

 private:
  sigset_t set_;
};

}  // namespace telemetry

#endif  // TELEMETRY_SERVER_COMMON_SIGNALS_H_
