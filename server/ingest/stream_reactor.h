// The reactor of one StreamReadings call (the shape of gRPC's route_guide
// callback example): read a batch, admit it (BatchAdmission), hand it to
// the pipeline, read the next one while fewer than `max_stream_window`
// batches of this stream are unacknowledged. When the pipeline's queue is
// full the reactor parks the batch and stops reading until space frees, so
// HTTP/2 flow control pushes back on the client. Acks are written one at a
// time, in completion order. No reaction blocks: authentication answers
// from the credential snapshot (or later, from the refresher's thread), and
// the pipeline's Submit does no I/O.
//
// gRPC keeps the reactor alive during its own reactions and calls OnDone
// after Finish, but pipeline and authentication callbacks run on threads
// gRPC knows nothing of: the moment one of them enqueues the last ack, the
// write can fail (the client cancelled), another thread can Finish, and
// OnDone can run while the callback is still returning. So the reactor is
// reference-counted: one reference for gRPC (dropped in OnDone) and one per
// callback handed out (dropped as the callback's last act), and whoever
// drops the last deletes it.
//
// Thread-safety: every field is guarded by mu_ or owned by one reaction at
// a time, as its comment says.
#ifndef TELEMETRY_SERVER_INGEST_STREAM_REACTOR_H_
#define TELEMETRY_SERVER_INGEST_STREAM_REACTOR_H_

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "server/common/credentials.h"
#include "server/ingest/batch_admission.h"
#include "storage/util/mutex.h"

namespace telemetry::ingest {

class IngestServiceImpl;

// An open stream as the service sees it, so that shutdown can end them.
class DrainableStream {
 public:
  virtual ~DrainableStream() = default;
  // Stop reading; finish with `status` once what was accepted is
  // acknowledged.
  virtual void Drain(const grpc::Status& status) = 0;
  virtual void Ref() = 0;
  virtual void Unref() = 0;
};

class StreamReactor final
    : public grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>,
      public DrainableStream {
 public:
  // `service` must outlive every stream (gRPC's server shutdown waits for
  // them).
  StreamReactor(IngestServiceImpl* service, grpc::CallbackServerContext* context);

  // The status a stream ends with when the gateway shuts down.
  static grpc::Status ShuttingDown();

  void Drain(const grpc::Status& status) override;
  void OnReadDone(bool ok) override;
  void OnWriteDone(bool ok) override;
  void OnDone() override;
  void Ref() override { refs_.fetch_add(1, std::memory_order_relaxed); }
  void Unref() override {
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }

 private:
  struct Parked {
    std::string key;
    std::vector<ReadingRow> rows;
    telemetry::v1::BatchAck ack;
  };

  // Once authenticated: open the stream (device limits, drain registry) and
  // start reading, or finish with the refusal.
  void Open(CredentialStore::DeviceResult device);
  // Finishes a stream that never started reading.
  void Refuse(const grpc::Status& status);
  // Runs inside the reading reaction (see OnReadDone); the message already
  // counts in window_.
  void HandleMessage();
  // "<call id>.<n>" for the stream's n-th message.
  std::string NextBatchId() { return absl::StrCat(call_id_, ".", ++messages_); }
  // REQUIRES: pending_ counts this batch; the caller holds a reference.
  void Submit(std::unique_ptr<Parked> parked);
  // Writes `ack` now, or queues it behind the write in progress.
  void EnqueueAck(const telemetry::v1::BatchAck& ack, bool was_pending = false);
  void MaybeStartRead();
  void MaybeFinish();

  IngestServiceImpl* const service_;
  grpc::CallbackServerContext* const context_;  // valid until OnDone
  const std::string call_id_;
  std::atomic<int> refs_{1};  // gRPC's, until OnDone; plus one per callback
  // Set by Open before the first read starts (StartRead is issued under
  // mu_, so reactions see it); null: authentication off.
  std::shared_ptr<const DeviceIdentity> device_;
  uint64_t messages_ = 0;     // read so far (only the reading reaction touches it)
  uint64_t credential_generation_ = 0;  // likewise (see StillAuthenticated)
  grpc::ByteBuffer request_;  // owned by the read in progress and its reaction
  Mutex mu_;
  bool counted_stream_ ABSL_GUARDED_BY(mu_) = false;  // in the device's stream count
  grpc::ByteBuffer current_ack_;  // set under mu_ with writing_; owned by that write
  std::deque<grpc::ByteBuffer> acks_ ABSL_GUARDED_BY(mu_);
  int window_ ABSL_GUARDED_BY(mu_) = 0;   // read, ack not yet written
  int pending_ ABSL_GUARDED_BY(mu_) = 0;  // awaiting a pipeline outcome
  // A read is started or its message is being consumed (see OnReadDone).
  bool reading_ ABSL_GUARDED_BY(mu_) = false;
  // Started and not yet completed: only the client can complete it.
  bool awaiting_read_ ABSL_GUARDED_BY(mu_) = false;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool parked_ ABSL_GUARDED_BY(mu_) = false;
  bool reads_done_ ABSL_GUARDED_BY(mu_) = false;
  bool write_failed_ ABSL_GUARDED_BY(mu_) = false;
  bool ended_ ABSL_GUARDED_BY(mu_) = false;  // the server ends the stream: no more reads
  grpc::Status final_status_ ABSL_GUARDED_BY(mu_);
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace telemetry::ingest

#endif  // TELEMETRY_SERVER_INGEST_STREAM_REACTOR_H_
