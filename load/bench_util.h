// Small helpers shared by the benchmarks (which are programs, not library
// code: a failed step ends the run with its reason).
#ifndef TELEMETRY_LOAD_BENCH_UTIL_H_
#define TELEMETRY_LOAD_BENCH_UTIL_H_

#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/status/status.h"

namespace telemetry::load {

// Exits the benchmark with `what: <message>` unless `s` is OK.
inline void DieUnlessOk(const absl::Status& s, const char* what) {
  if (s.ok()) return;
  std::fprintf(stderr, "%s: %s\n", what, std::string(s.message()).c_str());
  std::exit(1);
}

}  // namespace telemetry::load

#endif  // TELEMETRY_LOAD_BENCH_UTIL_H_
