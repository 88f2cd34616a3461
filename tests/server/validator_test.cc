#include "server/ingest/validator.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

namespace telemetry::ingest {
namespace {

using telemetry::v1::Reading;
using telemetry::v1::ReadingBatch;

const absl::Time kNow = absl::FromUnixSeconds(1'800'000'000);

Reading Good(const std::string& sensor = "pump-1", int64_t seconds_ago = 10) {
  Reading r;
  r.set_sensor_id(sensor);
  r.mutable_timestamp()->set_seconds(absl::ToUnixSeconds(kNow) - seconds_ago);
  r.set_value(21.5);
  r.set_sensor_type("temperature");
  r.set_unit("celsius");
  r.set_quality(0.9);
  return r;
}

ReadingBatch BatchOf(std::vector<Reading> readings) {
  ReadingBatch b;
  b.set_idempotency_key("k1");
  for (auto& r : readings) *b.add_readings() = r;
  return b;
}

// Validates a batch holding `bad` between two good readings; expects exactly
// the bad one (index 1) rejected with `field` and `reason`.
void ExpectRejected(const Reading& bad, const std::string& field,
                    const std::string& reason) {
  ValidatedBatch v = ValidateBatch(
      BatchOf({Good("a"), bad, Good("c")}), ValidationOptions(), kNow);
  ASSERT_TRUE(v.status.ok()) << v.status;
  ASSERT_EQ(v.rejections.size(), 1u);
  EXPECT_EQ(v.rejections[0].index(), 1u);
  EXPECT_EQ(v.rejections[0].field(), field);
  EXPECT_EQ(v.rejections[0].reason(), reason);
  ASSERT_EQ(v.rows.size(), 2u);
  EXPECT_EQ(v.rows[0].sensor_id, "a");
  EXPECT_EQ(v.rows[1].sensor_id, "c");
}

TEST(ValidatorTest, ConvertsAGoodReading) {
  Reading r = Good();
  r.mutable_timestamp()->set_nanos(123'456'789);
  (*r.mutable_metadata()->mutable_fields())["fw"].set_string_value("2.1");
  ValidatedBatch v = ValidateBatch(BatchOf({r}), ValidationOptions(), kNow);
  ASSERT_TRUE(v.status.ok());
  ASSERT_EQ(v.rows.size(), 1u);
  const ReadingRow& row = v.rows[0];
  EXPECT_EQ(row.timestamp_us, (absl::ToUnixSeconds(kNow) - 10) * 1'000'000 + 123'456);
  EXPECT_EQ(row.sensor_id, "pump-1");
  EXPECT_EQ(row.sensor_type, "temperature");
  EXPECT_EQ(row.unit, "celsius");
  EXPECT_EQ(row.quality, 0.9);
  EXPECT_EQ(row.metadata_json, R"({"fw":"2.1"})");
}

TEST(ValidatorTest, OptionalColumnsStayNull) {
  Reading r;
  r.set_sensor_id("s");
  r.mutable_timestamp()->set_seconds(absl::ToUnixSeconds(kNow));
  ValidatedBatch v = ValidateBatch(BatchOf({r}), ValidationOptions(), kNow);
  ASSERT_EQ(v.rows.size(), 1u);
  EXPECT_FALSE(v.rows[0].sensor_type.has_value());
  EXPECT_FALSE(v.rows[0].unit.has_value());
  EXPECT_FALSE(v.rows[0].quality.has_value());
  EXPECT_FALSE(v.rows[0].metadata_json.has_value());
}

TEST(ValidatorTest, RejectsEmptySensorId) {
  ExpectRejected(Good(""), "sensor_id", "sensor_id is empty");
}

TEST(ValidatorTest, RejectsOverlongSensorId) {
  ExpectRejected(Good(std::string(256, 'x')), "sensor_id",
                 "sensor_id is 256 bytes long; the limit is 255");
}

TEST(ValidatorTest, AcceptsSensorIdOfExactly255Bytes) {
  ValidatedBatch v = ValidateBatch(BatchOf({Good(std::string(255, 'x'))}),
                                   ValidationOptions(), kNow);
  EXPECT_EQ(v.rows.size(), 1u);
}

TEST(ValidatorTest, RejectsControlCharactersInText) {
  ExpectRejected(Good(std::string("a\0b", 3)), "sensor_id",
                 "sensor_id contains a control character");
  Reading r = Good("b");
  r.set_unit("m\n");
  ExpectRejected(r, "unit", "unit contains a control character");
}

TEST(ValidatorTest, RejectsOverlongUnitAndType) {
  Reading r = Good("b");
  r.set_unit(std::string(51, 'u'));
  ExpectRejected(r, "unit", "unit is 51 bytes long; the limit is 50");
  r = Good("b");
  r.set_sensor_type(std::string(60, 't'));
  ExpectRejected(r, "sensor_type", "sensor_type is 60 bytes long; the limit is 50");
}

TEST(ValidatorTest, RejectsNonFiniteValues) {
  for (double bad : {std::nan(""), std::numeric_limits<double>::infinity(),
                     -std::numeric_limits<double>::infinity()}) {
    Reading r = Good("b");
    r.set_value(bad);
    ExpectRejected(r, "value", "value is not a finite number");
  }
}

TEST(ValidatorTest, RejectsQualityOutsideZeroToOne) {
  for (double bad : {-0.01, 1.01, std::nan("")}) {
    Reading r = Good("b");
    r.set_quality(bad);
    ExpectRejected(r, "quality", "quality must be between 0 and 1");
  }
}

TEST(ValidatorTest, RejectsMissingTimestamp) {
  Reading r = Good("b");
  r.clear_timestamp();
  ExpectRejected(r, "timestamp", "timestamp is missing");
}

TEST(ValidatorTest, RejectsMalformedTimestamp) {
  Reading r = Good("b");
  r.mutable_timestamp()->set_nanos(-1);
  ExpectRejected(r, "timestamp", "timestamp is not a valid point in time");
}

TEST(ValidatorTest, RejectsTimestampsTooFarInTheFuture) {
  Reading r = Good("b", /*seconds_ago=*/-301);
  ExpectRejected(r, "timestamp", "timestamp is more than 5m in the future");
  ValidatedBatch v = ValidateBatch(BatchOf({Good("b", -299)}),
                                   ValidationOptions(), kNow);
  EXPECT_EQ(v.rows.size(), 1u);
}

TEST(ValidatorTest, RejectsTimestampsOlderThanRetention) {
  Reading r = Good("b", /*seconds_ago=*/181 * 86400);
  ExpectRejected(r, "timestamp",
                 "timestamp is older than the retention period (4320h)");
}

TEST(ValidatorTest, RejectsDuplicateSensorAndTimestampWithinBatch) {
  Reading dup = Good("a");
  ExpectRejected(dup, "timestamp",
                 "duplicate of reading 0 in this batch (same sensor_id and "
                 "timestamp)");
}

TEST(ValidatorTest, SubMicrosecondDifferencesAreStillDuplicates) {
  Reading a = Good("a"), b = Good("a");
  a.mutable_timestamp()->set_nanos(1000);
  b.mutable_timestamp()->set_nanos(1999);  // same microsecond
  ValidatedBatch v = ValidateBatch(BatchOf({a, b}), ValidationOptions(), kNow);
  EXPECT_EQ(v.rows.size(), 1u);
  EXPECT_EQ(v.rejections.size(), 1u);
}

TEST(ValidatorTest, RejectsBadMetadata) {
  Reading r = Good("b");
  (*r.mutable_metadata()->mutable_fields())["gain"].set_number_value(
      std::numeric_limits<double>::infinity());
  ExpectRejected(r, "metadata", "metadata.gain is not a finite number");
  r = Good("b");
  (*r.mutable_metadata()->mutable_fields())["note"].set_string_value(
      std::string("a\0b", 3));
  ExpectRejected(r, "metadata", "metadata.note contains a NUL character");
  r = Good("b");
  (*r.mutable_metadata()->mutable_fields())["blob"].set_string_value(
      std::string(20000, 'x'));
  ExpectRejected(r, "metadata", "metadata is larger than 16384 bytes as JSON");
}

TEST(ValidatorTest, BatchLevelErrorsFailTheWholeBatch) {
  ReadingBatch b = BatchOf({Good()});
  b.clear_idempotency_key();
  ValidatedBatch v = ValidateBatch(b, ValidationOptions(), kNow);
  EXPECT_EQ(v.status, absl::InvalidArgumentError("idempotency_key is required"));
  EXPECT_TRUE(v.rows.empty());

  b.set_idempotency_key(std::string(129, 'k'));
  v = ValidateBatch(b, ValidationOptions(), kNow);
  EXPECT_EQ(v.status.code(), absl::StatusCode::kInvalidArgument);

  ValidationOptions small;
  small.max_batch_readings = 2;
  v = ValidateBatch(BatchOf({Good("a"), Good("b"), Good("c")}), small, kNow);
  EXPECT_EQ(v.status,
            absl::InvalidArgumentError("batch has 3 readings; the limit is 2"));
}

}  // namespace
}  // namespace telemetry::ingest
