#include "client/record_commands.h"

#include <grpcpp/grpcpp.h>

#include <iostream>

#include "absl/flags/declare.h"
#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "client/connect_check.h"
#include "client/output_format.h"
#include "client/time_args.h"
#include "telemetry/v1/maintenance.grpc.pb.h"
#include "telemetry/v1/query.grpc.pb.h"

ABSL_DECLARE_FLAG(std::string, sensor);  // read_commands.cc
ABSL_DECLARE_FLAG(int, limit);
ABSL_FLAG(std::string, status, "", "the status to filter by, or to set");
ABSL_FLAG(std::string, type, "", "the sensor's type");
ABSL_FLAG(std::string, location, "", "the sensor's location");
ABSL_FLAG(std::string, anomaly_type, "", "what kind of anomaly, e.g. vibration_spike");
ABSL_FLAG(int, severity, 3, "1 (info) .. 5 (critical)");
ABSL_FLAG(double, confidence, 1.0, "0 .. 1");
ABSL_FLAG(std::string, description, "", "free text");
ABSL_FLAG(std::string, actions, "", "comma-separated recommended actions");
ABSL_FLAG(std::string, equipment, "", "equipment id");
ABSL_FLAG(std::string, task_type, "", "what work, e.g. bearing_replacement");
ABSL_FLAG(int, priority, 3, "1 (highest) .. 5");
ABSL_FLAG(std::string, technician, "", "technician id");
ABSL_FLAG(std::string, scheduled_start, "", "when the work is to start (time forms as --start)");
ABSL_FLAG(std::string, scheduled_end, "", "when it is to end");
ABSL_FLAG(std::string, task, "", "maintenance task id");
ABSL_FLAG(double, hours, -1, "hours the work took (or is estimated to take); <0: not given");
ABSL_FLAG(std::string, notes, "", "free text");
ABSL_FLAG(std::string, completed, "now", "when the work was completed");
ABSL_FLAG(std::string, created_after, "", "only records created at or after this time");
ABSL_FLAG(std::string, created_before, "", "only records created before this time");

