#include "server/common/metadata_json.h"

#include <gtest/gtest.h>

namespace telemetry {
namespace {

using google::protobuf::Struct;
using google::protobuf::Value;

TEST(MetadataJsonTest, SerialisesEveryKindWithSortedKeys) {
  Struct s;
  auto& f = *s.mutable_fields();
  f["z"].set_number_value(3);
  f["a"].set_string_value("q\"uo\\te\n\x01");
  f["b"].set_bool_value(true);
  f["c"].set_null_value(google::protobuf::NULL_VALUE);
  f["d"].mutable_list_value()->add_values()->set_number_value(0.1);
  (*f["e"].mutable_struct_value()->mutable_fields())["x"].set_number_value(-2.5);
  auto json = MetadataToJson(s, 4096, 8);
  ASSERT_TRUE(json.ok()) << json.status();
  EXPECT_EQ(*json,
            R"({"a":"q\"uo\\te\n\u0001","b":true,"c":null,"d":[0.1],)"
            R"("e":{"x":-2.5},"z":3})");
}

TEST(MetadataJsonTest, RefusesDeepNesting) {
  Struct s;
  Struct* cur = &s;
  for (int i = 0; i < 5; ++i) {
    cur = (*cur->mutable_fields())["n"].mutable_struct_value();
  }
  EXPECT_TRUE(MetadataToJson(s, 4096, 6).ok());
  auto deep = MetadataToJson(s, 4096, 5);
  EXPECT_EQ(deep.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(deep.status().message(),
            "metadata.n.n.n.n.n is nested deeper than 5 levels");
}

TEST(MetadataJsonTest, RefusesNulInKeys) {
  Struct s;
  (*s.mutable_fields())[std::string("k\0", 2)].set_number_value(1);
  EXPECT_EQ(MetadataToJson(s, 4096, 8).status().code(),
            absl::StatusCode::kInvalidArgument);
}

// A literal backslash followed by "u0000" is six ordinary characters, not a
// NUL: it is escaped as \\u0000, which JSONB stores as written. (The fuzzer
// once mistook that text for a NUL escape.)
TEST(MetadataJsonTest, KeepsABackslashBeforeU0000AsText) {
  Struct s;
  (*s.mutable_fields())["fw"].set_string_value("\\u0000");
  absl::StatusOr<std::string> json = MetadataToJson(s, 4096, 8);
  ASSERT_TRUE(json.ok()) << json.status();
  EXPECT_EQ(*json, R"({"fw":"\\u0000"})");
}

}  // namespace
}  // namespace telemetry
