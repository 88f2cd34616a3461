// The steps every message takes before the pipeline, the same for a stream
// and for WriteBatch: parse -> validate (and the device's sensor scope) ->
// throttle, then, once the pipeline answers, the ack. Whatever is refused
// is counted and logged (rate-limited) here, so both paths refuse alike.
//
// Pure but for the device limiter, the metrics and the log: no I/O, so a
// gRPC reaction may call it. Thread-safe.
#ifndef TELEMETRY_SERVER_INGEST_BATCH_ADMISSION_H_
#define TELEMETRY_SERVER_INGEST_BATCH_ADMISSION_H_

#include <grpcpp/support/byte_buffer.h>

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "server/common/credentials.h"
#include "server/ingest/device_activity.h"
#include "server/ingest/device_limiter.h"
#include "server/ingest/ingest_metrics.h"
#include "server/ingest/ingest_pipeline.h"
#include "server/ingest/validator.h"
#include "storage/reading_row.h"
#include "telemetry/v1/ingest.pb.h"

namespace telemetry::ingest {

struct AdmissionOptions {
  ValidationOptions validation;
  // Per-device rate and stream limits; they apply to authenticated devices
  // (with authentication off there is no device to hold to them).
  DeviceLimits device_limits;
  // A larger message is refused as INVALID_ARGUMENT (on a stream, that
  // message alone). IngestServer sets it from its own max_message_bytes.
  size_t max_message_bytes = 8 << 20;
};

// One message on its way to the pipeline.
struct AdmittedBatch {
  // Non-OK: refused (nothing of it is stored); `ack` carries the status.
  absl::Status status;
  absl::Duration retry_after;  // for a throttled batch
  telemetry::v1::ReadingBatch request;
  std::string dedupe_key;
  std::vector<ReadingRow> rows;  // the valid readings, for the pipeline
  // Key, correlation id and rejected readings, and on refusal its status.
  telemetry::v1::BatchAck ack;
};

class BatchAdmission {
 public:
  // `metrics` (nullable) must outlive this.
  BatchAdmission(AdmissionOptions options, IngestMetrics* metrics);

  // Parses the wire bytes of a ReadingBatch. A message that is not one, or
  // is over max_message_bytes, is refused (its key is in the ack when it
  // parsed, as an oversized one does).
  AdmittedBatch Parse(const grpc::ByteBuffer& message, const DeviceIdentity* device,
                      std::string correlation_id);

  // Validates and throttles a parsed batch: refuses it whole (batch-level
  // problems, a sensor outside the device's scope, the device over its
  // rate) or leaves the valid rows for the pipeline. REQUIRES: batch->status
  // is OK.
  void Admit(const DeviceIdentity* device, AdmittedBatch* batch);

  // Refuses `batch` with `status` (for reasons found by the caller).
  void Refuse(absl::Status status, const DeviceIdentity* device, AdmittedBatch* batch);

  // Completes `ack` with the pipeline's outcome. Rejected readings are
  // counted once: not when the batch was not stored, nor when it was a
  // resend answered as a duplicate (they were counted the first time).
  void Complete(const BatchOutcome& outcome, const DeviceIdentity* device,
                telemetry::v1::BatchAck* ack);

  // The pipeline refused an admitted batch at once (queue full, shutting
  // down): logged and counted for its device; the caller answers it.
  void RefusedBySubmit(absl::string_view correlation_id, absl::string_view idempotency_key,
                       const absl::Status& status, const DeviceIdentity* device);
  // One warning line (rate-limited) for a batch of which nothing was stored.
  void LogRefusal(absl::string_view correlation_id, const DeviceIdentity* device,
                  absl::string_view idempotency_key, absl::string_view reason);

  // The deduplication key of `batch` from `device`: idempotency keys are
  // the devices' own, so two devices' equal keys must not collide.
  static std::string DedupeKey(const telemetry::v1::ReadingBatch& batch,
                               const DeviceIdentity* device);

  DeviceLimiter& limiter() { return limiter_; }
  // Every answered batch by device (the status page's device table).
  const DeviceActivity& activity() const { return activity_; }
  const AdmissionOptions& options() const { return options_; }

 private:
  const AdmissionOptions options_;
  IngestMetrics* const metrics_;
  DeviceLimiter limiter_;
  DeviceActivity activity_;
};

}  // namespace telemetry::ingest

#endif  // TELEMETRY_SERVER_INGEST_BATCH_ADMISSION_H_
