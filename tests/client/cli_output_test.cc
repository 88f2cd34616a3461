// telemetryctl's output formats and time arguments (pure functions).
#include <gtest/gtest.h>

#include <cstdlib>
#include <sstream>

#include "client/output_format.h"
#include "client/time_args.h"

namespace telemetry::client {
namespace {

TEST(FormatDouble, ShortestTextThatReadsBackTheSameDouble) {
  EXPECT_EQ(FormatDouble(21.5), "21.5");
  EXPECT_EQ(FormatDouble(0.1), "0.1");
  EXPECT_EQ(FormatDouble(0.1 + 0.2), "0.30000000000000004");
  EXPECT_EQ(FormatDouble(-3), "-3");
  EXPECT_EQ(FormatDouble(1e300), "1e+300");
  for (double v : {0.1 + 0.2, 1.0 / 3, 6.02214076e23, -2.2250738585072014e-308}) {
    EXPECT_EQ(std::strtod(FormatDouble(v).c_str(), nullptr), v) << FormatDouble(v);
  }
}

TEST(HumanBytes, UsesBinaryUnits) {
  EXPECT_EQ(HumanBytes(512), "512 B");
  EXPECT_EQ(HumanBytes(1536), "1.5 KiB");
  EXPECT_EQ(HumanBytes(8192 * 1024), "8.0 MiB");
  EXPECT_EQ(HumanBytes(uint64_t{300} << 30), "300 GiB");
}

TEST(ParseOutputFormat, TableOnATerminalCsvOtherwise) {
  EXPECT_EQ(*ParseOutputFormat("", true), OutputFormat::kTable);
  EXPECT_EQ(*ParseOutputFormat("", false), OutputFormat::kCsv);
  EXPECT_EQ(*ParseOutputFormat("json", true), OutputFormat::kJson);
  EXPECT_FALSE(ParseOutputFormat("yaml", true).ok());
}

std::string Render(OutputFormat format) {
  std::ostringstream out;
  auto w = RowWriter::Create(
      format, {{"name"}, {"bytes", CellKind::kBytes}, {"value", CellKind::kNumber},
               {"ok", CellKind::kBool}, {"meta", CellKind::kJson}},
      &out);
  w->Row({"a,b", "2048", "1.5", "true", R"({"fw":"1.2"})"});
  w->Row({"c", "10", std::nullopt, "false", std::nullopt});
  w->Finish();
  w->Finish();  // idempotent
  return out.str();
}

TEST(RowWriter, CsvQuotesWhereNeededAndLeavesAbsentCellsEmpty) {
  EXPECT_EQ(Render(OutputFormat::kCsv),
            "name,bytes,value,ok,meta\n"
            "\"a,b\",2048,1.5,true,\"{\"\"fw\"\":\"\"1.2\"\"}\"\n"
            "c,10,,false,\n");
}

TEST(RowWriter, JsonIsAnArrayOfTypedObjects) {
  EXPECT_EQ(Render(OutputFormat::kJson),
            "[\n"
            "{\"name\":\"a,b\",\"bytes\":2048,\"value\":1.5,\"ok\":true,\"meta\":{\"fw\":\"1.2\"}},\n"
            "{\"name\":\"c\",\"bytes\":10,\"value\":null,\"ok\":false,\"meta\":null}\n"
            "]\n");
  std::ostringstream empty;
  RowWriter::Create(OutputFormat::kJson, {{"x"}}, &empty)->Finish();
  EXPECT_EQ(empty.str(), "[]\n");
}

TEST(RowWriter, TableAlignsNumbersRightAndShowsBytesHumanly) {
  EXPECT_EQ(Render(OutputFormat::kTable),
            "name | bytes   | value | ok    | meta\n"
            "-----+---------+-------+-------+-------------\n"
            "a,b  | 2.0 KiB |   1.5 | true  | {\"fw\":\"1.2\"}\n"
            "c    |    10 B |       | false | \n");
}

TEST(JsonQuote, EscapesControlCharacters) {
  EXPECT_EQ(JsonQuote("a\"b\\c\n\x01"), "\"a\\\"b\\\\c\\n\\u0001\"");
}

class ParseTimeArgTest : public ::testing::Test {
 protected:
  const absl::Time now_ = absl::FromUnixSeconds(1'764'576'000);  // 2025-12-01T08:00:00Z
  absl::Time At(const char* rfc3339) {
    absl::Time t;
    std::string err;
    EXPECT_TRUE(absl::ParseTime(absl::RFC3339_full, rfc3339, &t, &err)) << err;
    return t;
  }
  absl::Time Parse(const char* arg) {
    auto t = ParseTimeArg(arg, now_);
    EXPECT_TRUE(t.ok()) << arg << ": " << t.status();
    return t.value_or(absl::InfinitePast());
  }
};

TEST_F(ParseTimeArgTest, OffsetsIntoThePast) {
  EXPECT_EQ(Parse("now"), now_);
  EXPECT_EQ(Parse("-7d"), now_ - absl::Hours(24 * 7));
  EXPECT_EQ(Parse("-2w"), now_ - absl::Hours(24 * 14));
  EXPECT_EQ(Parse("-90m"), now_ - absl::Minutes(90));
  EXPECT_EQ(Parse("-1h30m"), now_ - absl::Minutes(90));
  EXPECT_EQ(Parse("-45s"), now_ - absl::Seconds(45));
}

TEST_F(ParseTimeArgTest, DatesAndDateTimesAreUtcUnlessTheySayOtherwise) {
  EXPECT_EQ(Parse("2026-12-01"), At("2026-12-01T00:00:00Z"));
  EXPECT_EQ(Parse("2026-12-01 07:00:00"), At("2026-12-01T07:00:00Z"));
  EXPECT_EQ(Parse("2026-12-01 07:00"), At("2026-12-01T07:00:00Z"));
  EXPECT_EQ(Parse("2026-12-01 07:00:00.25"), At("2026-12-01T07:00:00.25Z"));
  EXPECT_EQ(Parse("2026-12-01 07:00:00+00"), At("2026-12-01T07:00:00Z"));  // psql's timestamptz
  EXPECT_EQ(Parse("2026-12-01 09:00:00+02"), At("2026-12-01T07:00:00Z"));
  EXPECT_EQ(Parse("2026-12-01T07:00:00Z"), At("2026-12-01T07:00:00Z"));
  EXPECT_EQ(Parse("2026-12-01T07:00:00.123456-05:00"), At("2026-12-01T12:00:00.123456Z"));
  EXPECT_EQ(Parse("2026-12-01T07:00:00"), At("2026-12-01T07:00:00Z"));
  EXPECT_EQ(Parse("1764576000.5"), now_ + absl::Milliseconds(500));
  EXPECT_EQ(Parse("1764576000.123456"), now_ + absl::Microseconds(123456));  // exact
  EXPECT_EQ(Parse("-1.5"), absl::UnixEpoch() - absl::Milliseconds(1500));
  EXPECT_EQ(Parse("0"), absl::UnixEpoch());
}

TEST_F(ParseTimeArgTest, RefusesWhatItCannotReadAndSaysWhatItAccepts) {
  for (const char* bad : {"", "yesterday", "-7x", "2026-13-01", "2026-12-01 25:00", "1e9",
                          "--1h", "-d", "nan", "inf", "-infinity", "1.", ".5",
                          "99999999999999999999"}) {
    auto t = ParseTimeArg(bad, now_);
    EXPECT_FALSE(t.ok()) << bad;
    if (!t.ok()) {
      EXPECT_NE(t.status().message().find("2026-12-01"), std::string::npos);
    }
  }
}

TEST(FormatRfc3339, UtcWithTheFractionTrimmed) {
  EXPECT_EQ(FormatRfc3339(absl::FromUnixMicros(1'764'576'000'250'000)),
            "2025-12-01T08:00:00.25Z");
  EXPECT_EQ(FormatRfc3339(absl::FromUnixSeconds(1'764'576'000)), "2025-12-01T08:00:00Z");
}

}  // namespace
}  // namespace telemetry::client
