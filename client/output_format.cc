#include "client/output_format.h"

#include <algorithm>
#include <charconv>
#include <cmath>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace telemetry::client {

absl::StatusOr<OutputFormat> ParseOutputFormat(absl::string_view name, bool terminal) {
  if (name.empty()) return terminal ? OutputFormat::kTable : OutputFormat::kCsv;
  if (name == "table") return OutputFormat::kTable;
  if (name == "csv") return OutputFormat::kCsv;
  if (name == "json") return OutputFormat::kJson;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown output format '", name, "': use table, csv or json"));
}

std::string FormatDouble(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "Infinity" : "-Infinity";
  char buf[32];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), v);
  return std::string(buf, ec == std::errc() ? end : buf);
}

std::string HumanBytes(uint64_t bytes) {
  if (bytes < 1024) return absl::StrCat(bytes, " B");
  static constexpr const char* kUnits[] = {"KiB", "MiB", "GiB", "TiB", "PiB"};
  double v = static_cast<double>(bytes) / 1024;
  size_t unit = 0;
  while (v >= 1024 && unit + 1 < std::size(kUnits)) {
    v /= 1024;
    ++unit;
  }
  return v < 10 ? absl::StrFormat("%.1f %s", v, kUnits[unit])
                : absl::StrFormat("%.0f %s", v, kUnits[unit]);
}

std::string CsvQuote(absl::string_view cell) {
  if (cell.find_first_of(",\"\n\r") == absl::string_view::npos) return std::string(cell);
  std::string out = "\"";
  for (char c : cell) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

std::string JsonQuote(absl::string_view text) {
  std::string out = "\"";
  for (unsigned char c : text) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          out += absl::StrFormat("\\u%04x", c);
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  return out + "\"";
}

namespace {

class CsvWriter : public RowWriter {
 public:
  CsvWriter(std::vector<Column> columns, std::ostream* out) : out_(*out) {
    for (size_t i = 0; i < columns.size(); ++i) {
      out_ << (i ? "," : "") << CsvQuote(columns[i].name);
    }
    out_ << '\n';
  }
  void Row(const std::vector<Cell>& cells) override {
    for (size_t i = 0; i < cells.size(); ++i) {
      out_ << (i ? "," : "") << (cells[i] ? CsvQuote(*cells[i]) : "");
    }
    out_ << '\n';
  }
  void Finish() override { out_.flush(); }

 private:
  std::ostream& out_;
};

// A JSON array of objects, one per line, so that a large export stays
// readable by line-oriented tools too.
class JsonWriter : public RowWriter {
 public:
  JsonWriter(std::vector<Column> columns, std::ostream* out)
      : columns_(std::move(columns)), out_(*out) {
    out_ << '[';
  }
  void Row(const std::vector<Cell>& cells) override {
    out_ << (rows_++ ? ",\n" : "\n") << '{';
    for (size_t i = 0; i < cells.size(); ++i) {
      out_ << (i ? "," : "") << JsonQuote(columns_[i].name) << ':' << Value(i, cells[i]);
    }
    out_ << '}';
  }
  void Finish() override {
    if (finished_) return;
    finished_ = true;
    out_ << (rows_ ? "\n]\n" : "]\n");
    out_.flush();
  }

 private:
  std::string Value(size_t column, const Cell& cell) const {
    if (!cell) return "null";
    switch (columns_[column].kind) {
      case CellKind::kNumber:
      case CellKind::kBytes: {
        double d;  // JSON has no NaN or Infinity: those stay strings
        return absl::SimpleAtod(*cell, &d) && std::isfinite(d) ? *cell : JsonQuote(*cell);
      }
      case CellKind::kBool:
        return *cell == "true" ? "true" : "false";
      case CellKind::kJson:
        return cell->empty() ? "null" : *cell;
      case CellKind::kText:
        break;
    }
    return JsonQuote(*cell);
  }

  std::vector<Column> columns_;
  std::ostream& out_;
  uint64_t rows_ = 0;
  bool finished_ = false;
};

class TableWriter : public RowWriter {
 public:
  TableWriter(std::vector<Column> columns, std::ostream* out)
      : columns_(std::move(columns)), out_(*out) {}
  ~TableWriter() override = default;

  void Row(const std::vector<Cell>& cells) override {
    std::vector<std::string> shown(cells.size());
    for (size_t i = 0; i < cells.size(); ++i) {
      if (!cells[i]) continue;
      uint64_t bytes;
      shown[i] = columns_[i].kind == CellKind::kBytes && absl::SimpleAtoi(*cells[i], &bytes)
                     ? HumanBytes(bytes)
                     : *cells[i];
    }
    if (widths_.empty()) {
      pending_.push_back(std::move(shown));
      if (pending_.size() >= kSizingRows) Flush();
    } else {
      Print(shown);
    }
  }
  void Finish() override {
    if (finished_) return;
    finished_ = true;
    Flush();
    out_.flush();
  }

 private:
  static constexpr size_t kSizingRows = 500;

  void Flush() {
    if (!widths_.empty()) return;
    widths_.resize(columns_.size());
    for (size_t i = 0; i < columns_.size(); ++i) widths_[i] = columns_[i].name.size();
    for (const auto& row : pending_) {
      for (size_t i = 0; i < row.size(); ++i) widths_[i] = std::max(widths_[i], row[i].size());
    }
    std::vector<std::string> header;
    for (const Column& c : columns_) header.push_back(c.name);
    Print(header, /*header=*/true);
    std::string rule;
    for (size_t i = 0; i < widths_.size(); ++i) {
      rule += std::string(widths_[i], '-') + (i + 1 < widths_.size() ? "-+-" : "");
    }
    out_ << rule << '\n';
    for (const auto& row : pending_) Print(row);
    pending_.clear();
  }

  void Print(const std::vector<std::string>& row, bool header = false) {
    std::string line;
    for (size_t i = 0; i < row.size(); ++i) {
      const size_t pad = widths_[i] > row[i].size() ? widths_[i] - row[i].size() : 0;
      const bool right = !header && (columns_[i].kind == CellKind::kNumber ||
                                     columns_[i].kind == CellKind::kBytes);
      if (right) line.append(pad, ' ');
      line += row[i];
      if (i + 1 < row.size()) {
        if (!right) line.append(pad, ' ');
        line += " | ";
      }
    }
    out_ << line << '\n';
  }

  std::vector<Column> columns_;
  std::ostream& out_;
  std::vector<std::vector<std::string>> pending_;
  std::vector<size_t> widths_;
  bool finished_ = false;
};

}  // namespace

std::unique_ptr<RowWriter> RowWriter::Create(OutputFormat format, std::vector<Column> columns,
                                             std::ostream* out) {
  switch (format) {
    case OutputFormat::kCsv:
      return std::make_unique<CsvWriter>(std::move(columns), out);
    case OutputFormat::kJson:
      return std::make_unique<JsonWriter>(std::move(columns), out);
    case OutputFormat::kTable:
      break;
  }
  return std::make_unique<TableWriter>(std::move(columns), out);
}

}  // namespace telemetry::client
