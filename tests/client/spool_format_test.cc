// The spool's segment format: round trips, and every kind of damage found
// and bounded.
#include "client/spool_format.h"

#include <gtest/gtest.h>

#include <string>

namespace telemetry::client::spool {
namespace {

std::string SegmentOf(int batches, uint64_t first = 1) {
  std::string bytes = EncodeSegmentHeader(7) + EncodeOrigin(first, "c0");
  for (int i = 0; i < batches; ++i) {
    bytes += EncodeBatch(first + i, "cursor-" + std::to_string(i),
                         "payload-" + std::string(50 + i, 'x'));
  }
  return bytes;
}

TEST(SpoolFormatTest, RecordsRoundTrip) {
  std::string bytes = SegmentOf(3) + EncodeDone(1, 2);
  DecodedSegment d = DecodeSegment(bytes);
  ASSERT_TRUE(d.header_ok);
  EXPECT_EQ(d.id, 7u);
  ASSERT_EQ(d.records.size(), 5u);
  EXPECT_EQ(d.records[0].type, RecordType::kOrigin);
  EXPECT_EQ(d.records[0].sequence, 1u);
  EXPECT_EQ(d.records[0].cursor, "c0");
  EXPECT_EQ(d.records[2].type, RecordType::kBatch);
  EXPECT_EQ(d.records[2].sequence, 2u);
  EXPECT_EQ(d.records[2].cursor, "cursor-1");
  EXPECT_EQ(d.records[2].batch, "payload-" + std::string(51, 'x'));
  EXPECT_EQ(d.records[4].type, RecordType::kDone);
  EXPECT_EQ(d.records[4].sequence, 1u);
  EXPECT_EQ(d.records[4].count, 2u);
  EXPECT_EQ(d.intact_end, bytes.size());
  EXPECT_EQ(d.tail_bytes, 0u);
  EXPECT_EQ(d.damaged_spans, 0u);
}

TEST(SpoolFormatTest, SegmentNamesSortByIdAndRejectOthers) {
  EXPECT_EQ(SegmentFileName(42), "00000000000000000042.seg");
  uint64_t id = 0;
  EXPECT_TRUE(ParseSegmentFileName("00000000000000000042.seg", &id));
  EXPECT_EQ(id, 42u);
  EXPECT_FALSE(ParseSegmentFileName("00000000000000000042.seg.bad", &id));
  EXPECT_FALSE(ParseSegmentFileName("LOCK", &id));
  EXPECT_FALSE(ParseSegmentFileName("0000000000000000004x.seg", &id));
  EXPECT_LT(SegmentFileName(9), SegmentFileName(10));
}

TEST(SpoolFormatTest, ATruncationAtEveryOffsetKeepsExactlyTheWholeRecords) {
  const std::string bytes = SegmentOf(4);
  const DecodedSegment whole = DecodeSegment(bytes);
  for (size_t cut = 0; cut <= bytes.size(); ++cut) {
    const DecodedSegment d = DecodeSegment(bytes.substr(0, cut));
    if (cut < kSegmentHeaderBytes) {
      EXPECT_FALSE(d.header_ok) << cut;
      continue;
    }
    size_t whole_records = 0;
    for (const Record& r : whole.records) whole_records += r.offset + r.size <= cut;
    ASSERT_EQ(d.records.size(), whole_records) << cut;
    EXPECT_EQ(d.intact_end + d.tail_bytes, cut) << cut;
    EXPECT_EQ(d.damaged_spans, 0u) << cut;
  }
}

TEST(SpoolFormatTest, AFlippedBitLosesOnlyItsRecord) {
  const std::string bytes = SegmentOf(5);
  const DecodedSegment whole = DecodeSegment(bytes);
  ASSERT_EQ(whole.records.size(), 6u);
  for (size_t r = 1; r < whole.records.size(); ++r) {
    const Record& hit = whole.records[r];
    for (uint64_t at = hit.offset; at < hit.offset + hit.size; at += 7) {
      std::string damaged = bytes;
      damaged[at] ^= 0x10;
      const DecodedSegment d = DecodeSegment(damaged);
      ASSERT_EQ(d.records.size(), whole.records.size() - 1) << "record " << r << " byte " << at;
      for (const Record& kept : d.records) EXPECT_NE(kept.offset, hit.offset);
      if (r + 1 < whole.records.size()) {
        EXPECT_EQ(d.damaged_spans, 1u);
        EXPECT_EQ(d.damaged_bytes, hit.size);
        EXPECT_EQ(d.tail_bytes, 0u);
      } else {  // the last record: a damaged tail
        EXPECT_EQ(d.damaged_spans, 0u);
        EXPECT_EQ(d.tail_bytes, hit.size);
      }
    }
  }
}

TEST(SpoolFormatTest, GarbageIsNeverARecord) {
  std::string garbage = EncodeSegmentHeader(1);
  for (int i = 0; i < 10'000; ++i) garbage.push_back(static_cast<char>((i * 7919) % 251));
  const DecodedSegment d = DecodeSegment(garbage);
  EXPECT_TRUE(d.header_ok);
  EXPECT_TRUE(d.records.empty());
  EXPECT_EQ(d.tail_bytes, 10'000u);
  EXPECT_FALSE(DecodeSegment("not a spool segment at all").header_ok);
}

TEST(SpoolFormatTest, ImplausibleLengthsAndCountsAreDamage) {
  std::string bytes = EncodeSegmentHeader(1);
  std::string record = EncodeDone(5, 1);
  record[0] = static_cast<char>(0xff);  // a length past the end
  Record r;
  EXPECT_FALSE(DecodeRecordAt(record, 0, &r));
  EXPECT_FALSE(DecodeRecordAt(EncodeDone(5, 0), 0, &r));  // a count of zero
  EXPECT_TRUE(DecodeRecordAt(EncodeDone(5, 3), 0, &r));
  EXPECT_FALSE(DecodeRecordAt(EncodeDone(5, 3), 1, &r));
  EXPECT_FALSE(DecodeRecordAt(EncodeDone(5, 3), 1000, &r));
}

}  // namespace
}  // namespace telemetry::client::spool
