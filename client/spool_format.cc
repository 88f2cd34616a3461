#include "client/spool_format.h"

#include <zlib.h>

#include <cstdio>
#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"

namespace telemetry::client::spool {
namespace {

constexpr absl::string_view kSegmentSuffix = ".seg";
constexpr size_t kSegmentIdDigits = 20;

void PutU32(std::string& out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
void PutU64(std::string& out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
uint32_t GetU32(const char* p) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(p[i]);
  return v;
}
uint64_t GetU64(const char* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(p[i]);
  return v;
}

uint32_t Checksum(absl::string_view covered) {
  // zlib takes a uInt length: records are at most kMaxPayloadBytes, far below.
  return static_cast<uint32_t>(crc32(crc32(0L, Z_NULL, 0),
                                     reinterpret_cast<const Bytef*>(covered.data()),
                                     static_cast<uInt>(covered.size())));
}

std::string EncodeRecord(RecordType type, uint64_t sequence, absl::string_view payload) {
  std::string out;
  out.reserve(kRecordHeaderBytes + payload.size());
  PutU32(out, static_cast<uint32_t>(payload.size()));
  PutU32(out, 0);  // the checksum, below
  out.push_back(static_cast<char>(type));
  PutU64(out, sequence);
  out.append(payload.data(), payload.size());
  const uint32_t crc = Checksum(absl::string_view(out).substr(8));
  std::string crc_bytes;
  PutU32(crc_bytes, crc);
  out.replace(4, 4, crc_bytes);
  return out;
}

std::string CursorPayload(absl::string_view cursor, absl::string_view rest) {
  std::string payload;
  payload.reserve(4 + cursor.size() + rest.size());
  PutU32(payload, static_cast<uint32_t>(cursor.size()));
  payload.append(cursor.data(), cursor.size());
  payload.append(rest.data(), rest.size());
  return payload;
}

}  // namespace

std::string SegmentFileName(uint64_t id) {
  char name[32];
  std::snprintf(name, sizeof(name), "%020llu", static_cast<unsigned long long>(id));
  return std::string(name) + std::string(kSegmentSuffix);
}

bool ParseSegmentFileName(absl::string_view name, uint64_t* id) {
  if (name.size() != kSegmentIdDigits + kSegmentSuffix.size()) return false;
  if (name.substr(kSegmentIdDigits) != kSegmentSuffix) return false;
  const absl::string_view digits = name.substr(0, kSegmentIdDigits);
  for (char c : digits) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(c))) return false;
  }
  return absl::SimpleAtoi(digits, id);
}

std::string EncodeSegmentHeader(uint64_t id) {
  std::string out(kMagic);
  PutU64(out, id);
  return out;
}

std::string EncodeBatch(uint64_t sequence, absl::string_view cursor,
                        absl::string_view serialized_batch) {
  return EncodeRecord(RecordType::kBatch, sequence, CursorPayload(cursor, serialized_batch));
}

std::string EncodeDone(uint64_t first_sequence, uint64_t count) {
  std::string payload;
  PutU64(payload, count);
  return EncodeRecord(RecordType::kDone, first_sequence, payload);
}

std::string EncodeOrigin(uint64_t next_sequence, absl::string_view cursor) {
  return EncodeRecord(RecordType::kOrigin, next_sequence, CursorPayload(cursor, ""));
}

std::string EncodeRewind(uint64_t next_sequence, absl::string_view cursor) {
  return EncodeRecord(RecordType::kRewind, next_sequence, CursorPayload(cursor, ""));
}

bool DecodeRecordAt(absl::string_view bytes, uint64_t offset, Record* record) {
  if (offset > bytes.size() || bytes.size() - offset < kRecordHeaderBytes) return false;
  const char* p = bytes.data() + offset;
  const uint32_t length = GetU32(p);
  const uint8_t type = static_cast<uint8_t>(p[8]);
  if (length > kMaxPayloadBytes || length > bytes.size() - offset - kRecordHeaderBytes) {
    return false;
  }
  if (type < 1 || type > 4) return false;
  absl::string_view payload(p + kRecordHeaderBytes, length);
  // The payload's own shape, before the (costlier) checksum.
  Record r;
  r.type = static_cast<RecordType>(type);
  r.sequence = GetU64(p + 9);
  r.offset = offset;
  r.size = kRecordHeaderBytes + length;
  switch (r.type) {
    case RecordType::kBatch:
    case RecordType::kOrigin:
    case RecordType::kRewind: {
      if (length < 4) return false;
      const uint32_t cursor_length = GetU32(payload.data());
      if (cursor_length > length - 4) return false;
      if (r.type != RecordType::kBatch && cursor_length != length - 4) return false;
      r.cursor = payload.substr(4, cursor_length);
      if (r.type == RecordType::kBatch) r.batch = payload.substr(4 + cursor_length);
      break;
    }
    case RecordType::kDone:
      if (length != 8) return false;
      r.count = GetU64(payload.data());
      if (r.count == 0) return false;
      break;
  }
  if (Checksum(absl::string_view(p + 8, 9 + length)) != GetU32(p + 4)) return false;
  *record = r;
  return true;
}

DecodedSegment DecodeSegment(absl::string_view bytes) {
  DecodedSegment out;
  if (bytes.size() < kSegmentHeaderBytes || bytes.substr(0, kMagic.size()) != kMagic) {
    out.tail_bytes = bytes.size();
    return out;
  }
  out.header_ok = true;
  out.id = GetU64(bytes.data() + kMagic.size());
  uint64_t pos = kSegmentHeaderBytes;
  out.intact_end = pos;
  Record r;
  while (pos < bytes.size()) {
    if (DecodeRecordAt(bytes, pos, &r)) {
      out.records.push_back(r);
      pos += r.size;
      out.intact_end = pos;
      continue;
    }
    // Damage: find the next offset where a whole record checks out.
    uint64_t next = pos + 1;
    while (next + kRecordHeaderBytes <= bytes.size() && !DecodeRecordAt(bytes, next, &r)) ++next;
    if (next + kRecordHeaderBytes > bytes.size()) break;  // none: a damaged tail
    ++out.damaged_spans;
    out.damaged_bytes += next - pos;
    pos = next;
  }
  out.tail_bytes = bytes.size() - out.intact_end;
  return out;
}

}  // namespace telemetry::client::spool
