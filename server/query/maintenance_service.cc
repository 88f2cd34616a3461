#include "server/query/maintenance_service.h"

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

const std::string& TaskColumns() {
  static const std::string* k = new std::string(absl::StrCat(
      "id::text, equipment_id, coalesce(sensor_id, ''), task_type, "
      "coalesce(description, ''), priority, status, estimated_duration_hours, ",
      TimestampToMicrosSql("scheduled_start_time"), ", ",
      TimestampToMicrosSql("scheduled_end_time"),
      ", coalesce(assigned_technician_id, ''), required_skills::text, parts_needed::text, ",
      TimestampToMicrosSql("created_at"), ", ", TimestampToMicrosSql("updated_at")));
  return *k;
}

void TaskFromRow(const pg::Result& r, int i, telemetry::v1::MaintenanceTask* t) {
  t->set_id(std::string(r.Get(i, 0)));
  t->set_equipment_id(std::string(r.Get(i, 1)));
  t->set_sensor_id(std::string(r.Get(i, 2)));
  t->set_task_type(std::string(r.Get(i, 3)));
  t->set_description(std::string(r.Get(i, 4)));
  t->set_priority(static_cast<int32_t>(r.GetInt(i, 5)));
  t->set_status(std::string(r.Get(i, 6)));
  if (!r.IsNull(i, 7)) t->set_estimated_duration_hours(r.GetDouble(i, 7));
  if (!r.IsNull(i, 8)) SetFromMicros(r.GetInt(i, 8), t->mutable_scheduled_start_time());
  if (!r.IsNull(i, 9)) SetFromMicros(r.GetInt(i, 9), t->mutable_scheduled_end_time());
  t->set_assigned_technician_id(std::string(r.Get(i, 10)));
  for (std::string& s : FromTextArray(r.Get(i, 11))) t->add_required_skills(std::move(s));
  for (std::string& s : FromTextArray(r.Get(i, 12))) t->add_parts_needed(std::move(s));
  SetFromMicros(r.GetInt(i, 13), t->mutable_created_at());
  SetFromMicros(r.GetInt(i, 14), t->mutable_updated_at());
}

const std::string& LogColumns() {
  static const std::string* k = new std::string(absl::StrCat(
      "id::text, task_id::text, equipment_id, ", TimestampToMicrosSql("completion_date"),
      ", technician_id, status, actual_duration_hours, coalesce(notes, ''), ",
      TimestampToMicrosSql("created_at")));
  return *k;
}

void LogFromRow(const pg::Result& r, int i, telemetry::v1::MaintenanceLog* l) {
  l->set_id(std::string(r.Get(i, 0)));
  l->set_task_id(std::string(r.Get(i, 1)));
  l->set_equipment_id(std::string(r.Get(i, 2)));
  SetFromMicros(r.GetInt(i, 3), l->mutable_completion_date());
  l->set_technician_id(std::string(r.Get(i, 4)));
  l->set_status(std::string(r.Get(i, 5)));
  if (!r.IsNull(i, 6)) l->set_actual_duration_hours(r.GetDouble(i, 6));
  l->set_notes(std::string(r.Get(i, 7)));
  SetFromMicros(r.GetInt(i, 8), l->mutable_created_at());
}

}  // namespace

grpc::Status MaintenanceServiceImpl::CreateTask(
    grpc::ServerContext* context, const telemetry::v1::CreateTaskRequest* request,
    telemetry::v1::MaintenanceTask* response) {
  RpcScope scope(ctx_, *context, "CreateTask");
  if (absl::Status auth = Authorize(ctx_, *context, ApiScope::kAdmin); !auth.ok()) {
    return scope.Done(auth);
  }
  const telemetry::v1::MaintenanceTask& t = request->task();
  absl::Status s = CheckField(t.equipment_id(), "equipment_id", kMaxIdBytes, true);
  if (s.ok()) s = CheckField(t.task_type(), "task_type", kMaxKindBytes, true);
  if (s.ok()) s = CheckField(t.sensor_id(), "sensor_id", kMaxIdBytes, false);
  if (s.ok()) s = CheckField(t.assigned_technician_id(), "assigned_technician_id", kMaxIdBytes, false);
  int priority = t.priority() == 0 ? 3 : t.priority();
  if (s.ok() && (priority < 1 || priority > 5)) s = Invalid("priority must be between 1 and 5");
  if (s.ok() && t.has_estimated_duration_hours() &&
      !(std::isfinite(t.estimated_duration_hours()) && t.estimated_duration_hours() >= 0)) {
    s = Invalid("estimated_duration_hours must be a non-negative number");
  }
  if (s.ok() && t.has_scheduled_start_time() && t.has_scheduled_end_time() &&
      ToMicros(t.scheduled_end_time()) < ToMicros(t.scheduled_start_time())) {
    s = Invalid("scheduled_end_time is before scheduled_start_time");
  }
  if (!s.ok()) return scope.Done(s);
  std::vector<std::string> skills(t.required_skills().begin(), t.required_skills().end());
  std::vector<std::string> parts(t.parts_needed().begin(), t.parts_needed().end());
  auto conn = ctx_.writer->Acquire();
  if (!conn.ok()) return scope.Done(conn.status());
  auto r = (*conn)->Query(
      absl::StrCat(
          "INSERT INTO maintenance_tasks (equipment_id, sensor_id, task_type, description, "
          "priority, estimated_duration_hours, scheduled_start_time, scheduled_end_time, "
          "assigned_technician_id, required_skills, parts_needed) VALUES ($1, $2, $3, "
          "nullif($4, ''), $5::smallint, $6::float8, ",
          MicrosToTimestampSql(7), ", ", MicrosToTimestampSql(8),
          ", $9, $10::text[], $11::text[]) RETURNING ", TaskColumns()),
      {t.equipment_id(), NonEmpty(t.sensor_id()), t.task_type(), t.description(),
       std::to_string(priority),
       t.has_estimated_duration_hours() ? Param(absl::StrCat(t.estimated_duration_hours()))
                                        : Param(),
       NonEmpty(OptionalMicros(t.scheduled_start_time(), t.has_scheduled_start_time())),
       NonEmpty(OptionalMicros(t.scheduled_end_time(), t.has_scheduled_end_time())),
       NonEmpty(t.assigned_technician_id()), ToTextArray(skills), ToTextArray(parts)});
  if (!r.ok()) {
    return scope.Done(Explain(
        r.status(), absl::StrCat("sensor '", t.sensor_id(), "' is not registered")));
  }
  TaskFromRow(*r, 0, response);
  return scope.Done(absl::OkStatus());
}

