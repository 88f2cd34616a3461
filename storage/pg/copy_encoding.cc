#include "storage/pg/copy_encoding.h"

#include <bit>
#include <cstring>

namespace telemetry::pg {
namespace {

template <typename T>
T ToBigEndian(T v) {
  if constexpr (std::endian::native == std::endian::big) return v;
  if constexpr (sizeof(T) == 2) return static_cast<T>(__builtin_bswap16(v));
  if constexpr (sizeof(T) == 4) return static_cast<T>(__builtin_bswap32(v));
  if constexpr (sizeof(T) == 8) return static_cast<T>(__builtin_bswap64(v));
}

constexpr char kSignature[] = "PGCOPY\n\377\r\n";  // + the terminating NUL

}  // namespace

CopyEncoder::CopyEncoder() {
  buf_.reserve(64 * 1024);
  buf_.append(kSignature, sizeof(kSignature));  // 11 bytes incl. NUL
  PutInt32(0);                                  // flags: no OIDs
  PutInt32(0);                                  // header extension length
}

void CopyEncoder::PutInt16(int16_t v) {
  uint16_t be = ToBigEndian(static_cast<uint16_t>(v));
  buf_.append(reinterpret_cast<const char*>(&be), sizeof(be));
}

void CopyEncoder::PutInt32(int32_t v) {
  uint32_t be = ToBigEndian(static_cast<uint32_t>(v));
  buf_.append(reinterpret_cast<const char*>(&be), sizeof(be));
}

void CopyEncoder::PutInt64(int64_t v) {
  uint64_t be = ToBigEndian(static_cast<uint64_t>(v));
  buf_.append(reinterpret_cast<const char*>(&be), sizeof(be));
}

void CopyEncoder::PutFloat8(double v) {
  PutInt32(8);
  PutInt64(std::bit_cast<int64_t>(v));
}

void CopyEncoder::PutText(absl::string_view s) {
  PutInt32(static_cast<int32_t>(s.size()));
  buf_.append(s.data(), s.size());
}

void CopyEncoder::PutFields(const ReadingRow& row) {
  PutInt32(8);  // timestamptz: int64 microseconds since 2000-01-01 UTC
  // Wrapping arithmetic: defined for any input (validated rows are far
  // inside the range; PostgreSQL rejects what is not).
  PutInt64(static_cast<int64_t>(static_cast<uint64_t>(row.timestamp_us) -
                                static_cast<uint64_t>(kPostgresEpochOffsetUs)));
  PutText(row.sensor_id);
  if (row.sensor_type) {
    PutText(*row.sensor_type);
  } else {
    PutNull();
  }
  PutFloat8(row.value);
  if (row.unit) {
    PutText(*row.unit);
  } else {
    PutNull();
  }
  if (row.quality) {
    PutFloat8(*row.quality);
  } else {
    PutNull();
  }
  if (row.metadata_json) {
    // jsonb binary input: a version byte (1) followed by the JSON text.
    PutInt32(static_cast<int32_t>(row.metadata_json->size() + 1));
    buf_.push_back('\x01');
    buf_.append(*row.metadata_json);
  } else {
    PutNull();
  }
}

void CopyEncoder::AddReading(const ReadingRow& row) {
  PutInt16(7);
  PutFields(row);
  ++rows_;
}

void CopyEncoder::AddTaggedReading(int32_t tag, const ReadingRow& row) {
  PutInt16(8);
  PutInt32(4);
  PutInt32(tag);
  PutFields(row);
  ++rows_;
}

std::string CopyEncoder::Finish() {
  PutInt16(-1);
  return std::move(buf_);
}

}  // namespace telemetry::pg
