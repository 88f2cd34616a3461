#include "server/common/metadata_json.h"

#include <charconv>
#include <cmath>

#include "absl/strings/str_cat.h"

namespace telemetry {
namespace {

class JsonWriter {
 public:
  JsonWriter(size_t max_bytes, int max_depth)
      : max_bytes_(max_bytes), max_depth_(max_depth) {}

  absl::Status WriteStruct(const google::protobuf::Struct& s,
                           const std::string& path, int depth) {
    if (depth > max_depth_) {
      return absl::InvalidArgumentError(absl::StrCat(
          path, " is nested deeper than ", max_depth_, " levels"));
    }
    out_ += '{';
    bool first = true;
    // Struct's map has no defined order; sort keys so equal metadata always
    // produces equal JSON (and stable test expectations).
    std::vector<const std::string*> keys;
    keys.reserve(static_cast<size_t>(s.fields_size()));
    for (const auto& [k, v] : s.fields()) keys.push_back(&k);
    std::sort(keys.begin(), keys.end(),
              [](const std::string* a, const std::string* b) { return *a < *b; });
    for (const std::string* key : keys) {
      if (!first) out_ += ',';
      first = false;
      std::string child = absl::StrCat(path, ".", *key);
      if (absl::Status st = WriteString(*key, child); !st.ok()) return st;
      out_ += ':';
      if (absl::Status st = WriteValue(s.fields().at(*key), child, depth + 1);
          !st.ok()) {
        return st;
      }
    }
    out_ += '}';
    return CheckSize(path);
  }

  std::string Take() { return std::move(out_); }

 private:
  absl::Status CheckSize(const std::string& path) {
    if (out_.size() > max_bytes_) {
      return absl::InvalidArgumentError(absl::StrCat(
          path.substr(0, path.find('.')), " is larger than ", max_bytes_,
          " bytes as JSON"));
    }
    return absl::OkStatus();
  }

  absl::Status WriteValue(const google::protobuf::Value& v,
                          const std::string& path, int depth) {
    using google::protobuf::Value;
    switch (v.kind_case()) {
      case Value::kNullValue:
      case Value::KIND_NOT_SET:
        out_ += "null";
        return absl::OkStatus();
      case Value::kBoolValue:
        out_ += v.bool_value() ? "true" : "false";
        return absl::OkStatus();
      case Value::kNumberValue: {
        double d = v.number_value();
        if (!std::isfinite(d)) {
          return absl::InvalidArgumentError(
              absl::StrCat(path, " is not a finite number"));
        }
        char buf[32];
        auto res = std::to_chars(buf, buf + sizeof(buf), d);
        out_.append(buf, res.ptr);
        return absl::OkStatus();
      }
      case Value::kStringValue:
        return WriteString(v.string_value(), path);
      case Value::kStructValue:
        return WriteStruct(v.struct_value(), path, depth);
      case Value::kListValue: {
        if (depth > max_depth_) {
          return absl::InvalidArgumentError(absl::StrCat(
              path, " is nested deeper than ", max_depth_, " levels"));
        }
        out_ += '[';
        int i = 0;
        for (const Value& e : v.list_value().values()) {
          if (i) out_ += ',';
          if (absl::Status st =
                  WriteValue(e, absl::StrCat(path, "[", i, "]"), depth + 1);
              !st.ok()) {
            return st;
          }
          ++i;
        }
        out_ += ']';
        return CheckSize(path);
      }
    }
    return absl::InvalidArgumentError(absl::StrCat(path, " has an unknown kind"));
  }

  absl::Status WriteString(const std::string& s, const std::string& path) {
    static constexpr char kHex[] = "0123456789abcdef";
    out_ += '"';
    for (char c : s) {
      unsigned char u = static_cast<unsigned char>(c);
      switch (c) {
        case '"': out_ += "\\\""; break;
        case '\\': out_ += "\\\\"; break;
        case '\n': out_ += "\\n"; break;
        case '\r': out_ += "\\r"; break;
        case '\t': out_ += "\\t"; break;
        default:
          if (u == 0) {
            return absl::InvalidArgumentError(
                absl::StrCat(path, " contains a NUL character"));
          }
          if (u < 0x20) {
            out_ += "\\u00";
            out_ += kHex[u >> 4];
            out_ += kHex[u & 0xf];
          } else {
            out_ += c;
          }
      }
    }
    out_ += '"';
    return CheckSize(path);
  }

  const size_t max_bytes_;
  const int max_depth_;
  std::string out_;
};

}  // namespace

absl::StatusOr<std::string> MetadataToJson(const google::protobuf::Struct& s,
                                           size_t max_bytes, int max_depth) {
  JsonWriter w(max_bytes, max_depth);
  if (absl::Status st = w.WriteStruct(s, "metadata", 1); !st.ok()) return st;
  return w.Take();
}

}  // namespace telemetry