grpc::Status MaintenanceServiceImpl::GetTask(grpc::ServerContext* context,
                                             const telemetry::v1::GetTaskRequest* request,
                                             telemetry::v1::MaintenanceTask* response) {
  RpcScope scope(ctx_, *context, "GetTask");
  if (absl::Status auth = Authorize(ctx_, *context, ApiScope::kRead); !auth.ok()) {
    return scope.Done(auth);
  }
  auto r = SelectRecord(*ctx_.reader, "maintenance_tasks", TaskColumns(), request->id(), "task");
  if (!r.ok()) return scope.Done(r.status());
  TaskFromRow(*r, 0, response);
  return scope.Done(absl::OkStatus());
}

grpc::Status MaintenanceServiceImpl::ListTasks(grpc::ServerContext* context,
                                               const telemetry::v1::ListTasksRequest* request,
                                               telemetry::v1::ListTasksResponse* response) {
  RpcScope scope(ctx_, *context, "ListTasks");
  if (absl::Status auth = Authorize(ctx_, *context, ApiScope::kRead); !auth.ok()) {
    return scope.Done(auth);
  }
  auto page = KeysetPage::From(request->page_token(), request->page_size());
  if (!page.ok()) return scope.Done(page.status());
  auto conn = ctx_.reader->Acquire();
  if (!conn.ok()) return scope.Done(conn.status());
  auto r = (*conn)->Query(
      absl::StrCat("SELECT ", TaskColumns(),
                   " FROM maintenance_tasks WHERE ($1::text IS NULL OR equipment_id = $1) "
                   "AND ($2::text IS NULL OR sensor_id = $2) "
                   "AND ($3::text IS NULL OR status = $3) "
                   "AND ($4::bigint IS NULL OR (created_at, id) < (", MicrosToTimestampSql(4),
                   ", $5::uuid)) ORDER BY created_at DESC, id DESC LIMIT $6::int"),
      {NonEmpty(request->equipment_id()), NonEmpty(request->sensor_id()),
       NonEmpty(request->status()), page->after_us, page->after_id, page->FetchParam()});
  if (!r.ok()) return scope.Done(r.status());
  for (int i = 0; i < page->Kept(*r); ++i) TaskFromRow(*r, i, response->add_tasks());
  if (response->tasks_size() > 0) {
    const auto& last = response->tasks(response->tasks_size() - 1);
    response->set_next_page_token(page->NextToken(*r, last.created_at(), last.id()));
  }
  return scope.Done(absl::OkStatus());
}

grpc::Status MaintenanceServiceImpl::UpdateTaskStatus(
    grpc::ServerContext* context, const telemetry::v1::UpdateTaskStatusRequest* request,
    telemetry::v1::MaintenanceTask* response) {
  RpcScope scope(ctx_, *context, "UpdateTaskStatus");
  if (absl::Status auth = Authorize(ctx_, *context, ApiScope::kAdmin); !auth.ok()) {
    return scope.Done(auth);
  }
  if (!IsUuid(request->id())) return scope.Done(Invalid("id must be a UUID"));
  static const char* kStatuses[] = {"pending", "scheduled", "in_progress", "completed",
                                    "cancelled"};
  if (std::find(std::begin(kStatuses), std::end(kStatuses), request->status()) ==
      std::end(kStatuses)) {
    return scope.Done(Invalid(
        "status must be pending, scheduled, in_progress, completed or cancelled"));
  }
  auto r = UpdateRecordStatus(*ctx_.writer, "maintenance_tasks", TaskColumns(), request->id(),
                              request->status(), "task");
  if (!r.ok()) return scope.Done(r.status());
  TaskFromRow(*r, 0, response);
  return scope.Done(absl::OkStatus());
}

