// StreamReadings driven by clients that behave nothing like our BatchStream:
// written at the raw gRPC level (GenericStub + a callback reactor over
// ByteBuffers), they keep hundreds of batches in flight against a window of
// 16, write without ever reading an ack until they half-close, read acks
// slowly, cancel at arbitrary points, and run many at once. The gateway
// must stay up, refuse nothing that is valid, store every acknowledged batch
// once with the exact values sent, and after a unary resend of everything
// hold each reading exactly once; no stream may be left open (a leaked
// reactor). Run under ThreadSanitizer and AddressSanitizer by test.sh.
#include <gtest/gtest.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include <atomic>
#include <memory>
#include <random>
#include <set>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "server/ingest/ingest_server.h"
#include "storage/util/mutex.h"
#include "telemetry/v1/ingest.grpc.pb.h"
#include "tests/support/exact_batches.h"
#include "tests/support/loopback_gateway.h"
#include "tests/support/servers_environment.h"

namespace telemetry {
namespace {

using telemetry::testing::MigratedDatabase;
using telemetry::testing::QueryScalar;
using telemetry::testing::Redis;
namespace v1 = telemetry::v1;

constexpr int kPerBatch = 20;
constexpr char kStreamMethod[] = "/telemetry.v1.IngestService/StreamReadings";

struct StreamResult {
  grpc::Status status;
  std::vector<v1::BatchAck> acks;
  int written = 0;
};

// How an outside client may behave on one stream.
struct Behaviour {
  bool read_while_writing = true;   // false: no read until every write is done
  int cancel_after_writes = -1;     // TryCancel once this many writes completed
  absl::Duration ack_pause = absl::ZeroDuration();  // a slow consumer: pause per read
  bool half_close = true;           // WritesDone after the last write
};

// One stream at the raw callback level: writes every message back to back
// (one write outstanding, never waiting for an ack), reads acks as the
// behaviour says, and reports how the call ended.
class RawStream final : public grpc::ClientBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer> {
 public:
  RawStream(grpc::GenericStub* stub, std::vector<std::string> messages, Behaviour behaviour)
      : messages_(std::move(messages)), behaviour_(behaviour) {
    context_.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(120));
    stub->PrepareBidiStreamingCall(&context_, kStreamMethod, grpc::StubOptions(), this);
    if (behaviour_.cancel_after_writes == 0) context_.TryCancel();
    if (!messages_.empty() && behaviour_.cancel_after_writes != 0) WriteNext();
    else if (behaviour_.half_close) StartWritesDone();
    if (behaviour_.read_while_writing || messages_.empty()) StartReading();
    StartCall();
  }

  // Waits for OnDone (bounded); false when it did not come in time.
  bool Wait(absl::Duration timeout, StreamResult* out) {
    if (!done_.WaitForNotificationWithTimeout(timeout)) return false;
    MutexLock lock(&mu_);
    *out = std::move(result_);
    return true;
  }

  void OnWriteDone(bool ok) override {
    if (!ok) return;  // the call ended; OnDone follows
    int written;
    {
      MutexLock lock(&mu_);
      written = ++result_.written;
    }
    if (written == behaviour_.cancel_after_writes) {
      context_.TryCancel();
      return;
    }
    if (static_cast<size_t>(written) < messages_.size()) {
      WriteNext();
      return;
    }
    if (behaviour_.half_close) StartWritesDone();
    if (!behaviour_.read_while_writing) StartReading();
  }

  void OnReadDone(bool ok) override {
    if (!ok) return;
    std::vector<grpc::Slice> slices;
    std::string bytes;
    if (read_buffer_.Dump(&slices).ok()) {
      for (const auto& s : slices) bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
    }
    v1::BatchAck ack;
    if (!ack.ParseFromString(bytes)) ack.set_status_message("unparsable ack");
    {
      MutexLock lock(&mu_);
      result_.acks.push_back(std::move(ack));
    }
    StartReading();
  }

  void OnDone(const grpc::Status& status) override {
    {
      MutexLock lock(&mu_);
      result_.status = status;
    }
    done_.Notify();
  }

 private:
  void WriteNext() {
    const std::string& m = messages_[next_write_++];
    grpc::Slice slice(m);
    write_buffer_ = grpc::ByteBuffer(&slice, 1);
    StartWrite(&write_buffer_);
  }
  void StartReading() {
    // A deliberately slow consumer: this client thread is its own.
    if (behaviour_.ack_pause > absl::ZeroDuration()) absl::SleepFor(behaviour_.ack_pause);
    StartRead(&read_buffer_);
  }

