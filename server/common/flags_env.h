// Settings with environment fallbacks: a non-empty flag wins, then the named
// environment variable, then the built-in default. String flags that have an
// environment fallback therefore default to "" (meaning "not given").
#ifndef TELEMETRY_SERVER_COMMON_FLAGS_ENV_H_
#define TELEMETRY_SERVER_COMMON_FLAGS_ENV_H_

#include <cstdlib>
#include <string>

#include "absl/flags/flag.h"

namespace telemetry {

inline std::string FlagOrEnv(const absl::Flag<std::string>& flag,
                             const char* env_name,
                             const std::string& fallback = "") {
  std::string value = absl::GetFlag(flag);
  if (!value.empty()) return value;
  if (const char* v = std::getenv(env_name); v != nullptr && *v != '\0') {
    return v;
  }
  return fallback;
}

}  // namespace telemetry

#endif  // TELEMETRY_SERVER_COMMON_FLAGS_ENV_H_