grpc::Status MaintenanceServiceImpl::LogWork(grpc::ServerContext* context,
                                             const telemetry::v1::LogWorkRequest* request,
                                             telemetry::v1::MaintenanceLog* response) {
  RpcScope scope(ctx_, *context, "LogWork");
  if (absl::Status auth = Authorize(ctx_, *context, ApiScope::kAdmin); !auth.ok()) {
    return scope.Done(auth);
  }
  const telemetry::v1::MaintenanceLog& l = request->log();
  absl::Status s;
  if (!IsUuid(l.task_id())) s = Invalid("task_id must be a UUID");
  if (s.ok() && !l.has_completion_date()) s = Invalid("completion_date is required");
  if (s.ok()) s = CheckField(l.technician_id(), "technician_id", kMaxIdBytes, true);
  if (s.ok()) s = CheckField(l.equipment_id(), "equipment_id", kMaxIdBytes, false);
  std::string status = l.status().empty() ? "completed" : l.status();
  if (s.ok() && status != "completed" && status != "partial" && status != "failed") {
    s = Invalid("status must be completed, partial or failed");
  }
  if (s.ok() && l.has_actual_duration_hours() &&
      !(std::isfinite(l.actual_duration_hours()) && l.actual_duration_hours() >= 0)) {
    s = Invalid("actual_duration_hours must be a non-negative number");
  }
  if (!s.ok()) return scope.Done(s);
  auto conn = ctx_.writer->Acquire();
  if (!conn.ok()) return scope.Done(conn.status());
  // The task must exist; its equipment is the default.
  auto r = (*conn)->Query(
      absl::StrCat("INSERT INTO maintenance_logs (task_id, equipment_id, completion_date, "
                   "technician_id, status, actual_duration_hours, notes) "
                   "SELECT t.id, coalesce(nullif($2, ''), t.equipment_id), ",
                   MicrosToTimestampSql(3),
                   ", $4, $5, $6::float8, nullif($7, '') FROM maintenance_tasks t "
                   "WHERE t.id = $1::uuid RETURNING ",
                   LogColumns()),
      {l.task_id(), l.equipment_id(), std::to_string(ToMicros(l.completion_date())),
       l.technician_id(), status,
       l.has_actual_duration_hours() ? Param(absl::StrCat(l.actual_duration_hours())) : Param(),
       l.notes()});
  if (!r.ok()) return scope.Done(Explain(r.status(), "task not found"));
  if (r->rows() == 0) {
    return scope.Done(absl::NotFoundError(absl::StrCat("task ", l.task_id(), " not found")));
  }
  LogFromRow(*r, 0, response);
  return scope.Done(absl::OkStatus());
}

grpc::Status MaintenanceServiceImpl::ListLogs(grpc::ServerContext* context,
                                              const telemetry::v1::ListLogsRequest* request,
                                              telemetry::v1::ListLogsResponse* response) {
  RpcScope scope(ctx_, *context, "ListLogs");
  if (absl::Status auth = Authorize(ctx_, *context, ApiScope::kRead); !auth.ok()) {
    return scope.Done(auth);
  }
  if (!request->task_id().empty() && !IsUuid(request->task_id())) {
    return scope.Done(Invalid("task_id must be a UUID"));
  }
  auto page = KeysetPage::From(request->page_token(), request->page_size());
  if (!page.ok()) return scope.Done(page.status());
  auto conn = ctx_.reader->Acquire();
  if (!conn.ok()) return scope.Done(conn.status());
  auto r = (*conn)->Query(
      absl::StrCat("SELECT ", LogColumns(),
                   " FROM maintenance_logs WHERE ($1::uuid IS NULL OR task_id = $1::uuid) "
                   "AND ($2::text IS NULL OR equipment_id = $2) "
                   "AND ($3::bigint IS NULL OR (completion_date, id) < (",
                   MicrosToTimestampSql(3),
                   ", $4::uuid)) ORDER BY completion_date DESC, id DESC LIMIT $5::int"),
      {NonEmpty(request->task_id()), NonEmpty(request->equipment_id()), page->after_us,
       page->after_id, page->FetchParam()});
  if (!r.ok()) return scope.Done(r.status());
  for (int i = 0; i < page->Kept(*r); ++i) LogFromRow(*r, i, response->add_logs());
  if (response->logs_size() > 0) {
    const auto& last = response->logs(response->logs_size() - 1);
    response->set_next_page_token(page->NextToken(*r, last.completion_date(), last.id()));
  }
  return scope.Done(absl::OkStatus());
}

}  // namespace telemetry::query
