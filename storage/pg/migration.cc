#include "storage/pg/migration.h"

#include <algorithm>
#include <cctype>
#include <map>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "storage/pg/migrations_embedded.h"
#include "storage/util/fnv.h"

namespace telemetry::pg {

absl::string_view StorageModeName(StorageMode mode) {
  return mode == StorageMode::kTimescale ? "timescale" : "native";
}

absl::StatusOr<StorageMode> ParseStorageMode(absl::string_view name) {
  if (name == "native") return StorageMode::kNative;
  if (name == "timescale") return StorageMode::kTimescale;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown storage mode '", name,
                   "' (expected native, timescale or auto)"));
}

std::string ChecksumHex(absl::string_view content) { return Fnv1a64Hex(content); }

absl::StatusOr<Migration> ParseMigration(absl::string_view file_name,
                                         absl::string_view content) {
  Migration m;
  m.file_name = std::string(file_name);
  absl::string_view stem = file_name;
  if (!absl::ConsumeSuffix(&stem, ".sql")) {
    return absl::InvalidArgumentError(
        absl::StrCat(file_name, ": migration files end in .sql"));
  }
  std::vector<absl::string_view> parts = absl::StrSplit(stem, '.');
  if (parts.size() > 2) {
    return absl::InvalidArgumentError(
        absl::StrCat(file_name, ": expected NNNN_name[.mode].sql"));
  }
  if (parts.size() == 2) {
    if (!ParseStorageMode(parts[1]).ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(file_name, ": unknown mode suffix '", parts[1], "'"));
    }
    m.mode = std::string(parts[1]);
  }
  std::pair<absl::string_view, absl::string_view> vn =
      absl::StrSplit(parts[0], absl::MaxSplits('_', 1));
  if (!absl::SimpleAtoi(vn.first, &m.version) || m.version <= 0 ||
      vn.second.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(file_name, ": expected a positive version prefix"));
  }
  m.name = std::string(vn.second);

  enum { kHeader, kUp, kDown } section = kHeader;
  absl::string_view body = content;
  absl::ConsumeSuffix(&body, "\n");  // no empty line after the last newline
  for (absl::string_view line : absl::StrSplit(body, '\n')) {
    absl::string_view t = absl::StripAsciiWhitespace(line);
    if (t == "-- +migrate up") {
      section = kUp;
      continue;
    }
    if (t == "-- +migrate down") {
      section = kDown;
      continue;
    }
    if (section == kHeader) {
      if (absl::StartsWith(t, "-- transaction:")) {
        absl::string_view v =
            absl::StripAsciiWhitespace(t.substr(strlen("-- transaction:")));
        m.transactional = v != "none";
      }
      continue;
    }
    std::string& target = section == kUp ? m.up_sql : m.down_sql;
    absl::StrAppend(&target, line, "\n");
  }
  if (SplitSqlStatements(m.up_sql).empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(file_name, ": no '-- +migrate up' statements"));
  }
  m.checksum = ChecksumHex(content);
  return m;
}

absl::StatusOr<std::vector<Migration>> LoadEmbeddedMigrations() {
  std::vector<Migration> out;
  std::map<std::pair<int, std::string>, std::string> seen;
  for (const EmbeddedFile& f : EmbeddedMigrationFiles()) {
    absl::StatusOr<Migration> m = ParseMigration(f.name, f.content);
    if (!m.ok()) return m.status();
    auto [it, inserted] =
        seen.emplace(std::make_pair(m->version, m->mode), m->file_name);
    if (!inserted) {
      return absl::InternalError(absl::StrCat(
          "migrations ", it->second, " and ", m->file_name,
          " share version ", m->version));
    }
    out.push_back(*std::move(m));
  }
  std::sort(out.begin(), out.end(), [](const Migration& a, const Migration& b) {
    return a.version != b.version ? a.version < b.version : a.mode < b.mode;
  });
  return out;
}

namespace {

bool OnlyCommentsOrSpace(absl::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    if (std::isspace(static_cast<unsigned char>(s[i]))) {
      ++i;
    } else if (s.substr(i, 2) == "--") {
      size_t nl = s.find('\n', i);
      i = nl == absl::string_view::npos ? s.size() : nl + 1;
    } else if (s.substr(i, 2) == "/*") {
      size_t end = s.find("*/", i + 2);
      i = end == absl::string_view::npos ? s.size() : end + 2;
    } else {
      return false;
    }
  }
  return true;
}

// Returns the dollar-quote tag starting at s[i] ("$$" or "$tag$"), or "".
absl::string_view DollarTag(absl::string_view s, size_t i) {
  if (s[i] != '$') return {};
  size_t j = i + 1;
  while (j < s.size() && (std::isalnum(static_cast<unsigned char>(s[j])) ||
                          s[j] == '_')) {
    ++j;
  }
  if (j < s.size() && s[j] == '$') {
    // A tag may not start with a digit ($1 is a parameter).
    if (j > i + 1 && std::isdigit(static_cast<unsigned char>(s[i + 1]))) {
      return {};
    }
    return s.substr(i, j - i + 1);
  }
  return {};
}

}  // namespace

std::vector<std::string> SplitSqlStatements(absl::string_view sql) {
  std::vector<std::string> out;
  size_t start = 0;
  size_t i = 0;
  int block_depth = 0;
  auto emit = [&](size_t end) {
    absl::string_view stmt = sql.substr(start, end - start);
    if (!OnlyCommentsOrSpace(stmt)) {
      out.emplace_back(absl::StripAsciiWhitespace(stmt));
    }
    start = end + 1;
  };
  while (i < sql.size()) {
    char c = sql[i];
    if (block_depth > 0) {
      if (sql.substr(i, 2) == "/*") {
        ++block_depth;
        i += 2;
      } else if (sql.substr(i, 2) == "*/") {
        --block_depth;
        i += 2;
      } else {
        ++i;
      }
      continue;
    }
    if (sql.substr(i, 2) == "--") {
      size_t nl = sql.find('\n', i);
      i = nl == absl::string_view::npos ? sql.size() : nl + 1;
    } else if (sql.substr(i, 2) == "/*") {
      block_depth = 1;
      i += 2;
    } else if (c == '\'' || c == '"') {
      bool backslash_escapes =
          c == '\'' && i > 0 && (sql[i - 1] == 'E' || sql[i - 1] == 'e');
      ++i;
      while (i < sql.size()) {
        if (backslash_escapes && sql[i] == '\\') {
          i += 2;
        } else if (sql[i] == c) {
          if (i + 1 < sql.size() && sql[i + 1] == c) {
            i += 2;  // doubled quote
          } else {
            ++i;
            break;
          }
        } else {
          ++i;
        }
      }
    } else if (c == '$' && !DollarTag(sql, i).empty()) {
      absl::string_view tag = DollarTag(sql, i);
      size_t end = sql.find(tag, i + tag.size());
      i = end == absl::string_view::npos ? sql.size() : end + tag.size();
    } else if (c == ';') {
      emit(i);
      ++i;
    } else {
      ++i;
    }
  }
  if (start < sql.size()) emit(sql.size());
  return out;
}

}  // namespace telemetry::pg