  grpc::ClientContext context_;
  const std::vector<std::string> messages_;
  const Behaviour behaviour_;
  size_t next_write_ = 0;  // only the writing reaction touches it
  grpc::ByteBuffer write_buffer_;
  grpc::ByteBuffer read_buffer_;
  Mutex mu_;
  StreamResult result_ ABSL_GUARDED_BY(mu_);
  Notification done_;
};

class AdversarialStreamTest : public ::testing::Test {
 protected:
  void SetUp() override {
    db_ = MigratedDatabase();
    // Idempotency keys live on in the shared Redis: a prefix per test.
    batches_ = {.key_prefix = absl::StrCat(db_.substr(db_.rfind('=') + 1), "-",
                                           absl::ToUnixMicros(absl::Now()), "-"),
                .sensor_prefix = "adv-",
                .base_ms = telemetry::testing::FreshBaseMs(),
                .per_batch = kPerBatch};
    ingest::IngestServerOptions o = telemetry::testing::LoopbackGateway(db_);
    o.service.max_stream_window = 16;  // the default, spelled out: clients exceed it
    auto s = ingest::IngestServer::Start(o);
    ASSERT_TRUE(s.ok()) << s.status();
    server_ = *std::move(s);
    channel_ = grpc::CreateChannel(absl::StrCat("127.0.0.1:", server_->port()),
                                   grpc::InsecureChannelCredentials());
    generic_ = std::make_unique<grpc::GenericStub>(channel_);
    stub_ = v1::IngestService::NewStub(channel_);
  }
  void TearDown() override {
    if (server_) server_->Shutdown(absl::Seconds(5));
  }

  std::vector<std::string> Messages(int first, int count) const {
    std::vector<std::string> out;
    for (int b = first; b < first + count; ++b) {
      out.push_back(batches_.Batch(b).SerializeAsString());
    }
    return out;
  }

  // Runs the streams at once and waits for all of them (bounded).
  std::vector<StreamResult> Run(const std::vector<std::pair<std::vector<std::string>, Behaviour>>&
                                    streams) {
    std::vector<std::unique_ptr<RawStream>> running;
    for (const auto& [messages, behaviour] : streams) {
      running.push_back(std::make_unique<RawStream>(generic_.get(), messages, behaviour));
    }
    std::vector<StreamResult> results(running.size());
    for (size_t i = 0; i < running.size(); ++i) {
      // A stream that never ends is a failure, but its reactor must not be
      // destroyed while gRPC still uses it: cancel, then wait for OnDone.
      if (!running[i]->Wait(absl::Seconds(120), &results[i])) {
        ADD_FAILURE() << "stream " << i << " did not end within 120 s";
        running[i].release();  // leaked on purpose: gRPC may still call it
      }
    }
    return results;
  }

  // Every batch acked OK carries its key and all its readings; returns the
  // keys acked so. No valid batch may be refused.
  static std::set<std::string> CheckAcks(const std::vector<StreamResult>& results) {
    std::set<std::string> acked;
    for (const StreamResult& r : results) {
      for (const v1::BatchAck& ack : r.acks) {
        EXPECT_EQ(ack.status_code(), 0) << ack.status_message();
        if (ack.status_code() != 0) continue;
        EXPECT_FALSE(ack.idempotency_key().empty());
        EXPECT_EQ(ack.accepted() + ack.duplicates(), static_cast<uint32_t>(kPerBatch))
            << ack.idempotency_key();
        EXPECT_EQ(ack.rejected(), 0u);
        EXPECT_TRUE(acked.insert(ack.idempotency_key()).second)
            << "acked twice on one run: " << ack.idempotency_key();
      }
    }
    return acked;
  }

  // Rows stored for the batches whose keys are `keys`.
  int64_t RowsOf(const std::set<std::string>& keys) {
    std::set<int> batches;
    for (const std::string& k : keys) {
      batches.insert(std::stoi(k.substr(batches_.key_prefix.size())));
    }
    return std::stoll(QueryScalar(db_, batches_.RowsOfSql(batches)));
  }

  // Resends batches [0, count) as unary calls, the way a client that lost
  // its stream would; each must succeed.
  void ResendUnary(int count) {
    for (int b = 0; b < count; ++b) {
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
      v1::BatchAck ack;
      grpc::Status st = stub_->WriteBatch(&ctx, batches_.Batch(b), &ack);
      ASSERT_TRUE(st.ok()) << b << ": " << st.error_message();
      ASSERT_EQ(ack.accepted() + ack.duplicates(), static_cast<uint32_t>(kPerBatch));
    }
  }

  // The whole table: every reading of batches [0, count) exactly once, with
  // the values sent; no stream left open.
  void ExpectExactlyOnce(int count) {
    telemetry::testing::ExpectExactlyOnceAndNoStreamOpen(db_, batches_, count,
                                                         server_->metrics_port());
  }

