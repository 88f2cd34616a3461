// Fuzzes the edge spool's segment decoder (client/spool_format.h): any
// bytes a power loss or a bad disk could leave must decode without a
// crash, into records that lie inside the input, in order, without
// overlap, each re-encoding to exactly the bytes it was read from.
#include <cstddef>
#include <cstdint>
#include <string>

#include "client/spool_format.h"

namespace spool = telemetry::client::spool;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string input(reinterpret_cast<const char*>(data), size);
  // As the spool sees a file: with a valid header in front (so the record
  // decoder is reached), and as it is.
  for (const std::string& bytes : {spool::EncodeSegmentHeader(1) + input, input}) {
    const spool::DecodedSegment d = spool::DecodeSegment(bytes);
    if (!d.header_ok) {
      if (!d.records.empty()) __builtin_trap();
      continue;
    }
    if (d.intact_end + d.tail_bytes != bytes.size()) __builtin_trap();
    uint64_t end = spool::kSegmentHeaderBytes;
    for (const spool::Record& r : d.records) {
      if (r.offset < end || r.offset + r.size > d.intact_end) __builtin_trap();
      end = r.offset + r.size;
      std::string again;
      switch (r.type) {
        case spool::RecordType::kBatch:
          again = spool::EncodeBatch(r.sequence, r.cursor, r.batch);
          break;
        case spool::RecordType::kDone:
          again = spool::EncodeDone(r.sequence, r.count);
          break;
        case spool::RecordType::kOrigin:
          again = spool::EncodeOrigin(r.sequence, r.cursor);
          break;
        case spool::RecordType::kRewind:
          again = spool::EncodeRewind(r.sequence, r.cursor);
          break;
      }
      if (bytes.compare(r.offset, r.size, again) != 0) __builtin_trap();
    }
    if (!d.records.empty() && end != d.intact_end) __builtin_trap();
  }
  return 0;
}
