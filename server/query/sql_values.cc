#include "server/query/sql_values.h"

#include <google/protobuf/util/json_util.h>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "storage/pg/copy_writer.h"

namespace telemetry::query {

int64_t ToMicros(const google::protobuf::Timestamp& t) {
  return t.seconds() * 1'000'000 + t.nanos() / 1000;
}

void SetFromMicros(int64_t micros, google::protobuf::Timestamp* t) {
  int64_t seconds = micros / 1'000'000;
  int64_t rem = micros % 1'000'000;
  if (rem < 0) {
    rem += 1'000'000;
    --seconds;
  }
  t->set_seconds(seconds);
  t->set_nanos(static_cast<int32_t>(rem * 1000));
}

absl::StatusOr<google::protobuf::Struct> JsonToStruct(absl::string_view json) {
  google::protobuf::Struct s;
  auto status = google::protobuf::util::JsonStringToMessage(
      std::string(json), &s);
  if (!status.ok()) {
    return absl::InternalError(absl::StrCat("stored JSON does not parse: ",
                                            status.ToString()));
  }
  return s;
}

std::string ToTextArray(const std::vector<std::string>& values) {
  return pg::ToTextArrayLiteral(values);
}

std::vector<std::string> FromTextArray(absl::string_view literal) {
  // PostgreSQL prints text[] as {a,"b c","d\"e"}.
  std::vector<std::string> out;
  if (literal.size() < 2) return out;
  absl::string_view body = literal.substr(1, literal.size() - 2);
  if (body.empty()) return out;
  std::string cur;
  bool quoted = false, in_quotes = false;
  for (size_t i = 0; i < body.size(); ++i) {
    char c = body[i];
    if (in_quotes) {
      if (c == '\\' && i + 1 < body.size()) {
        cur += body[++i];
      } else if (c == '"') {
        in_quotes = false;
      } else {
        cur += c;
      }
    } else if (c == '"') {
      in_quotes = quoted = true;
    } else if (c == ',') {
      out.push_back(cur);
      cur.clear();
      quoted = false;
    } else {
      cur += c;
    }
  }
  (void)quoted;
  out.push_back(cur);
  return out;
}

absl::StatusOr<int64_t> RequiredMicros(const google::protobuf::Timestamp* t,
                                       bool has, absl::string_view field) {
  if (!has) return absl::InvalidArgumentError(absl::StrCat(field, " is required"));
  if (t->nanos() < 0 || t->nanos() > 999'999'999) {
    return absl::InvalidArgumentError(absl::StrCat(field, " is not a valid time"));
  }
  return ToMicros(*t);
}

std::string EncodeToken(const std::vector<std::string>& parts) {
  std::vector<std::string> escaped;
  for (const std::string& p : parts) escaped.push_back(absl::CEscape(p));
  return absl::WebSafeBase64Escape(absl::StrJoin(escaped, "\n"));
}

namespace {

// Whether `s` is well-formed UTF-8 (no overlongs, surrogates or code points
// past U+10FFFF), as PostgreSQL requires of text.
bool IsValidUtf8(absl::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    size_t len;
    uint32_t cp;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      len = 2;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (i + len > s.size()) return false;
    for (size_t k = 1; k < len; ++k) {
      const auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    static constexpr uint32_t kMin[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < kMin[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += len;
  }
  return true;
}

}  // namespace

absl::StatusOr<std::vector<std::string>> DecodeToken(absl::string_view token,
                                                     size_t expected_parts) {
  std::string raw;
  if (!absl::WebSafeBase64Unescape(token, &raw)) {
    return absl::InvalidArgumentError("malformed page token or cursor");
  }
  std::vector<std::string> parts = absl::StrSplit(raw, '\n');
  if (parts.size() != expected_parts) {
    return absl::InvalidArgumentError("malformed page token or cursor");
  }
  for (std::string& p : parts) {
    std::string unescaped;
    // A part goes into a query as text: refuse what PostgreSQL would (with
    // its own words, which a client should not see).
    if (!absl::CUnescape(p, &unescaped) || !IsValidUtf8(unescaped)) {
      return absl::InvalidArgumentError("malformed page token or cursor");
    }
    p = std::move(unescaped);
  }
  return parts;
}

bool IsUuid(absl::string_view s) {
  if (s.size() != 36) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (c != '-') return false;
    } else if (!absl::ascii_isxdigit(static_cast<unsigned char>(c))) {
      return false;
    }
  }
  return true;
}

}  // namespace telemetry::query
