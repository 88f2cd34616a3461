// Hostile input through the real gateway on loopback, table-driven: every
// kind of bad reading travels in one batch between good ones; each gets its
// own clear reason, and the good readings around it are stored byte for
// byte. Then what cannot be a reading at all: oversized batches, invalid
// UTF-8 on the wire, garbage bytes on the port. The server stays up
// throughout.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include <cmath>
#include <limits>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "server/ingest/ingest_server.h"
#include "telemetry/v1/ingest.grpc.pb.h"
#include "tests/support/loopback_gateway.h"
#include "tests/support/reading_builders.h"
#include "tests/support/servers_environment.h"

namespace telemetry {
namespace {

using telemetry::testing::MigratedDatabase;
using telemetry::testing::QueryScalar;
using telemetry::testing::Redis;
namespace v1 = telemetry::v1;

struct HostileCase {
  std::string name;
  std::function<void(v1::Reading*)> mutate;
  std::string field;   // expected rejection field; "" = must be stored as sent
  std::string reason;  // substring of the expected reason
};

google::protobuf::Value Nested(int depth) {
  google::protobuf::Value v;
  v.set_number_value(1);
  for (int i = 0; i < depth; ++i) {
    google::protobuf::Value outer;
    (*outer.mutable_struct_value()->mutable_fields())["k"] = v;
    v = outer;
  }
  return v;
}

std::vector<HostileCase> Cases() {
  const double inf = std::numeric_limits<double>::infinity();
  return {
      {"NaN value", [](v1::Reading* r) { r->set_value(std::nan("")); }, "value", "finite"},
      {"+Inf value", [=](v1::Reading* r) { r->set_value(inf); }, "value", "finite"},
      {"-Inf value", [=](v1::Reading* r) { r->set_value(-inf); }, "value", "finite"},
      {"NaN quality", [](v1::Reading* r) { r->set_quality(std::nan("")); }, "quality", "between"},
      {"huge sensor_id", [](v1::Reading* r) { r->set_sensor_id(std::string(1 << 20, 'x')); },
       "sensor_id", "limit is 255"},
      {"huge unit", [](v1::Reading* r) { r->set_unit(std::string(100'000, 'u')); }, "unit",
       "limit is 50"},
      {"empty sensor_id", [](v1::Reading* r) { r->set_sensor_id(""); }, "sensor_id", "empty"},
      {"NUL in sensor_id", [](v1::Reading* r) { r->set_sensor_id(std::string("a\0b", 3)); },
       "sensor_id", "control character"},
      {"newline in sensor_type", [](v1::Reading* r) { r->set_sensor_type("temp\nDROP"); },
       "sensor_type", "control character"},
      {"escape in unit", [](v1::Reading* r) { r->set_unit("\x1b[31mred"); }, "unit",
       "control character"},
      {"SQL in sensor_id (stored verbatim)",
       [](v1::Reading* r) { r->set_sensor_id("x'); DROP TABLE sensor_readings; --"); }, "", ""},
      {"COPY metacharacters (stored verbatim)",
       [](v1::Reading* r) { r->set_sensor_type("a\\.b\\N|\"c\",d"); }, "", ""},
      {"multibyte UTF-8 (stored verbatim)",
       [](v1::Reading* r) { r->set_unit("\xC2\xB0" "C \xE6\xB8\xA9\xE5\xBA\xA6 \xF0\x9F\x8C\xA1"); },
       "", ""},
      {"timestamp year 1", [](v1::Reading* r) { r->mutable_timestamp()->set_seconds(-62135596800); },
       "timestamp", "older than the retention"},
      {"timestamp year 9999",
       [](v1::Reading* r) { r->mutable_timestamp()->set_seconds(253402300799); }, "timestamp",
       "in the future"},
      {"timestamp beyond Timestamp's range",
       [](v1::Reading* r) { r->mutable_timestamp()->set_seconds(std::numeric_limits<int64_t>::max()); },
       "timestamp", "not a valid point in time"},
      {"negative nanos", [](v1::Reading* r) { r->mutable_timestamp()->set_nanos(-1); }, "timestamp",
       "not a valid point in time"},
      {"nanos of 1e9", [](v1::Reading* r) { r->mutable_timestamp()->set_nanos(1'000'000'000); },
       "timestamp", "not a valid point in time"},
      {"no timestamp", [](v1::Reading* r) { r->clear_timestamp(); }, "timestamp", "missing"},
      // 20 levels: within protobuf's parse depth (each level is three
      // messages deep), beyond the validator's 16.
      {"metadata nested 20 deep",
       [](v1::Reading* r) { (*r->mutable_metadata()->mutable_fields())["n"] = Nested(20); },
       "metadata", "deep"},
      {"metadata of 1 MiB",
       [](v1::Reading* r) {
         (*r->mutable_metadata()->mutable_fields())["blob"].set_string_value(
             std::string(1 << 20, 'm'));
       },
       "metadata", "bytes"},
      {"metadata with SQL and quotes (stored as JSON)",
       [](v1::Reading* r) {
         (*r->mutable_metadata()->mutable_fields())["note"].set_string_value(
             "'\"; DELETE FROM sensors; --\\");
       },
       "", ""},
  };
}

class HostileInputTest : public ::testing::Test {
 protected:
  void SetUp() override {
    db_ = MigratedDatabase();
    ingest::IngestServerOptions o = telemetry::testing::LoopbackGateway(db_);
    o.max_message_bytes = 16 << 20;
    auto s = ingest::IngestServer::Start(o);
    ASSERT_TRUE(s.ok()) << s.status();
    server_ = *std::move(s);
    channel_ = grpc::CreateChannel(absl::StrCat("127.0.0.1:", server_->port()),
                                   grpc::InsecureChannelCredentials());
    stub_ = v1::IngestService::NewStub(channel_);
  }
  void TearDown() override { server_->Shutdown(absl::Seconds(2)); }

  grpc::Status Write(const v1::ReadingBatch& b, v1::BatchAck* ack) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    return stub_->WriteBatch(&ctx, b, ack);
  }

  bool Healthy() {
    v1::ReadingBatch b;
    b.set_idempotency_key(absl::StrCat("probe-", probes_++));
    v1::BatchAck ack;
    return Write(b, &ack).ok();
  }

  std::string db_;
  std::unique_ptr<ingest::IngestServer> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::IngestService::Stub> stub_;
  int probes_ = 0;
};

v1::Reading Good(int i) {
  v1::Reading r = telemetry::testing::ReadingAt(
      absl::StrCat("good-", i), (absl::ToUnixSeconds(absl::Now()) - 600) * 1'000'000 + 123'456,
      i + 0.25);
  r.set_sensor_type("pressure");
  r.set_unit("bar");
  return r;
}

TEST_F(HostileInputTest, EachHostileReadingIsRejectedAloneAndItsNeighboursStoredIntact) {
  const std::vector<HostileCase> cases = Cases();
  v1::ReadingBatch batch;
  batch.set_idempotency_key("hostile");
  std::vector<int> case_index;  // batch index of each case's reading
  for (size_t c = 0; c < cases.size(); ++c) {
    *batch.add_readings() = Good(static_cast<int>(c));
    v1::Reading bad = Good(1000 + static_cast<int>(c));
    cases[c].mutate(&bad);
    case_index.push_back(batch.readings_size());
    *batch.add_readings() = bad;
  }
  *batch.add_readings() = Good(static_cast<int>(cases.size()));
  v1::BatchAck ack;
  grpc::Status st = Write(batch, &ack);
  ASSERT_TRUE(st.ok()) << st.error_code() << " " << st.error_message();

  std::map<uint32_t, v1::RejectedReading> rejected;
  for (const auto& r : ack.rejections()) rejected[r.index()] = r;
  size_t expect_stored = cases.size() + 1;  // the good ones
  for (size_t c = 0; c < cases.size(); ++c) {
    SCOPED_TRACE(cases[c].name);
    auto it = rejected.find(static_cast<uint32_t>(case_index[c]));
    if (cases[c].field.empty()) {
      EXPECT_EQ(it, rejected.end()) << it->second.reason();
      ++expect_stored;
      // Stored exactly as sent.
      const v1::Reading& sent = batch.readings(case_index[c]);
      EXPECT_EQ(QueryScalar(db_, absl::StrCat("SELECT count(*) FROM sensor_readings WHERE "
                                              "sensor_id = convert_from(decode('",
                                              absl::BytesToHexString(sent.sensor_id()),
                                              "', 'hex'), 'UTF8') AND sensor_type IS NOT "
                                              "DISTINCT FROM convert_from(decode('",
                                              absl::BytesToHexString(sent.sensor_type()),
                                              "', 'hex'), 'UTF8') AND unit = convert_from("
                                              "decode('", absl::BytesToHexString(sent.unit()),
                                              "', 'hex'), 'UTF8')")),
                "1");
      continue;
    }
    ASSERT_NE(it, rejected.end()) << "not rejected";
    EXPECT_EQ(it->second.field(), cases[c].field);
    EXPECT_NE(it->second.reason().find(cases[c].reason), std::string::npos)
        << it->second.reason();
  }
  EXPECT_EQ(ack.accepted(), expect_stored);
  EXPECT_EQ(ack.rejected(), 2 * cases.size() + 1 - expect_stored);
  EXPECT_EQ(QueryScalar(db_, "SELECT count(*) FROM sensor_readings"),
            std::to_string(expect_stored));
  // The good readings, value for value and to the microsecond.
  for (size_t c = 0; c <= cases.size(); ++c) {
    EXPECT_EQ(QueryScalar(db_, absl::StrCat("SELECT value::text || '|' || "
                                            "extract(microseconds FROM \"timestamp\")::bigint % "
                                            "1000000 FROM sensor_readings WHERE sensor_id = "
                                            "'good-", c, "'")),
              absl::StrCat(c + 0.25, "|123456"));
  }
  EXPECT_TRUE(Healthy());
}

TEST_F(HostileInputTest, OversizedBatchesFailAsAWholeWithClearCodes) {
  // More readings than allowed in one batch (but under the message size).
  v1::ReadingBatch many;
  many.set_idempotency_key("many");
  for (int i = 0; i < 10'001; ++i) *many.add_readings() = Good(i);
  v1::BatchAck ack;
  grpc::Status st = Write(many, &ack);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(st.error_message().find("limit is 10000"), std::string::npos) << st.error_message();
  // A million readings: larger than the largest accepted message.
  v1::ReadingBatch million;
  million.set_idempotency_key("million");
  for (int i = 0; i < 1'000'000; ++i) *million.add_readings() = Good(i % 100);
  st = Write(million, &ack);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << st.error_message();
  EXPECT_EQ(QueryScalar(db_, "SELECT count(*) FROM sensor_readings"), "0");
  EXPECT_TRUE(Healthy());
}

TEST_F(HostileInputTest, MetadataNestedBeyondProtobufsParseDepthFailsTheCallNotTheServer) {
  v1::ReadingBatch b;
  b.set_idempotency_key("deep");
  *b.add_readings() = Good(1);
  v1::Reading deep = Good(2);
  (*deep.mutable_metadata()->mutable_fields())["n"] = Nested(100);
  *b.add_readings() = deep;
  v1::BatchAck ack;
  grpc::Status st = Write(b, &ack);
  // The message cannot be parsed at all (protobuf's recursion limit), so the
  // call fails as a whole, saying so; nothing of it is stored.
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(st.error_message().find("not a valid telemetry.v1.ReadingBatch"), std::string::npos)
      << st.error_message();
  EXPECT_EQ(QueryScalar(db_, "SELECT count(*) FROM sensor_readings"), "0");
  EXPECT_TRUE(Healthy());
}

// The serialised batch with its first "good-" sensor id made invalid UTF-8.
std::string InvalidUtf8Batch(const std::string& key) {
  v1::ReadingBatch b;
  b.set_idempotency_key(key);
  *b.add_readings() = Good(1);
  std::string wire = b.SerializeAsString();
  wire.replace(wire.find("good-"), 2, "\xC3\x28");
  return wire;
}

TEST_F(HostileInputTest, InvalidUtf8OnTheWireIsRefusedAndTheServerStaysUp) {
  // A ReadingBatch whose sensor_id bytes are not UTF-8: no conforming client
  // can build it, so it is sent as raw bytes.
  const std::string wire = InvalidUtf8Batch("utf8");
  grpc::GenericStub generic(channel_);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  grpc::Slice slice(wire);
  grpc::ByteBuffer request(&slice, 1), response;
  grpc::CompletionQueue cq;
  auto call = generic.PrepareUnaryCall(&ctx, "/telemetry.v1.IngestService/WriteBatch", request,
                                       &cq);
  call->StartCall();
  grpc::Status st;
  call->Finish(&response, &st, reinterpret_cast<void*>(1));
  void* tag;
  bool ok;
  ASSERT_TRUE(cq.Next(&tag, &ok));
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(st.error_message().find("UTF-8"), std::string::npos) << st.error_message();
  EXPECT_EQ(QueryScalar(db_, "SELECT count(*) FROM sensor_readings"), "0");
  cq.Shutdown();
  while (cq.Next(&tag, &ok)) {
  }
  EXPECT_TRUE(Healthy());
}

// Sends `messages` as raw bytes on one stream, half-closes, and returns
// every ack and the call's status.
std::vector<v1::BatchAck> StreamRaw(const std::shared_ptr<grpc::Channel>& channel,
                                    const std::vector<std::string>& messages,
                                    grpc::Status* status) {
  std::vector<v1::BatchAck> acks;
  grpc::GenericStub generic(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  grpc::CompletionQueue cq;
  auto call = generic.PrepareCall(&ctx, "/telemetry.v1.IngestService/StreamReadings", &cq);
  void* tag;
  bool ok;
  auto step = [&](intptr_t want) {
    return cq.Next(&tag, &ok) && reinterpret_cast<intptr_t>(tag) == want && ok;
  };
  call->StartCall(reinterpret_cast<void*>(1));
  bool alive = step(1);
  for (const std::string& m : messages) {
    if (!alive) break;
    grpc::Slice slice(m);
    grpc::ByteBuffer buffer(&slice, 1);
    call->Write(buffer, reinterpret_cast<void*>(2));
    alive = step(2);
  }
  if (alive) {
    call->WritesDone(reinterpret_cast<void*>(3));
    alive = step(3);
  }
  while (alive) {
    grpc::ByteBuffer buffer;
    call->Read(&buffer, reinterpret_cast<void*>(4));
    if (!step(4)) break;
    std::vector<grpc::Slice> slices;
    EXPECT_TRUE(buffer.Dump(&slices).ok());
    std::string bytes;
    for (const auto& s : slices) bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
    v1::BatchAck ack;
    EXPECT_TRUE(ack.ParseFromString(bytes));
    acks.push_back(ack);
  }
  call->Finish(status, reinterpret_cast<void*>(5));
  EXPECT_TRUE(cq.Next(&tag, &ok));
  cq.Shutdown();
  while (cq.Next(&tag, &ok)) {
  }
  return acks;
}

TEST_F(HostileInputTest, AnUnparsableMessageOnAStreamIsRefusedAloneAndTheStreamGoesOn) {
  v1::ReadingBatch before, after;
  before.set_idempotency_key("before");
  *before.add_readings() = Good(10);
  after.set_idempotency_key("after");
  *after.add_readings() = Good(11);
  grpc::Status st;
  std::vector<v1::BatchAck> acks = StreamRaw(
      channel_, {before.SerializeAsString(), InvalidUtf8Batch("bad"), after.SerializeAsString()},
      &st);
  EXPECT_TRUE(st.ok()) << st.error_message();
  ASSERT_EQ(acks.size(), 3u);
  int refused = 0;
  for (const v1::BatchAck& a : acks) {
    if (a.status_code() == grpc::StatusCode::INVALID_ARGUMENT) {
      ++refused;
      EXPECT_NE(a.status_message().find("UTF-8"), std::string::npos) << a.status_message();
      // Its key (parsed before the bad field) lets the client match the
      // refusal to its batch instead of resending it forever.
      EXPECT_EQ(a.idempotency_key(), "bad");
    } else {
      EXPECT_EQ(a.status_code(), 0) << a.status_message();
      EXPECT_EQ(a.accepted(), 1u);
    }
  }
  EXPECT_EQ(refused, 1);
  EXPECT_EQ(QueryScalar(db_, "SELECT count(*) FROM sensor_readings WHERE sensor_id IN "
                             "('good-10', 'good-11')"),
            "2");
  EXPECT_EQ(QueryScalar(db_, "SELECT count(*) FROM sensor_readings"), "2");
}

TEST_F(HostileInputTest, AMessageOverTheSizeLimitIsRefusedAsNotRetryableAndTheStreamGoesOn) {
  // 20 MiB against the 16 MiB limit: INVALID_ARGUMENT with the limit, not
  // gRPC's RESOURCE_EXHAUSTED, which our API documents as "resend".
  v1::ReadingBatch big;
  big.set_idempotency_key("big");
  v1::Reading r = Good(20);
  r.set_sensor_type(std::string(20 << 20, 't'));
  *big.add_readings() = r;
  v1::BatchAck unary_ack;
  grpc::Status unary = Write(big, &unary_ack);
  EXPECT_EQ(unary.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << unary.error_message();
  EXPECT_NE(unary.error_message().find("the limit is 16777216 bytes"), std::string::npos)
      << unary.error_message();

  v1::ReadingBatch before, after;
  before.set_idempotency_key("before-big");
  *before.add_readings() = Good(21);
  after.set_idempotency_key("after-big");
  *after.add_readings() = Good(22);
  grpc::Status st;
  std::vector<v1::BatchAck> acks = StreamRaw(
      channel_, {before.SerializeAsString(), big.SerializeAsString(), after.SerializeAsString()},
      &st);
  EXPECT_TRUE(st.ok()) << st.error_message();
  ASSERT_EQ(acks.size(), 3u);
  std::map<std::string, v1::BatchAck> by_key;
  for (const v1::BatchAck& a : acks) by_key[a.idempotency_key()] = a;
  EXPECT_EQ(by_key["big"].status_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(by_key["big"].status_message().find("split the batch"), std::string::npos);
  EXPECT_EQ(by_key["before-big"].accepted(), 1u);
  EXPECT_EQ(by_key["after-big"].accepted(), 1u);
  EXPECT_EQ(QueryScalar(db_, "SELECT count(*) FROM sensor_readings"), "2");
}

TEST_F(HostileInputTest, GarbageBytesOnThePortDoNotHurtTheServer) {
  const std::vector<std::string> garbage = {
      "GET / HTTP/1.1\r\nHost: x\r\n\r\n",
      std::string(64 * 1024, '\xff'),
      "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + std::string(1000, '\x00'),  // preface, then junk
      "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x04\x08\x00\x00\x00\x00\x00\xff\xff\xff\xff",
  };
  for (const std::string& g : garbage) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ASSERT_GE(fd, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(server_->port()));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    (void)!write(fd, g.data(), g.size());
    shutdown(fd, SHUT_WR);
    char buf[4096];
    // The server answers (or not) and closes; read until it does, bounded.
    timeval tv{5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    while (read(fd, buf, sizeof(buf)) > 0) {
    }
    close(fd);
    EXPECT_TRUE(Healthy());
  }
  // And a valid batch right after still lands.
  v1::ReadingBatch b;
  b.set_idempotency_key("after-garbage");
  *b.add_readings() = Good(7);
  v1::BatchAck ack;
  ASSERT_TRUE(Write(b, &ack).ok());
  EXPECT_EQ(ack.accepted(), 1u);
}

}  // namespace
}  // namespace telemetry
