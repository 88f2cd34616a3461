// FNV-1a, 64 bits, as 16 lowercase hex digits: a stable content hash (the
// same on every run and machine, unlike absl::Hash) for migration checksums
// and content-derived idempotency keys. Not cryptographic. Header only.
#ifndef TELEMETRY_STORAGE_UTIL_FNV_H_
#define TELEMETRY_STORAGE_UTIL_FNV_H_

#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"

namespace telemetry {

inline std::string Fnv1a64Hex(absl::string_view content) {
  uint64_t h = 14695981039346656037ull;
  for (unsigned char c : content) {
    h ^= c;
    h *= 1099511628211ull;
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out(16, '0');
  for (int i = 15; i >= 0; --i) {
    out[static_cast<size_t>(i)] = kHex[h & 0xf];
    h >>= 4;
  }
  return out;
}

}  // namespace telemetry

#endif  // TELEMETRY_STORAGE_UTIL_FNV_H_
