#include "storage/pg/copy_encoding.h"

#include <gtest/gtest.h>

#include <cstring>

namespace telemetry::pg {
namespace {

std::string Bytes(std::initializer_list<int> b) {
  std::string s;
  for (int x : b) s.push_back(static_cast<char>(x));
  return s;
}

TEST(CopyEncoderTest, EmptyStreamIsHeaderAndTrailer) {
  CopyEncoder enc;
  std::string out = enc.Finish();
  std::string expected("PGCOPY\n\377\r\n\0", 11);
  expected += Bytes({0, 0, 0, 0, 0, 0, 0, 0});  // flags, extension length
  expected += Bytes({0xff, 0xff});              // trailer
  EXPECT_EQ(out, expected);
}

TEST(CopyEncoderTest, EncodesEveryColumnInNetworkOrder) {
  ReadingRow row;
  row.timestamp_us = kPostgresEpochOffsetUs + 1;  // 2000-01-01 00:00:00.000001
  row.sensor_id = "s1";
  row.value = 1.0;  // 0x3FF0000000000000
  row.quality = std::nullopt;
  row.metadata_json = "{}";
  CopyEncoder enc;
  enc.AddReading(row);
  EXPECT_EQ(enc.rows(), 1);
  std::string out = enc.Finish();
  std::string body = out.substr(19, out.size() - 19 - 2);
  std::string expected = Bytes({0, 7});                        // 7 fields
  expected += Bytes({0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 1});     // timestamp
  expected += Bytes({0, 0, 0, 2}) + "s1";                      // sensor_id
  expected += Bytes({0xff, 0xff, 0xff, 0xff});                 // sensor_type NULL
  expected += Bytes({0, 0, 0, 8, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0});  // value
  expected += Bytes({0xff, 0xff, 0xff, 0xff});                 // unit NULL
  expected += Bytes({0xff, 0xff, 0xff, 0xff});                 // quality NULL
  expected += Bytes({0, 0, 0, 3, 1}) + "{}";                   // jsonb v1
  EXPECT_EQ(body, expected);
}

TEST(CopyEncoderTest, TaggedRowsCarryAnInt4First) {
  ReadingRow row;
  row.sensor_id = "x";
  CopyEncoder enc;
  enc.AddTaggedReading(258, row);
  std::string out = enc.Finish();
  EXPECT_EQ(out.substr(19, 10), Bytes({0, 8, 0, 0, 0, 4, 0, 0, 1, 2}));
}

TEST(CopyEncoderTest, TimestampsBeforeTheEpochsAreNegative) {
  ReadingRow row;
  row.timestamp_us = -1;  // 1969-12-31T23:59:59.999999Z
  row.sensor_id = "x";
  CopyEncoder enc;
  enc.AddReading(row);
  std::string out = enc.Finish();
  int64_t be;
  std::memcpy(&be, out.data() + 19 + 2 + 4, 8);
  EXPECT_EQ(static_cast<int64_t>(__builtin_bswap64(static_cast<uint64_t>(be))),
            -1 - kPostgresEpochOffsetUs);
}

}  // namespace
}  // namespace telemetry::pg