  std::string db_;
  telemetry::testing::ExactBatches batches_;
  std::unique_ptr<ingest::IngestServer> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<grpc::GenericStub> generic_;
  std::unique_ptr<v1::IngestService::Stub> stub_;
};

TEST_F(AdversarialStreamTest, HundredsOfBatchesInFlightOnOneStreamAreAllStoredExactly) {
  constexpr int kBatches = 400;
  auto results = Run({{Messages(0, kBatches), Behaviour{}}});
  ASSERT_EQ(results.size(), 1u);
  EXPECT_TRUE(results[0].status.ok()) << results[0].status.error_message();
  EXPECT_EQ(results[0].written, kBatches);
  EXPECT_EQ(results[0].acks.size(), static_cast<size_t>(kBatches));
  EXPECT_EQ(CheckAcks(results).size(), static_cast<size_t>(kBatches));
  ExpectExactlyOnce(kBatches);
}

TEST_F(AdversarialStreamTest, WritesWithNoAckReadUntilHalfCloseAreAllAcknowledged) {
  // 200 acks fit the client's HTTP/2 receive window, so the client never
  // has to read to make progress; the server must not lose any of them.
  constexpr int kBatches = 200;
  auto results = Run({{Messages(0, kBatches), Behaviour{.read_while_writing = false}}});
  EXPECT_TRUE(results[0].status.ok()) << results[0].status.error_message();
  EXPECT_EQ(results[0].acks.size(), static_cast<size_t>(kBatches));
  EXPECT_EQ(CheckAcks(results).size(), static_cast<size_t>(kBatches));
  ExpectExactlyOnce(kBatches);
}

TEST_F(AdversarialStreamTest, ASlowAckReaderGetsEveryAck) {
  constexpr int kBatches = 120;
  auto results =
      Run({{Messages(0, kBatches), Behaviour{.ack_pause = absl::Milliseconds(3)}}});
  EXPECT_TRUE(results[0].status.ok()) << results[0].status.error_message();
  EXPECT_EQ(CheckAcks(results).size(), static_cast<size_t>(kBatches));
  ExpectExactlyOnce(kBatches);
}

TEST_F(AdversarialStreamTest, CancelsAtArbitraryPointsLoseNothingAckedAndResendsLandOnce) {
  constexpr int kStreams = 24, kPerStream = 40;
  std::mt19937 random(20261201);
  std::vector<std::pair<std::vector<std::string>, Behaviour>> streams;
  for (int s = 0; s < kStreams; ++s) {
    Behaviour b;
    // 0: cancelled before the first write; up to the whole stream.
    b.cancel_after_writes = static_cast<int>(random() % (kPerStream + 1));
    b.read_while_writing = (s % 3) != 0;
    b.half_close = (s % 4) != 0;
    streams.push_back({Messages(s * kPerStream, kPerStream), b});
  }
  // Four waves of six streams at once.
  std::set<std::string> acked;
  for (int wave = 0; wave < 4; ++wave) {
    std::vector<std::pair<std::vector<std::string>, Behaviour>> some(
        streams.begin() + wave * 6, streams.begin() + (wave + 1) * 6);
    for (const StreamResult& r : Run(some)) {
      for (const v1::BatchAck& a : r.acks) {
        EXPECT_EQ(a.status_code(), 0) << a.status_message();
        if (a.status_code() == 0) acked.insert(a.idempotency_key());
      }
    }
  }
  // What was acknowledged is stored, whatever happened to the stream after.
  EXPECT_EQ(RowsOf(acked), static_cast<int64_t>(acked.size()) * kPerBatch);
  ResendUnary(kStreams * kPerStream);
  ExpectExactlyOnce(kStreams * kPerStream);
}

TEST_F(AdversarialStreamTest, ManyMisbehavingStreamsAtOnce) {
  constexpr int kPerStream = 150;
  const std::vector<Behaviour> kinds = {
      Behaviour{},
      Behaviour{.read_while_writing = false},
      Behaviour{.ack_pause = absl::Milliseconds(2)},
      Behaviour{.cancel_after_writes = 70},
      Behaviour{.cancel_after_writes = 149, .half_close = false},
      Behaviour{.read_while_writing = false, .cancel_after_writes = 100},
  };
  std::vector<std::pair<std::vector<std::string>, Behaviour>> streams;
  for (int s = 0; s < 12; ++s) {
    streams.push_back({Messages(s * kPerStream, kPerStream), kinds[s % kinds.size()]});
  }
  std::vector<StreamResult> results = Run(streams);
  std::set<std::string> acked;
  for (size_t s = 0; s < results.size(); ++s) {
    const Behaviour& b = streams[s].second;
    if (b.cancel_after_writes < 0) {
      EXPECT_TRUE(results[s].status.ok()) << s << ": " << results[s].status.error_message();
      EXPECT_EQ(results[s].acks.size(), static_cast<size_t>(kPerStream)) << s;
    }
    for (const v1::BatchAck& a : results[s].acks) {
      EXPECT_EQ(a.status_code(), 0) << a.status_message();
      if (a.status_code() == 0) acked.insert(a.idempotency_key());
    }
  }
  EXPECT_EQ(RowsOf(acked), static_cast<int64_t>(acked.size()) * kPerBatch);
  ResendUnary(12 * kPerStream);
  ExpectExactlyOnce(12 * kPerStream);
}

}  // namespace
}  // namespace telemetry
