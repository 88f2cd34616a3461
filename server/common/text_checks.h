// The schema's text limits and the one check every service applies to a
// text field before it reaches a query, so that a reading, a sensor, an
// alert and a maintenance record refuse a bad value in the same words.
// Pure, header only. Thread-safe.
#ifndef TELEMETRY_SERVER_COMMON_TEXT_CHECKS_H_
#define TELEMETRY_SERVER_COMMON_TEXT_CHECKS_H_

#include <cstddef>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace telemetry {

// Column widths in bytes (docs/schema.md): identifiers and locations,
// sensor types and units, alert and task kinds.
inline constexpr size_t kMaxIdBytes = 255;
inline constexpr size_t kMaxTypeBytes = 50;
inline constexpr size_t kMaxKindBytes = 100;

// Whether `s` holds an ASCII control character (C0 or DEL).
inline bool HasControlCharacter(absl::string_view s) {
  for (char c : s) {
    const unsigned char u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) return true;
  }
  return false;
}

// Why `value` is unacceptable for `field`, or "" when it is fine.
inline std::string CheckText(absl::string_view value, absl::string_view field,
                             size_t max_bytes, bool required) {
  if (value.empty()) return required ? absl::StrCat(field, " is empty") : std::string();
  if (value.size() > max_bytes) {
    return absl::StrCat(field, " is ", value.size(), " bytes long; the limit is ", max_bytes);
  }
  if (HasControlCharacter(value)) return absl::StrCat(field, " contains a control character");
  return std::string();
}

}  // namespace telemetry

#endif  // TELEMETRY_SERVER_COMMON_TEXT_CHECKS_H_
