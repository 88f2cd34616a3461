#include "server/ingest/batch_admission.h"

#include <grpcpp/impl/codegen/proto_utils.h>

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "server/common/log.h"
#include "server/common/status_util.h"

namespace telemetry::ingest {
namespace {

using telemetry::v1::BatchAck;
using telemetry::v1::ReadingBatch;

// PermissionDenied naming the first sensor `device` may not write, or OK.
absl::Status CheckSensorsAllowed(const DeviceIdentity& device,
                                 const std::vector<ReadingRow>& rows) {
  size_t denied = 0;
  const ReadingRow* first = nullptr;
  for (const ReadingRow& row : rows) {
    if (device.MayWrite(row.sensor_id)) continue;
    if (first == nullptr) first = &row;
    ++denied;
  }
  if (denied == 0) return absl::OkStatus();
  return absl::PermissionDeniedError(absl::StrCat(
      "device '", device.device_id, "' may not write sensor '", first->sensor_id, "' (",
      denied, " of ", rows.size(), " readings are for sensors it does not own); nothing in "
      "this batch was stored"));
}

// How the logs and the status page name the sender ("-": no device, with
// authentication off).
absl::string_view DeviceName(const DeviceIdentity* device) {
  return device != nullptr ? absl::string_view(device->device_id) : absl::string_view("-");
}

}  // namespace

BatchAdmission::BatchAdmission(AdmissionOptions options, IngestMetrics* metrics)
    : options_(std::move(options)),
      metrics_(metrics),
      limiter_(options_.device_limits, options_.validation.max_batch_readings) {}

AdmittedBatch BatchAdmission::Parse(const grpc::ByteBuffer& message,
                                    const DeviceIdentity* device, std::string correlation_id) {
  AdmittedBatch b;
  b.ack.set_correlation_id(std::move(correlation_id));
  const size_t size = message.Length();
  grpc::ByteBuffer copy(message);  // shares the slices
  const bool parsed =
      grpc::SerializationTraits<ReadingBatch>::Deserialize(&copy, &b.request).ok();
  // Known even when parsing failed further on (field 1 comes first on the
  // wire): the client matches the refusal to its batch by it.
  b.ack.set_idempotency_key(b.request.idempotency_key());
  if (!parsed) {
    Refuse(absl::InvalidArgumentError(
               "the message is not a valid telemetry.v1.ReadingBatch (a string field that "
               "is not UTF-8, metadata nested beyond protobuf's depth limit, or bytes that "
               "are not protobuf)"),
           device, &b);
    return b;
  }
  if (size > options_.max_message_bytes) {
    // Refused after parsing, so that the refusal can name its key.
    b.request.clear_readings();
    Refuse(absl::InvalidArgumentError(absl::StrCat("the message is ", size,
                                                   " bytes; the limit is ",
                                                   options_.max_message_bytes,
                                                   " bytes: split the batch")),
           device, &b);
  }
  return b;
}

void BatchAdmission::Admit(const DeviceIdentity* device, AdmittedBatch* b) {
  ValidatedBatch v = ValidateBatch(b->request, options_.validation, absl::Now());
  if (v.status.ok() && device != nullptr) {
    if (absl::Status s = CheckSensorsAllowed(*device, v.rows); !s.ok()) {
      if (metrics_) metrics_->auth_failures.Increment();
      v.status = std::move(s);
    }
  }
  if (!v.status.ok()) {
    Refuse(std::move(v.status), device, b);
    return;
  }
  if (device != nullptr && !v.rows.empty()) {
    const absl::Duration wait = limiter_.AdmitReadings(device->device_id, v.rows.size(),
                                                       absl::Now());
    if (wait > absl::ZeroDuration()) {
      if (metrics_) metrics_->batches_throttled.Increment();
      b->retry_after = wait;
      b->ack.mutable_retry_after()->set_seconds(absl::ToInt64Seconds(wait));
      b->ack.mutable_retry_after()->set_nanos(
          static_cast<int32_t>(absl::ToInt64Nanoseconds(wait % absl::Seconds(1))));
      Refuse(absl::ResourceExhaustedError(absl::StrCat(
                 "device '", device->device_id, "' is over its limit of ",
                 options_.device_limits.readings_per_second, " readings/s; retry in ",
                 absl::ToInt64Milliseconds(wait), " ms")),
             device, b);
      return;
    }
  }
  b->ack.set_rejected(static_cast<uint32_t>(v.rejections.size()));
  for (auto& r : v.rejections) *b->ack.add_rejections() = std::move(r);
  b->dedupe_key = DedupeKey(b->request, device);
  b->rows = std::move(v.rows);
  b->request.clear_readings();  // the rows hold them now
}

void BatchAdmission::Refuse(absl::Status status, const DeviceIdentity* device,
                            AdmittedBatch* b) {
  // Throttling is not invalid input; everything else refused here is.
  if (metrics_ && !absl::IsResourceExhausted(status) && !absl::IsUnauthenticated(status)) {
    metrics_->batches_invalid.Increment();
  }
  SetAckStatus(status, &b->ack);
  LogRefusal(b->ack.correlation_id(), device, b->ack.idempotency_key(),
             b->ack.status_message());
  // A call without credentials is nobody's activity (a revoked device's
  // is still its own).
  if (device != nullptr || !absl::IsUnauthenticated(status)) {
    activity_.RecordRefusal(DeviceName(device), absl::Now());
  }
  b->status = std::move(status);
}

void BatchAdmission::Complete(const BatchOutcome& outcome, const DeviceIdentity* device,
                              BatchAck* ack) {
  if (!outcome.status.ok()) {
    SetAckStatus(outcome.status, ack);  // the public message; the detail is logged
    LogRefusal(ack->correlation_id(), device, ack->idempotency_key(), outcome.status.message());
    activity_.RecordRefusal(DeviceName(device), absl::Now());
    return;
  }
  ack->set_accepted(outcome.accepted);
  ack->set_duplicates(outcome.duplicates);
  const bool resend = outcome.accepted == 0 && outcome.duplicates > 0;
  activity_.RecordBatch(DeviceName(device), outcome.accepted, outcome.duplicates,
                        resend ? 0 : ack->rejected(), absl::Now());
  if (metrics_ != nullptr && !resend) {
    metrics_->readings_rejected.Increment(static_cast<double>(ack->rejected()));
  }
}

void BatchAdmission::RefusedBySubmit(absl::string_view correlation_id,
                                     absl::string_view idempotency_key,
                                     const absl::Status& status, const DeviceIdentity* device) {
  LogRefusal(correlation_id, device, idempotency_key, status.message());
  activity_.RecordRefusal(DeviceName(device), absl::Now());
}

void BatchAdmission::LogRefusal(absl::string_view correlation_id, const DeviceIdentity* device,
                                absl::string_view idempotency_key, absl::string_view reason) {
  static LogRateLimiter limit(20, absl::Seconds(1));
  int64_t left_out = 0;
  if (!limit.Allow(&left_out)) return;
  Log(LogLevel::kWarning, "batch not stored",
      {{"request_id", std::string(correlation_id)},
       {"device", std::string(DeviceName(device))},
       {"idempotency_key", std::string(idempotency_key)},
       {"reason", std::string(reason)},
       {"similar_lines_left_out", absl::StrCat(left_out)}});
}

std::string BatchAdmission::DedupeKey(const ReadingBatch& batch, const DeviceIdentity* device) {
  if (device == nullptr) return batch.idempotency_key();
  return absl::StrCat(device->device_id, "/", batch.idempotency_key());
}

}  // namespace telemetry::ingest
