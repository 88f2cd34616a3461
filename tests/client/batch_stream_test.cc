// BatchStream against fake gateways on loopback that misbehave in ways our
// gateway does not: acks in reverse order, acks that never come, a
// half-close that is never answered. Each fake is a plain synchronous gRPC
// service, so what it does is written out in order in the test.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <atomic>
#include <functional>
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

// Whether `acks` reaches `n` within 20 s (polled).
bool AcksReach(const std::atomic<int>& acks, int n) {
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  while (acks.load() < n && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(5));
  return acks.load() == n;
}

// A gateway that takes every batch and never answers, until cancelled.
grpc::Status TakeAllAnswerNothing(grpc::ServerContext* context, Stream* stream) {
  ReadingBatch b;
  while (stream->Read(&b)) {
  }
  WaitForCancel(context);
  return grpc::Status::OK;
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
  auto gateway = std::make_unique<FakeGateway>(
      [&](grpc::ServerContext* context, Stream* stream, int call) {
        if (call == 0) {
          grpc::Status status = TakeAllAnswerNothing(context, stream);
          if (context->IsCancelled()) ++first_call_cancelled;
          return status;
        }
        ReadingBatch b;
        while (stream->Read(&b)) stream->Write(AckFor(b));
        return grpc::Status::OK;
      });
  StreamOptions options;
  options.ack_timeout = absl::Seconds(1);
  options.retry.initial_backoff = absl::Milliseconds(10);
  StreamStats stats;
  {
    BatchStream stream(gateway->Channel(), options);
    ASSERT_TRUE(stream.Send(Batch(1)).ok());
    ASSERT_TRUE(stream.Send(Batch(2)).ok());
    auto closed = stream.Close(absl::Seconds(30));
    ASSERT_TRUE(closed.ok()) << closed.status();
    stats = *closed;
  }
  EXPECT_EQ(stats.batches_acked, 2u);
  EXPECT_EQ(stats.resends, 2u);
  EXPECT_EQ(stats.reconnects, 1u);
  EXPECT_EQ(gateway->calls(), 2);
  gateway.reset();  // waits for the handlers, so the count below is final
  EXPECT_EQ(first_call_cancelled.load(), 1);
}

// The supervisor sleeps while batches flow; a batch written long after the
// last one still gets its ack deadline enforced.
TEST(BatchStreamTest, ABatchSentAfterAnIdleSpellStillTimesOut) {
  std::atomic<int> acks_on_first_call{0};
  FakeGateway gateway([&](grpc::ServerContext* context, Stream* stream, int call) {
    ReadingBatch b;
    while (stream->Read(&b)) {
      // The first call answers only the first batch.
      if (call > 0 || acks_on_first_call.fetch_add(1) == 0) stream->Write(AckFor(b));
    }
    if (call == 0) WaitForCancel(context);
    return grpc::Status::OK;
  });
  StreamOptions options;
  options.ack_timeout = absl::Seconds(1);
  options.retry.initial_backoff = absl::Milliseconds(10);
  std::atomic<int> final_acks{0};
  BatchStream stream(gateway.Channel(), options, [&](const BatchAck&) { ++final_acks; });
  ASSERT_TRUE(stream.Send(Batch(1)).ok());
  ASSERT_TRUE(AcksReach(final_acks, 1));
  // The scenario itself: the device is quiet for longer than the timeout.
  absl::SleepFor(options.ack_timeout * 1.5);
  ASSERT_TRUE(stream.Send(Batch(2)).ok());  // never answered on the first call
  auto stats = stream.Close(absl::Seconds(30));
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(stats->batches_acked, 2u);
  EXPECT_EQ(stats->reconnects, 1u);
  EXPECT_EQ(gateway.calls(), 2);
}

// A connected gateway that stops reading after one batch: whether the big
// write completes into gRPC's buffers or waits for flow control, its ack
// clock runs and the stream is timed out and reopened.
TEST(BatchStreamTest, AGatewayThatStopsReadingIsTimedOut) {
  FakeGateway gateway([](grpc::ServerContext* context, Stream* stream, int call) {
    ReadingBatch b;
    if (call == 0) {
      if (stream->Read(&b)) stream->Write(AckFor(b));
      WaitForCancel(context);  // reads nothing more
      return grpc::Status::OK;
    }
    while (stream->Read(&b)) stream->Write(AckFor(b));
    return grpc::Status::OK;
  });
  StreamOptions options;
  options.ack_timeout = absl::Seconds(1);
  options.retry.initial_backoff = absl::Milliseconds(10);
  std::atomic<int> final_acks{0};
  BatchStream stream(gateway.Channel(), options, [&](const BatchAck&) { ++final_acks; });
  ASSERT_TRUE(stream.Send(Batch(1)).ok());
  ASSERT_TRUE(AcksReach(final_acks, 1));
  // ~3 MB: far more than the stream's flow-control window.
  ReadingBatch big = Batch(2);
  for (int i = 0; i < 3'000; ++i) big.add_readings()->set_unit(std::string(1'000, 'u'));
  ASSERT_TRUE(stream.Send(std::move(big)).ok());
  auto stats = stream.Close(absl::Seconds(30));
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(stats->batches_acked, 2u);
  EXPECT_EQ(stats->reconnects, 1u);
  EXPECT_EQ(gateway.calls(), 2);
}

