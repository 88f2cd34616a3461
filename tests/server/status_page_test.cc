// The status page's rendering: every value escaped, the page's parts
// present, and the small formatters it is written with.
#include "server/common/status_page.h"

#include <gtest/gtest.h>

#include "absl/strings/match.h"
#include "absl/time/clock.h"

namespace telemetry {
namespace {

const absl::Time kNow = absl::FromUnixSeconds(1'796'000'000);

TEST(StatusPageTest, EscapesEveryValueSoNoDeviceIdOrErrorCanInjectMarkup) {
  StatusReport r;
  r.service = "svc<1>";
  StatusSection s{"Title & more", {{"label\"", "<script>alert(1)</script>", Health::kBad, "f'1"}},
                  {}};
  StatusTable t;
  t.id = "devices";
  t.columns = {"device"};
  t.rows = {{"<img src=x onerror=alert(1)>"}};
  s.tables.push_back(t);
  r.sections.push_back(s);
  const std::string html = RenderStatusHtml(r, kNow, absl::ZeroDuration());
  EXPECT_FALSE(absl::StrContains(html, "<script>"));
  EXPECT_FALSE(absl::StrContains(html, "<img"));
  EXPECT_TRUE(absl::StrContains(html, "&lt;script&gt;alert(1)&lt;/script&gt;"));
  EXPECT_TRUE(absl::StrContains(html, "&lt;img src=x onerror=alert(1)&gt;"));
  EXPECT_TRUE(absl::StrContains(html, "<h1>svc&lt;1&gt;</h1>"));
  EXPECT_TRUE(absl::StrContains(html, "Title &amp; more"));
  EXPECT_TRUE(absl::StrContains(html, "<dd id=\"f&#39;1\" class=\"bad\">"));
  EXPECT_TRUE(absl::StrContains(html, "label&quot;"));
}

TEST(StatusPageTest, ReloadsItselfOnlyWhenAsked) {
  StatusReport r;
  r.service = "s";
  EXPECT_TRUE(absl::StrContains(RenderStatusHtml(r, kNow, absl::Seconds(5)),
                                "<meta http-equiv=\"refresh\" content=\"5\">"));
  EXPECT_FALSE(absl::StrContains(RenderStatusHtml(r, kNow, absl::ZeroDuration()),
                                 "http-equiv=\"refresh\""));
}

TEST(StatusPageTest, AnEmptyTableSaysSoAndAFootnoteFollowsTheRows) {
  StatusReport r;
  r.service = "s";
  StatusSection s{"Devices", {}, {}};
  StatusTable empty;
  empty.id = "none-yet";
  empty.columns = {"a"};
  empty.empty_text = "No batch yet.";
  StatusTable full;
  full.id = "full";
  full.columns = {"a", "b"};
  full.rows = {{"1", "2"}};
  full.footnote = "3 more not shown";
  s.tables = {empty, full};
  r.sections.push_back(s);
  const std::string html = RenderStatusHtml(r, kNow, absl::ZeroDuration());
  EXPECT_TRUE(absl::StrContains(html, "<p class=\"note\" id=\"none-yet\">No batch yet.</p>"));
  EXPECT_FALSE(absl::StrContains(html, "<table id=\"none-yet\""));
  EXPECT_TRUE(absl::StrContains(html, "<table id=\"full\"><thead><tr><th>a</th><th>b</th>"));
  EXPECT_TRUE(absl::StrContains(html, "<tr><td>1</td><td>2</td></tr>"));
  EXPECT_TRUE(absl::StrContains(html, "3 more not shown"));
}

TEST(StatusPageTest, HumanDurationShowsTwoUnitsAtMost) {
  EXPECT_EQ(HumanDuration(absl::Milliseconds(850)), "850ms");
  EXPECT_EQ(HumanDuration(absl::Seconds(12)), "12s");
  EXPECT_EQ(HumanDuration(absl::Seconds(250)), "4m 10s");
  EXPECT_EQ(HumanDuration(absl::Hours(2) + absl::Minutes(5) + absl::Seconds(9)), "2h 5m");
  EXPECT_EQ(HumanDuration(absl::Hours(76)), "3d 4h");
  EXPECT_EQ(HumanDuration(absl::Hours(48)), "2d");
  EXPECT_EQ(HumanDuration(-absl::Seconds(3)), "-3s");
}

TEST(StatusPageTest, TimeAndAgeSaysHowLongAgoOrHowSoon) {
  EXPECT_EQ(TimeAndAge(kNow - absl::Seconds(12), kNow), "2026-11-30T00:53:08Z (12s ago)");
  EXPECT_EQ(TimeAndAge(kNow + absl::Minutes(3), kNow), "2026-11-30T00:56:20Z (in 3m)");
  EXPECT_EQ(TimeAndAge(absl::InfinitePast(), kNow), "never");
}

TEST(StatusPageTest, GroupedIntSeparatesThousands) {
  EXPECT_EQ(GroupedInt(0), "0");
  EXPECT_EQ(GroupedInt(999), "999");
  EXPECT_EQ(GroupedInt(1000), "1,000");
  EXPECT_EQ(GroupedInt(1234567), "1,234,567");
  EXPECT_EQ(GroupedInt(-1234567), "-1,234,567");
  EXPECT_EQ(GroupedInt(INT64_MIN), "-9,223,372,036,854,775,808");
}

}  // namespace
}  // namespace telemetry
