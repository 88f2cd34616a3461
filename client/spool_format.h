// The on-disk format of the edge spool (client::Spool), pure: encoding and
// decoding of records, no files. docs/spool.md describes it for devices
// written in other languages.
//
// A spool is a directory of segments, "<20-digit id>.seg", read in id
// order. A segment is a 16-byte header then records:
//
//   header:  "TGSPOOL1" (8 bytes), the segment's id (u64)
//   record:  length (u32)  crc (u32)  type (u8)  sequence (u64)  payload
//
// All integers little-endian. `crc` is CRC-32 (IEEE 802.3, as zlib's
// crc32) over type, sequence and payload; `length` is the payload's. Types:
//   1 batch:  sequence = the batch's number in the spool (increasing by one
//             per batch across segments); payload = cursor length (u32),
//             the producer's cursor, then the serialised ReadingBatch.
//   2 done:   batches [sequence, sequence + count) need no more sending
//             (acked, or failed for good); payload = count (u64).
//   3 origin: first record of every segment: sequence = the next batch's
//             number; payload = cursor length (u32), the cursor of the last
//             batch appended before it.
//   4 rewind: written by a recovery that found batches lost with later
//             ones intact: the losses before it are dealt with (the
//             producer re-reads its input from the cursor). sequence = the
//             next batch's number; payload as origin's.
//
// Decoding never trusts a byte: a record whose length overruns the segment
// or whose checksum fails is damage; the decoder skips to the next offset
// where a whole record checks out (a false match needs a 32-bit checksum
// collision on a plausible header), and reports what it skipped.
#ifndef TELEMETRY_CLIENT_SPOOL_FORMAT_H_
#define TELEMETRY_CLIENT_SPOOL_FORMAT_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace telemetry::client::spool {

inline constexpr absl::string_view kMagic = "TGSPOOL1";
inline constexpr size_t kSegmentHeaderBytes = 16;
inline constexpr size_t kRecordHeaderBytes = 17;
// No record is larger: a longer length field is damage.
inline constexpr uint32_t kMaxPayloadBytes = 64u << 20;

enum class RecordType : uint8_t { kBatch = 1, kDone = 2, kOrigin = 3, kRewind = 4 };

// The segment file's name for `id`, and the id a name stands for (false if
// it is not a segment's name).
std::string SegmentFileName(uint64_t id);
bool ParseSegmentFileName(absl::string_view name, uint64_t* id);

std::string EncodeSegmentHeader(uint64_t id);
// A whole record, ready to append.
std::string EncodeBatch(uint64_t sequence, absl::string_view cursor,
                        absl::string_view serialized_batch);
std::string EncodeDone(uint64_t first_sequence, uint64_t count);
std::string EncodeOrigin(uint64_t next_sequence, absl::string_view cursor);
std::string EncodeRewind(uint64_t next_sequence, absl::string_view cursor);

// One decoded record; the views point into the decoded bytes.
struct Record {
  RecordType type = RecordType::kBatch;
  uint64_t sequence = 0;
  uint64_t offset = 0;        // of its header in the segment
  uint64_t size = 0;          // header and payload
  absl::string_view cursor;   // kBatch, kOrigin, kRewind
  absl::string_view batch;    // kBatch: the serialised ReadingBatch
  uint64_t count = 0;         // kDone
};

struct DecodedSegment {
  bool header_ok = false;  // magic present (id as the header says)
  uint64_t id = 0;
  std::vector<Record> records;
  // Where the intact data ends: after the last good record (the header when
  // there is none). What follows it is a torn or damaged tail.
  uint64_t intact_end = 0;
  uint64_t tail_bytes = 0;  // bytes after intact_end
  // Damaged stretches with good records after them, and their bytes.
  uint64_t damaged_spans = 0;
  uint64_t damaged_bytes = 0;
};

// Decodes a whole segment file's bytes. Never fails: damage is reported.
DecodedSegment DecodeSegment(absl::string_view bytes);

// Decodes the one record at `offset` of `bytes`; false if there is none
// whole and intact there (too short, implausible, or a checksum mismatch).
bool DecodeRecordAt(absl::string_view bytes, uint64_t offset, Record* record);

}  // namespace telemetry::client::spool

#endif  // TELEMETRY_CLIENT_SPOOL_FORMAT_H_