TEST(BatchStreamTest, CloseIsBoundedWhenTheHalfCloseIsNeverAnswered) {
  std::atomic<int> half_closes{0};
  auto gateway = std::make_unique<FakeGateway>(
      [&](grpc::ServerContext* context, Stream* stream, int) {
        ReadingBatch b;
        while (stream->Read(&b)) stream->Write(AckFor(b));
        if (!context->IsCancelled()) ++half_closes;  // reads ended by the half-close
        WaitForCancel(context);  // and never finishes the call by itself
        return grpc::Status::OK;
      });
  BatchStream stream(gateway->Channel(), {});
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(stream.Send(Batch(i)).ok());
  const absl::Time start = absl::Now();
  auto stats = stream.Close(absl::Seconds(3));
  const absl::Duration took = absl::Now() - start;
  // Every batch was acked, so the stats stand; the unanswered half-close
  // only ends the wait.
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(stats->batches_acked, 3u);
  EXPECT_LT(took, absl::Seconds(20)) << "Close waited for the server, not its timeout";
  gateway.reset();
  EXPECT_EQ(half_closes.load(), 1);
}

// Every batch acked: even Close(0), as the destructor calls it, ends the
// stream with a half-close the gateway sees, not a cancel.
TEST(BatchStreamTest, CloseWithNoTimeLeftStillHalfClosesAnAckedStream) {
  std::atomic<int> half_closes{0};
  std::atomic<int> final_acks{0};
  auto gateway = std::make_unique<FakeGateway>(
      [&](grpc::ServerContext* context, Stream* stream, int) {
        ReadingBatch b;
        while (stream->Read(&b)) stream->Write(AckFor(b));
        if (!context->IsCancelled()) ++half_closes;
        return grpc::Status::OK;
      });
  BatchStream stream(gateway->Channel(), {}, [&](const BatchAck&) { ++final_acks; });
  ASSERT_TRUE(stream.Send(Batch(1)).ok());
  ASSERT_TRUE(AcksReach(final_acks, 1));
  auto stats = stream.Close(absl::ZeroDuration());
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(stats->batches_acked, 1u);
  gateway.reset();
  EXPECT_EQ(half_closes.load(), 1);
}

// The gateway refuses the half-close itself after acking everything: the
// batches are stored, so Close reports them, not the refusal.
TEST(BatchStreamTest, ARefusalAfterTheLastAckDoesNotHideTheStats) {
  FakeGateway gateway([](grpc::ServerContext*, Stream* stream, int) {
    ReadingBatch b;
    while (stream->Read(&b)) stream->Write(AckFor(b));
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "token revoked");
  });
  BatchStream stream(gateway.Channel(), {});
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(stream.Send(Batch(i)).ok());
  auto stats = stream.Close(absl::Seconds(20));
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(stats->batches_acked, 3u);
}

TEST(BatchStreamTest, CloseTimesOutWhenAcksNeverComeAndSaysHowMany) {
  FakeGateway gateway([](grpc::ServerContext* context, Stream* stream, int) {
    return TakeAllAnswerNothing(context, stream);
  });
  BatchStream stream(gateway.Channel(), {});  // ack_timeout 30 s: never reached
  ASSERT_TRUE(stream.Send(Batch(1)).ok());
  ASSERT_TRUE(stream.Send(Batch(2)).ok());
  auto stats = stream.Close(absl::Milliseconds(500));
  ASSERT_EQ(stats.status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_NE(stats.status().message().find("2 batches were not acknowledged"),
            std::string::npos)
      << stats.status();
}

TEST(BatchStreamTest, DestroyedWithBatchesInFlightItStopsWithoutClose) {
  FakeGateway gateway([](grpc::ServerContext* context, Stream* stream, int) {
    return TakeAllAnswerNothing(context, stream);
  });
  std::atomic<int> final_acks{0};
  {
    BatchStream stream(gateway.Channel(), {}, [&](const BatchAck&) { ++final_acks; });
    for (int i = 0; i < 5; ++i) ASSERT_TRUE(stream.Send(Batch(i)).ok());
  }  // the destructor cancels the call and joins; no callback after it
  EXPECT_EQ(final_acks.load(), 0);
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
