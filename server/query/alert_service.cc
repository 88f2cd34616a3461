#include "server/query/alert_service.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "server/common/metadata_json.h"
#include "server/query/record_requests.h"
#include "server/query/sql_values.h"

namespace telemetry::query {
namespace {

using pg::Param;

constexpr size_t kMaxEvidenceBytes = 64 * 1024;

// ----------------------------------------------------------------- alerts

const std::string& AlertColumns() {
  static const std::string* k = new std::string(absl::StrCat(
      "id::text, sensor_id, anomaly_type, severity, confidence, "
      "coalesce(description, ''), evidence::text, recommended_actions::text, status, ",
      TimestampToMicrosSql("created_at"), ", ", TimestampToMicrosSql("updated_at")));
  return *k;
}

absl::Status AlertFromRow(const pg::Result& r, int i, telemetry::v1::Alert* a) {
  a->set_id(std::string(r.Get(i, 0)));
  a->set_sensor_id(std::string(r.Get(i, 1)));
  a->set_anomaly_type(std::string(r.Get(i, 2)));
  a->set_severity(static_cast<int32_t>(r.GetInt(i, 3)));
  a->set_confidence(r.GetDouble(i, 4));
  a->set_description(std::string(r.Get(i, 5)));
  auto evidence = JsonToStruct(r.Get(i, 6));
  if (!evidence.ok()) return evidence.status();
  *a->mutable_evidence() = *std::move(evidence);
  for (std::string& s : FromTextArray(r.Get(i, 7))) a->add_recommended_actions(std::move(s));
  a->set_status(std::string(r.Get(i, 8)));
  SetFromMicros(r.GetInt(i, 9), a->mutable_created_at());
  SetFromMicros(r.GetInt(i, 10), a->mutable_updated_at());
  return absl::OkStatus();
}

}  // namespace

// ------------------------------------------------------------------ alerts

grpc::Status AlertServiceImpl::CreateAlert(grpc::ServerContext* context,
                                           const telemetry::v1::CreateAlertRequest* request,
                                           telemetry::v1::Alert* response) {
  RpcScope scope(ctx_, *context, "CreateAlert");
  if (absl::Status auth = Authorize(ctx_, *context, ApiScope::kAdmin); !auth.ok()) {
    return scope.Done(auth);
  }
  const telemetry::v1::Alert& a = request->alert();
  absl::Status s = CheckField(a.sensor_id(), "sensor_id", kMaxIdBytes, true);
  if (s.ok()) s = CheckField(a.anomaly_type(), "anomaly_type", kMaxKindBytes, true);
  if (s.ok() && (a.severity() < 1 || a.severity() > 5)) {
    s = Invalid("severity must be between 1 and 5");
  }
  if (s.ok() && !(a.confidence() >= 0 && a.confidence() <= 1)) {
    s = Invalid("confidence must be between 0 and 1");
  }
  std::string evidence = "{}";
  if (s.ok() && a.has_evidence()) {
    auto json = MetadataToJson(a.evidence(), kMaxEvidenceBytes, 32);
    if (json.ok()) {
      evidence = *std::move(json);
    } else {
      s = Invalid(absl::StrCat("evidence: ", json.status().message()));
    }
  }
  if (!s.ok()) return scope.Done(s);
  std::vector<std::string> actions(a.recommended_actions().begin(),
                                   a.recommended_actions().end());
  auto conn = ctx_.writer->Acquire();
  if (!conn.ok()) return scope.Done(conn.status());
  auto r = (*conn)->Query(
      absl::StrCat("INSERT INTO anomaly_alerts (sensor_id, anomaly_type, severity, "
                   "confidence, description, evidence, recommended_actions) VALUES ($1, $2, "
                   "$3::smallint, $4::float8, nullif($5, ''), $6::jsonb, $7::text[]) RETURNING ",
                   AlertColumns()),
      {a.sensor_id(), a.anomaly_type(), std::to_string(a.severity()),
       absl::StrCat(a.confidence()), a.description(), evidence, ToTextArray(actions)});
  if (!r.ok()) {
    return scope.Done(Explain(
        r.status(), absl::StrCat("sensor '", a.sensor_id(), "' is not registered")));
  }
  return scope.Done(AlertFromRow(*r, 0, response));
}

grpc::Status AlertServiceImpl::GetAlert(grpc::ServerContext* context,
                                        const telemetry::v1::GetAlertRequest* request,
                                        telemetry::v1::Alert* response) {
  RpcScope scope(ctx_, *context, "GetAlert");
  if (absl::Status auth = Authorize(ctx_, *context, ApiScope::kRead); !auth.ok()) {
    return scope.Done(auth);
  }
  auto r = SelectRecord(*ctx_.reader, "anomaly_alerts", AlertColumns(), request->id(), "alert");
  if (!r.ok()) return scope.Done(r.status());
  return scope.Done(AlertFromRow(*r, 0, response));
}

grpc::Status AlertServiceImpl::ListAlerts(grpc::ServerContext* context,
                                          const telemetry::v1::ListAlertsRequest* request,
                                          telemetry::v1::ListAlertsResponse* response) {
  RpcScope scope(ctx_, *context, "ListAlerts");
  if (absl::Status auth = Authorize(ctx_, *context, ApiScope::kRead); !auth.ok()) {
    return scope.Done(auth);
  }
  auto page = KeysetPage::From(request->page_token(), request->page_size());
  if (!page.ok()) return scope.Done(page.status());
  auto conn = ctx_.reader->Acquire();
  if (!conn.ok()) return scope.Done(conn.status());
  auto r = (*conn)->Query(
      absl::StrCat("SELECT ", AlertColumns(),
                   " FROM anomaly_alerts WHERE ($1::text IS NULL OR sensor_id = $1) "
                   "AND ($2::text IS NULL OR status = $2) "
                   "AND ($3::bigint IS NULL OR created_at >= ", MicrosToTimestampSql(3), ") "
                   "AND ($4::bigint IS NULL OR created_at < ", MicrosToTimestampSql(4), ") "
                   "AND ($5::bigint IS NULL OR (created_at, id) < (", MicrosToTimestampSql(5),
                   ", $6::uuid)) ORDER BY created_at DESC, id DESC LIMIT $7::int"),
      {NonEmpty(request->sensor_id()), NonEmpty(request->status()),
       NonEmpty(OptionalMicros(request->created_after(), request->has_created_after())),
       NonEmpty(OptionalMicros(request->created_before(), request->has_created_before())),
       page->after_us, page->after_id, page->FetchParam()});
  if (!r.ok()) return scope.Done(r.status());
  for (int i = 0; i < page->Kept(*r); ++i) {
    if (absl::Status s = AlertFromRow(*r, i, response->add_alerts()); !s.ok()) {
      return scope.Done(s);
    }
  }
  if (response->alerts_size() > 0) {
    const auto& last = response->alerts(response->alerts_size() - 1);
    response->set_next_page_token(page->NextToken(*r, last.created_at(), last.id()));
  }
  return scope.Done(absl::OkStatus());
}

absl::Status AlertServiceImpl::Transition(const std::string& id, const std::string& status,
                                          telemetry::v1::Alert* out) {
  auto r = UpdateRecordStatus(*ctx_.writer, "anomaly_alerts", AlertColumns(), id, status, "alert");
  if (!r.ok()) return r.status();
  return AlertFromRow(*r, 0, out);
}

grpc::Status AlertServiceImpl::AcknowledgeAlert(
    grpc::ServerContext* context, const telemetry::v1::AlertTransitionRequest* request,
    telemetry::v1::Alert* response) {
  RpcScope scope(ctx_, *context, "AcknowledgeAlert");
  if (absl::Status auth = Authorize(ctx_, *context, ApiScope::kAdmin); !auth.ok()) {
    return scope.Done(auth);
  }
  return scope.Done(Transition(request->id(), "acknowledged", response));
}

grpc::Status AlertServiceImpl::ResolveAlert(
    grpc::ServerContext* context, const telemetry::v1::AlertTransitionRequest* request,
    telemetry::v1::Alert* response) {
  RpcScope scope(ctx_, *context, "ResolveAlert");
  if (absl::Status auth = Authorize(ctx_, *context, ApiScope::kAdmin); !auth.ok()) {
    return scope.Done(auth);
  }
  return scope.Done(Transition(request->id(), "resolved", response));
}

}  // namespace telemetry::query
