// Fuzzes the binary COPY encoder: rows built from arbitrary bytes are
// encoded, decoded again by an independent reader of the format, and must
// come back identical; the stream must be well-formed.
#include <fuzzer/FuzzedDataProvider.h>

#include <bit>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "storage/pg/copy_encoding.h"

namespace {

#define FUZZ_CHECK(cond) \
  do {                   \
    if (!(cond)) __builtin_trap(); \
  } while (0)

class Reader {
 public:
  explicit Reader(const std::string& s) : s_(s) {}
  uint64_t Uint(int n) {
    FUZZ_CHECK(pos_ + static_cast<size_t>(n) <= s_.size());
    uint64_t v = 0;
    for (int i = 0; i < n; ++i) v = (v << 8) | static_cast<unsigned char>(s_[pos_++]);
    return v;
  }
  std::optional<std::string> Field() {
    int32_t len = static_cast<int32_t>(Uint(4));
    if (len == -1) return std::nullopt;
    FUZZ_CHECK(len >= 0 && pos_ + static_cast<size_t>(len) <= s_.size());
    std::string out = s_.substr(pos_, static_cast<size_t>(len));
    pos_ += static_cast<size_t>(len);
    return out;
  }
  bool AtEnd() const { return pos_ == s_.size(); }
  size_t pos_ = 0;

 private:
  const std::string& s_;
};

int64_t BE64(const std::string& s) {
  uint64_t v = 0;
  for (char c : s) v = (v << 8) | static_cast<unsigned char>(c);
  return static_cast<int64_t>(v);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider in(data, size);
  std::vector<telemetry::ReadingRow> rows;
  telemetry::pg::CopyEncoder enc;
  const bool tagged = in.ConsumeBool();
  while (in.remaining_bytes() > 0 && rows.size() < 64) {
    telemetry::ReadingRow r;
    r.timestamp_us = in.ConsumeIntegral<int64_t>();
    r.sensor_id = in.ConsumeRandomLengthString(300);
    if (in.ConsumeBool()) r.sensor_type = in.ConsumeRandomLengthString(60);
    r.value = in.ConsumeFloatingPoint<double>();
    if (in.ConsumeBool()) r.unit = in.ConsumeRandomLengthString(60);
    if (in.ConsumeBool()) r.quality = in.ConsumeProbability<double>();
    if (in.ConsumeBool()) r.metadata_json = in.ConsumeRandomLengthString(200);
    if (tagged) {
      enc.AddTaggedReading(static_cast<int32_t>(rows.size()), r);
    } else {
      enc.AddReading(r);
    }
    rows.push_back(std::move(r));
  }
  FUZZ_CHECK(enc.rows() == static_cast<int64_t>(rows.size()));
  const std::string out = enc.Finish();
  Reader rd(out);
  FUZZ_CHECK(out.compare(0, 11, std::string("PGCOPY\n\377\r\n\0", 11)) == 0);
  rd.pos_ = 11;
  FUZZ_CHECK(rd.Uint(4) == 0 && rd.Uint(4) == 0);
  for (size_t i = 0; i < rows.size(); ++i) {
    const telemetry::ReadingRow& r = rows[i];
    FUZZ_CHECK(rd.Uint(2) == (tagged ? 8u : 7u));
    if (tagged) FUZZ_CHECK(BE64(*rd.Field()) == static_cast<int64_t>(i));
    FUZZ_CHECK(BE64(*rd.Field()) ==
               static_cast<int64_t>(static_cast<uint64_t>(r.timestamp_us) -
                                    static_cast<uint64_t>(telemetry::pg::kPostgresEpochOffsetUs)));
    FUZZ_CHECK(rd.Field() == r.sensor_id);
    FUZZ_CHECK(rd.Field() == r.sensor_type);
    double v = std::bit_cast<double>(static_cast<uint64_t>(BE64(*rd.Field())));
    FUZZ_CHECK(std::memcmp(&v, &r.value, sizeof v) == 0);
    FUZZ_CHECK(rd.Field() == r.unit);
    auto q = rd.Field();
    FUZZ_CHECK(q.has_value() == r.quality.has_value());
    if (q) {
      double qv = std::bit_cast<double>(static_cast<uint64_t>(BE64(*q)));
      FUZZ_CHECK(std::memcmp(&qv, &*r.quality, sizeof qv) == 0);
    }
    auto md = rd.Field();
    FUZZ_CHECK(md.has_value() == r.metadata_json.has_value());
    if (md) FUZZ_CHECK((*md)[0] == '\x01' && md->substr(1) == *r.metadata_json);
  }
  FUZZ_CHECK(rd.Uint(2) == 0xffff);
  FUZZ_CHECK(rd.AtEnd());
  return 0;
}