namespace telemetry::client {

namespace {

namespace v1 = telemetry::v1;
using google::protobuf::Timestamp;

int Fail(absl::string_view what, const grpc::Status& s) {
  std::cerr << "telemetryctl: " << what << ": " << DescribeStatus(s) << "\n";
  return 1;
}
int Usage(absl::string_view message) {
  std::cerr << "telemetryctl: " << message << "\n";
  return 2;
}

Cell Ts(bool present, const Timestamp& t) {
  if (!present) return std::nullopt;
  return FormatRfc3339(absl::FromUnixSeconds(t.seconds()) + absl::Nanoseconds(t.nanos()));
}
Cell Text(const std::string& s) { return s.empty() ? Cell() : Cell(s); }

// Parses a time flag into `out`; false (after saying why) when unreadable.
bool SetTime(const char* flag, const std::string& arg, Timestamp* out) {
  auto t = ParseTimeArg(arg, absl::Now());
  if (!t.ok()) {
    std::cerr << "telemetryctl: --" << flag << ": " << t.status().message() << "\n";
    return false;
  }
  SetTimestamp(*t, out);
  return true;
}

// Every page of a List call, up to --limit rows.
template <typename Response, typename Call>
grpc::Status ListAll(Call call, std::vector<Response>* pages) {
  std::string token;
  int rows = 0;
  const int limit = absl::GetFlag(FLAGS_limit);
  do {
    grpc::ClientContext ctx;
    Response page;
    grpc::Status s = call(&ctx, token, static_cast<uint32_t>(std::min(limit - rows, 1000)), &page);
    if (!s.ok()) return s;
    token = page.next_page_token();
    rows += page.GetReflection()->FieldSize(page, page.GetDescriptor()->field(0));
    pages->push_back(std::move(page));
  } while (!token.empty() && rows < limit);
  return grpc::Status::OK;
}

// --- sensors ---------------------------------------------------------------

std::unique_ptr<RowWriter> SensorWriter(const CommandContext& c) {
  return RowWriter::Create(c.format,
                           {{"sensor_id"}, {"type"}, {"location"}, {"status"}, {"created_at"},
                            {"updated_at"}},
                           &std::cout);
}
void SensorRow(RowWriter& w, const v1::Sensor& s) {
  w.Row({s.sensor_id(), Text(s.type()), Text(s.location()), Text(s.status()),
         Ts(s.has_created_at(), s.created_at()), Ts(s.has_updated_at(), s.updated_at())});
}

// Whether `args` is `verb` with `positional` arguments after it.
bool Is(const std::vector<std::string>& args, const char* verb, size_t positional) {
  return args.size() == 2 + positional && args[1] == verb;
}

int Sensors(const std::vector<std::string>& args, const CommandContext& c) {
  const std::string verb = args.size() > 1 ? args[1] : "";
  if (!Is(args, "list", 0) && !Is(args, "get", 1) && !Is(args, "set", 1)) {
    return Usage("usage: telemetryctl sensors list | get ID | set ID [--type --location --status]");
  }
  auto stub = v1::QueryService::NewStub(ReadServiceChannel(c));
  if (verb == "list" && args.size() == 2) {
    std::vector<v1::ListSensorsResponse> pages;
    grpc::Status s = ListAll<v1::ListSensorsResponse>(
        [&](grpc::ClientContext* ctx, const std::string& token, uint32_t size,
            v1::ListSensorsResponse* out) {
          v1::ListSensorsRequest req;
          req.set_page_token(token);
          req.set_page_size(size);
          req.set_status(absl::GetFlag(FLAGS_status));
          return stub->ListSensors(ctx, req, out);
        },
        &pages);
    if (!s.ok()) return Fail("sensors list", s);
    auto w = SensorWriter(c);
    for (const auto& p : pages) {
      for (const auto& sensor : p.sensors()) SensorRow(*w, sensor);
    }
    w->Finish();
    return 0;
  }
  if ((verb == "get" || verb == "set") && args.size() == 3) {
    grpc::ClientContext ctx;
    v1::Sensor out;
    grpc::Status s;
    if (verb == "get") {
      v1::GetSensorRequest req;
      req.set_sensor_id(args[2]);
      s = stub->GetSensor(&ctx, req, &out);
    } else {
      v1::UpsertSensorRequest req;
      req.mutable_sensor()->set_sensor_id(args[2]);
      req.mutable_sensor()->set_type(absl::GetFlag(FLAGS_type));
      req.mutable_sensor()->set_location(absl::GetFlag(FLAGS_location));
      req.mutable_sensor()->set_status(absl::GetFlag(FLAGS_status));
      s = stub->UpsertSensor(&ctx, req, &out);
    }
    if (!s.ok()) return Fail(absl::StrCat("sensors ", verb), s);
    auto w = SensorWriter(c);
    SensorRow(*w, out);
    w->Finish();
    return 0;
  }
  return Usage("usage: telemetryctl sensors list | get ID | set ID [--type --location --status]");
}

// --- alerts ----------------------------------------------------------------

std::unique_ptr<RowWriter> AlertWriter(const CommandContext& c) {
  return RowWriter::Create(
      c.format,
      {{"id"}, {"sensor_id"}, {"anomaly_type"}, {"severity", CellKind::kNumber},
       {"confidence", CellKind::kNumber}, {"status"}, {"created_at"}, {"updated_at"},
       {"description"}, {"recommended_actions"}},
      &std::cout);
}
void AlertRow(RowWriter& w, const v1::Alert& a) {
  w.Row({a.id(), a.sensor_id(), a.anomaly_type(), absl::StrCat(a.severity()),
         FormatDouble(a.confidence()), a.status(), Ts(a.has_created_at(), a.created_at()),
         Ts(a.has_updated_at(), a.updated_at()), Text(a.description()),
         Text(absl::StrJoin(a.recommended_actions(), ","))});
}

int Alerts(const std::vector<std::string>& args, const CommandContext& c) {
  const std::string verb = args.size() > 1 ? args[1] : "";
  if (verb == "list" && args.size() == 2) {
    v1::ListAlertsRequest base;
    base.set_sensor_id(absl::GetFlag(FLAGS_sensor));
    base.set_status(absl::GetFlag(FLAGS_status));
    if (std::string v = absl::GetFlag(FLAGS_created_after);
        !v.empty() && !SetTime("created_after", v, base.mutable_created_after())) {
      return 2;
    }
    if (std::string v = absl::GetFlag(FLAGS_created_before);
        !v.empty() && !SetTime("created_before", v, base.mutable_created_before())) {
      return 2;
    }
    auto stub = v1::AlertService::NewStub(ReadServiceChannel(c));
    std::vector<v1::ListAlertsResponse> pages;
    grpc::Status s = ListAll<v1::ListAlertsResponse>(
        [&](grpc::ClientContext* ctx, const std::string& token, uint32_t size,
            v1::ListAlertsResponse* out) {
          v1::ListAlertsRequest req = base;
          req.set_page_token(token);
          req.set_page_size(size);
          return stub->ListAlerts(ctx, req, out);
        },
        &pages);
    if (!s.ok()) return Fail("alerts list", s);
    auto w = AlertWriter(c);
    for (const auto& p : pages) {
      for (const auto& a : p.alerts()) AlertRow(*w, a);
    }
    w->Finish();
    return 0;
  }
  v1::Alert out;
  grpc::ClientContext ctx;
  grpc::Status s;
  if (verb == "create" && args.size() == 2) {
    if (absl::GetFlag(FLAGS_sensor).empty() || absl::GetFlag(FLAGS_anomaly_type).empty()) {
      return Usage("alerts create needs --sensor and --anomaly_type");
    }
    v1::CreateAlertRequest req;
    v1::Alert* a = req.mutable_alert();
    a->set_sensor_id(absl::GetFlag(FLAGS_sensor));
    a->set_anomaly_type(absl::GetFlag(FLAGS_anomaly_type));
    a->set_severity(absl::GetFlag(FLAGS_severity));
    a->set_confidence(absl::GetFlag(FLAGS_confidence));
    a->set_description(absl::GetFlag(FLAGS_description));
    for (absl::string_view action :
         absl::StrSplit(absl::GetFlag(FLAGS_actions), ',', absl::SkipWhitespace())) {
      a->add_recommended_actions(std::string(action));
    }
    s = v1::AlertService::NewStub(ReadServiceChannel(c))->CreateAlert(&ctx, req, &out);
  } else if ((verb == "get" || verb == "ack" || verb == "resolve") && args.size() == 3) {
    auto stub = v1::AlertService::NewStub(ReadServiceChannel(c));
    if (verb == "get") {
      v1::GetAlertRequest req;
      req.set_id(args[2]);
      s = stub->GetAlert(&ctx, req, &out);
    } else {
      v1::AlertTransitionRequest req;
      req.set_id(args[2]);
      s = verb == "ack" ? stub->AcknowledgeAlert(&ctx, req, &out)
                        : stub->ResolveAlert(&ctx, req, &out);
    }
  } else {
    return Usage("usage: telemetryctl alerts list | get ID | create --sensor=S "
                 "--anomaly_type=T [...] | ack ID | resolve ID");
  }
  if (!s.ok()) return Fail(absl::StrCat("alerts ", verb), s);
  auto w = AlertWriter(c);
  AlertRow(*w, out);
  w->Finish();
  return 0;
}

// --- maintenance tasks -------------------------------------------------------

std::unique_ptr<RowWriter> TaskWriter(const CommandContext& c) {
  return RowWriter::Create(
      c.format,
      {{"id"}, {"equipment_id"}, {"sensor_id"}, {"task_type"}, {"priority", CellKind::kNumber},
       {"status"}, {"estimated_hours", CellKind::kNumber}, {"scheduled_start"},
       {"scheduled_end"}, {"technician"}, {"created_at"}, {"description"}},
      &std::cout);
}
void TaskRow(RowWriter& w, const v1::MaintenanceTask& t) {
  w.Row({t.id(), t.equipment_id(), Text(t.sensor_id()), t.task_type(),
         absl::StrCat(t.priority()), t.status(),
         t.has_estimated_duration_hours() ? Cell(FormatDouble(t.estimated_duration_hours()))
                                          : Cell(),
         Ts(t.has_scheduled_start_time(), t.scheduled_start_time()),
         Ts(t.has_scheduled_end_time(), t.scheduled_end_time()),
         Text(t.assigned_technician_id()), Ts(t.has_created_at(), t.created_at()),
         Text(t.description())});
}

int Tasks(const std::vector<std::string>& args, const CommandContext& c) {
  const std::string verb = args.size() > 1 ? args[1] : "";
  if (!Is(args, "list", 0) && !Is(args, "get", 1) && !Is(args, "create", 0) &&
      !Is(args, "set-status", 1)) {
    return Usage("usage: telemetryctl tasks list | get ID | create --equipment=E "
                 "--task_type=T [...] | set-status ID --status=S");
  }
  auto stub = v1::MaintenanceService::NewStub(ReadServiceChannel(c));
  if (verb == "list" && args.size() == 2) {
    std::vector<v1::ListTasksResponse> pages;
    grpc::Status s = ListAll<v1::ListTasksResponse>(
        [&](grpc::ClientContext* ctx, const std::string& token, uint32_t size,
            v1::ListTasksResponse* out) {
          v1::ListTasksRequest req;
          req.set_equipment_id(absl::GetFlag(FLAGS_equipment));
          req.set_sensor_id(absl::GetFlag(FLAGS_sensor));
          req.set_status(absl::GetFlag(FLAGS_status));
          req.set_page_token(token);
          req.set_page_size(size);
          return stub->ListTasks(ctx, req, out);
        },
        &pages);
    if (!s.ok()) return Fail("tasks list", s);
    auto w = TaskWriter(c);
    for (const auto& p : pages) {
      for (const auto& t : p.tasks()) TaskRow(*w, t);
    }
    w->Finish();
    return 0;
  }
  v1::MaintenanceTask out;
  grpc::ClientContext ctx;
  grpc::Status s;
  if (verb == "create" && args.size() == 2) {
    if (absl::GetFlag(FLAGS_equipment).empty() || absl::GetFlag(FLAGS_task_type).empty()) {
      return Usage("tasks create needs --equipment and --task_type");
    }
    v1::CreateTaskRequest req;
    v1::MaintenanceTask* t = req.mutable_task();
    t->set_equipment_id(absl::GetFlag(FLAGS_equipment));
    t->set_sensor_id(absl::GetFlag(FLAGS_sensor));
    t->set_task_type(absl::GetFlag(FLAGS_task_type));
    t->set_description(absl::GetFlag(FLAGS_description));
    t->set_priority(absl::GetFlag(FLAGS_priority));
    t->set_assigned_technician_id(absl::GetFlag(FLAGS_technician));
    if (absl::GetFlag(FLAGS_hours) >= 0) t->set_estimated_duration_hours(absl::GetFlag(FLAGS_hours));
    if (std::string v = absl::GetFlag(FLAGS_scheduled_start);
        !v.empty() && !SetTime("scheduled_start", v, t->mutable_scheduled_start_time())) {
      return 2;
    }
    if (std::string v = absl::GetFlag(FLAGS_scheduled_end);
        !v.empty() && !SetTime("scheduled_end", v, t->mutable_scheduled_end_time())) {
      return 2;
    }
    s = stub->CreateTask(&ctx, req, &out);
  } else if (verb == "get" && args.size() == 3) {
    v1::GetTaskRequest req;
    req.set_id(args[2]);
    s = stub->GetTask(&ctx, req, &out);
  } else if (verb == "set-status" && args.size() == 3) {
    if (absl::GetFlag(FLAGS_status).empty()) return Usage("tasks set-status needs --status");
    v1::UpdateTaskStatusRequest req;
    req.set_id(args[2]);
    req.set_status(absl::GetFlag(FLAGS_status));
    s = stub->UpdateTaskStatus(&ctx, req, &out);
  } else {
    return Usage("usage: telemetryctl tasks list | get ID | create --equipment=E "
                 "--task_type=T [...] | set-status ID --status=S");
  }
  if (!s.ok()) return Fail(absl::StrCat("tasks ", verb), s);
  auto w = TaskWriter(c);
  TaskRow(*w, out);
  w->Finish();
  return 0;
}

// --- maintenance logs --------------------------------------------------------

std::unique_ptr<RowWriter> LogWriter(const CommandContext& c) {
  return RowWriter::Create(
      c.format,
      {{"id"}, {"task_id"}, {"equipment_id"}, {"completion_date"}, {"technician"}, {"status"},
       {"actual_hours", CellKind::kNumber}, {"created_at"}, {"notes"}},
      &std::cout);
}
void LogRow(RowWriter& w, const v1::MaintenanceLog& l) {
  w.Row({l.id(), l.task_id(), Text(l.equipment_id()),
         Ts(l.has_completion_date(), l.completion_date()), l.technician_id(), l.status(),
         l.has_actual_duration_hours() ? Cell(FormatDouble(l.actual_duration_hours())) : Cell(),
         Ts(l.has_created_at(), l.created_at()), Text(l.notes())});
}

int Logs(const std::vector<std::string>& args, const CommandContext& c) {
  const std::string verb = args.size() > 1 ? args[1] : "";
  if (!Is(args, "list", 0) && !Is(args, "add", 0)) {
    return Usage("usage: telemetryctl logs list [--task=ID] [--equipment=E] | add --task=ID "
                 "--technician=T [...]");
  }
  auto stub = v1::MaintenanceService::NewStub(ReadServiceChannel(c));
  if (verb == "list" && args.size() == 2) {
    std::vector<v1::ListLogsResponse> pages;
    grpc::Status s = ListAll<v1::ListLogsResponse>(
        [&](grpc::ClientContext* ctx, const std::string& token, uint32_t size,
            v1::ListLogsResponse* out) {
          v1::ListLogsRequest req;
          req.set_task_id(absl::GetFlag(FLAGS_task));
          req.set_equipment_id(absl::GetFlag(FLAGS_equipment));
          req.set_page_token(token);
          req.set_page_size(size);
          return stub->ListLogs(ctx, req, out);
        },
        &pages);
    if (!s.ok()) return Fail("logs list", s);
    auto w = LogWriter(c);
    for (const auto& p : pages) {
      for (const auto& l : p.logs()) LogRow(*w, l);
    }
    w->Finish();
    return 0;
  }
  if (verb == "add" && args.size() == 2) {
    if (absl::GetFlag(FLAGS_task).empty() || absl::GetFlag(FLAGS_technician).empty()) {
      return Usage("logs add needs --task and --technician");
    }
    v1::LogWorkRequest req;
    v1::MaintenanceLog* l = req.mutable_log();
    l->set_task_id(absl::GetFlag(FLAGS_task));
    l->set_equipment_id(absl::GetFlag(FLAGS_equipment));
    l->set_technician_id(absl::GetFlag(FLAGS_technician));
    l->set_status(absl::GetFlag(FLAGS_status));
    l->set_notes(absl::GetFlag(FLAGS_notes));
    if (absl::GetFlag(FLAGS_hours) >= 0) l->set_actual_duration_hours(absl::GetFlag(FLAGS_hours));
    if (!SetTime("completed", absl::GetFlag(FLAGS_completed), l->mutable_completion_date())) {
      return 2;
    }
    grpc::ClientContext ctx;
    v1::MaintenanceLog out;
    grpc::Status s = stub->LogWork(&ctx, req, &out);
    if (!s.ok()) return Fail("logs add", s);
    auto w = LogWriter(c);
    LogRow(*w, out);
    w->Finish();
    return 0;
  }
  return Usage("usage: telemetryctl logs list [--task=ID] [--equipment=E] | add --task=ID "
               "--technician=T [...]");
}

}  // namespace

int RunRecordCommand(const std::vector<std::string>& args, const CommandContext& context) {
  if (args.empty()) return -1;
  if (args[0] == "sensors") return Sensors(args, context);
  if (args[0] == "alerts") return Alerts(args, context);
  if (args[0] == "tasks") return Tasks(args, context);
  if (args[0] == "logs") return Logs(args, context);
  return -1;
}

}  // namespace telemetry::client
