// BatchStream against fake gateways on loopback that misbehave in ways our
// gateway does not: acks in reverse order, acks that never come, a
// half-close that is never answered. Each fake is a plain synchronous gRPC
// service, so what it does is written out in order in the test.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "client/telemetry_client.h"
#include "telemetry/v1/ingest.grpc.pb.h"

namespace telemetry::client {
namespace {

using telemetry::v1::BatchAck;
using telemetry::v1::ReadingBatch;
using Stream = grpc::ServerReaderWriter<BatchAck, ReadingBatch>;

// One handler per StreamReadings call; `call` counts from 0.
using Handler = std::function<grpc::Status(grpc::ServerContext*, Stream*, int call)>;

class FakeGateway final : public telemetry::v1::IngestService::Service {
 public:
  explicit FakeGateway(Handler handler) : handler_(std::move(handler)) {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    builder.RegisterService(this);
    server_ = builder.BuildAndStart();
  }
  ~FakeGateway() override { server_->Shutdown(absl::ToChronoTime(absl::Now() + absl::Seconds(5))); }

  std::shared_ptr<grpc::Channel> Channel() const {
    return grpc::CreateChannel(absl::StrCat("127.0.0.1:", port_),
                               grpc::InsecureChannelCredentials());
  }
  int calls() const { return calls_.load(); }

  grpc::Status StreamReadings(grpc::ServerContext* context, Stream* stream) override {
    return handler_(context, stream, calls_.fetch_add(1));
  }

 private:
  Handler handler_;
  int port_ = 0;
  std::atomic<int> calls_{0};
  std::unique_ptr<grpc::Server> server_;
};

ReadingBatch Batch(int i) {
  ReadingBatch b;
  b.set_idempotency_key(absl::StrCat("k", i));
  return b;
}

BatchAck AckFor(const ReadingBatch& b) {
  BatchAck ack;
  ack.set_idempotency_key(b.idempotency_key());
  ack.set_accepted(1);
  return ack;
}

// Until the client cancels, bounded.
void WaitForCancel(grpc::ServerContext* context) {
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (!context->IsCancelled() && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(5));
}

TEST(BatchStreamTest, AcksInReverseOrderOfADeepWindowAllCount) {
  constexpr int kWindow = 32;
  FakeGateway gateway([](grpc::ServerContext*, Stream* stream, int) {
    std::vector<ReadingBatch> held;
    ReadingBatch b;
    while (stream->Read(&b)) {
      held.push_back(b);
      if (held.size() < kWindow) continue;
      for (auto it = held.rbegin(); it != held.rend(); ++it) stream->Write(AckFor(*it));
      held.clear();
    }
    for (auto it = held.rbegin(); it != held.rend(); ++it) stream->Write(AckFor(*it));
    return grpc::Status::OK;
  });
  std::atomic<int> final_acks{0};
  StreamOptions options;
  options.max_in_flight = kWindow;
  BatchStream stream(gateway.Channel(), options,
                     [&](const BatchAck&) { ++final_acks; });
  for (int i = 0; i < 10 * kWindow; ++i) ASSERT_TRUE(stream.Send(Batch(i)).ok());
  auto stats = stream.Close(absl::Seconds(30));
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(stats->batches_acked, 10u * kWindow);
  EXPECT_EQ(stats->accepted, 10u * kWindow);
  EXPECT_EQ(stats->resends, 0u);
  EXPECT_EQ(final_acks.load(), 10 * kWindow);
  EXPECT_EQ(gateway.calls(), 1);
}

TEST(BatchStreamTest, AnOverdueAckCancelsTheStreamAndTheBatchGoesAgain) {
  std::atomic<int> first_call_cancelled{0};
  FakeGateway gateway([&](grpc::ServerContext* context, Stream* stream, int call) {
    ReadingBatch b;
    if (call == 0) {  // takes the batches, never answers
      while (stream->Read(&b)) {
      }
      WaitForCancel(context);
      if (context->IsCancelled()) ++first_call_cancelled;
      return grpc::Status::OK;
    }
    while (stream->Read(&b)) stream->Write(AckFor(b));
    return grpc::Status::OK;
  });
  StreamOptions options;
  options.ack_timeout = absl::Milliseconds(300);
  options.retry.initial_backoff = absl::Milliseconds(10);
  BatchStream stream(gateway.Channel(), options);
  ASSERT_TRUE(stream.Send(Batch(1)).ok());
  ASSERT_TRUE(stream.Send(Batch(2)).ok());
  auto stats = stream.Close(absl::Seconds(30));
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(stats->batches_acked, 2u);
  EXPECT_EQ(stats->resends, 2u);
  EXPECT_EQ(stats->reconnects, 1u);
  EXPECT_EQ(first_call_cancelled.load(), 1);
  EXPECT_EQ(gateway.calls(), 2);
}

TEST(BatchStreamTest, CloseIsBoundedWhenTheHalfCloseIsNeverAnswered) {
  std::atomic<bool> saw_half_close{false};
  FakeGateway gateway([&](grpc::ServerContext* context, Stream* stream, int) {
    ReadingBatch b;
    while (stream->Read(&b)) stream->Write(AckFor(b));
    saw_half_close = true;
    WaitForCancel(context);  // and never finishes the call by itself
    return grpc::Status::OK;
  });
  BatchStream stream(gateway.Channel(), {});
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(stream.Send(Batch(i)).ok());
  const absl::Time start = absl::Now();
  auto stats = stream.Close(absl::Seconds(1));
  const absl::Duration took = absl::Now() - start;
  // Every batch was acked, so the stats stand; the unanswered half-close
  // only ends the wait.
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(stats->batches_acked, 3u);
  EXPECT_TRUE(saw_half_close.load());
  EXPECT_LT(took, absl::Seconds(20)) << "Close waited for the server, not its timeout";
}

TEST(BatchStreamTest, SendAfterCloseIsRefusedAndNothingIsWritten) {
  FakeGateway gateway([](grpc::ServerContext*, Stream* stream, int) {
    ReadingBatch b;
    while (stream->Read(&b)) stream->Write(AckFor(b));
    return grpc::Status::OK;
  });
  BatchStream stream(gateway.Channel(), {});
  auto stats = stream.Close(absl::Seconds(5));
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(stream.Send(Batch(1)).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(gateway.calls(), 0);  // nothing to send: no call was opened
}

}  // namespace
}  // namespace telemetry::client
