// How telemetryctl prints rows: an aligned table for people (the default on
// a terminal), CSV or JSON for scripts (the default when piped is CSV).
// Cells are given in their canonical text (numbers in shortest round-trip
// form, times in RFC 3339 UTC); the column's kind says how each format shows
// them: JSON leaves numbers unquoted, a table right-aligns them and prints
// byte counts as KiB/MiB/GiB.
//
// Rows stream: CSV and JSON write each row at once, a table sizes its
// columns on the first 500 rows and then streams with those widths.
// Not thread-safe.
#ifndef TELEMETRY_CLIENT_OUTPUT_FORMAT_H_
#define TELEMETRY_CLIENT_OUTPUT_FORMAT_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace telemetry::client {

enum class OutputFormat { kTable, kCsv, kJson };

// "table", "csv" or "json"; "" picks table when `terminal`, else csv.
absl::StatusOr<OutputFormat> ParseOutputFormat(absl::string_view name, bool terminal);

enum class CellKind {
  kText,
  kNumber,  // unquoted in JSON, right-aligned in a table
  kBytes,   // a number of bytes: human-readable in a table
  kBool,    // "true"/"false"
  kJson,    // already JSON (an object): raw in JSON, as text in CSV/table
};

struct Column {
  std::string name;
  CellKind kind = CellKind::kText;
};

// An absent cell is empty in CSV and a table, null in JSON.
using Cell = std::optional<std::string>;

class RowWriter {
 public:
  static std::unique_ptr<RowWriter> Create(OutputFormat format, std::vector<Column> columns,
                                           std::ostream* out);
  virtual ~RowWriter() = default;
  // `cells` has one entry per column.
  virtual void Row(const std::vector<Cell>& cells) = 0;
  // Writes what is buffered and the closing text (JSON's ']'). Idempotent.
  virtual void Finish() = 0;
};

// The shortest text that reads back as the same double (what psql prints
// with extra_float_digits = 1): 21.5, 0.1, 1e+300.
std::string FormatDouble(double v);
// 1536 -> "1.5 KiB"; below 1 KiB, "512 B".
std::string HumanBytes(uint64_t bytes);
// RFC 4180 quoting where needed.
std::string CsvQuote(absl::string_view cell);
// A JSON string literal.
std::string JsonQuote(absl::string_view text);

}  // namespace telemetry::client

#endif  // TELEMETRY_CLIENT_OUTPUT_FORMAT_H_
