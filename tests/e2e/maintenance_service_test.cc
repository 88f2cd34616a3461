// MaintenanceService end to end: tasks through their lifecycle, work logs.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "server/query/drift_stats.h"
#include "server/query/query_service.h"
#include "server/query/sql_values.h"
#include "storage/local/http_get.h"
#include "storage/pg/connection.h"
#include "tests/e2e/read_service_fixture.h"

namespace telemetry::testing {
namespace {

TEST_F(ReadServiceTest, MaintenanceTasksFollowTheirLifecycleAndLogWork) {
  v1::CreateTaskRequest create;
  create.mutable_task()->set_equipment_id("pump-7");
  create.mutable_task()->set_sensor_id("s2");
  create.mutable_task()->set_task_type("bearing_replacement");
  create.mutable_task()->add_parts_needed("bearing 6204");
  v1::MaintenanceTask task;
  grpc::ClientContext c1;
  ASSERT_TRUE(maintenance_->CreateTask(&c1, create, &task).ok());
  EXPECT_EQ(task.status(), "pending");
  EXPECT_EQ(task.priority(), 3);

  v1::UpdateTaskStatusRequest move;
  move.set_id(task.id());
  move.set_status("completed");
  grpc::ClientContext c2;
  grpc::Status s = maintenance_->UpdateTaskStatus(&c2, move, &task);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_TRUE(absl::StartsWith(s.error_message(), "illegal task status transition: pending -> completed [request_id="))
      << s.error_message();
  for (const char* next : {"scheduled", "in_progress", "completed"}) {
    move.set_status(next);
    grpc::ClientContext c;
    ASSERT_TRUE(maintenance_->UpdateTaskStatus(&c, move, &task).ok()) << next;
  }
  EXPECT_EQ(task.status(), "completed");

  v1::LogWorkRequest log;
  log.mutable_log()->set_task_id(task.id());
  log.mutable_log()->set_technician_id("tech-42");
  query::SetFromMicros(base_us_, log.mutable_log()->mutable_completion_date());
  log.mutable_log()->set_actual_duration_hours(1.5);
  v1::MaintenanceLog logged;
  grpc::ClientContext c3;
  ASSERT_TRUE(maintenance_->LogWork(&c3, log, &logged).ok());
  EXPECT_EQ(logged.equipment_id(), "pump-7");
  EXPECT_EQ(logged.status(), "completed");
  log.mutable_log()->set_task_id("00000000-0000-0000-0000-000000000000");
  grpc::ClientContext c4;
  EXPECT_EQ(maintenance_->LogWork(&c4, log, &logged).error_code(), grpc::StatusCode::NOT_FOUND);

  v1::ListLogsRequest list;
  list.set_task_id(task.id());
  v1::ListLogsResponse logs;
  grpc::ClientContext c5;
  ASSERT_TRUE(maintenance_->ListLogs(&c5, list, &logs).ok());
  ASSERT_EQ(logs.logs_size(), 1);
  EXPECT_EQ(logs.logs(0).actual_duration_hours(), 1.5);

  create.mutable_task()->set_sensor_id("ghost");
  grpc::ClientContext c6;
  EXPECT_EQ(maintenance_->CreateTask(&c6, create, &task).error_code(), grpc::StatusCode::NOT_FOUND);
}

}  // namespace
}  // namespace telemetry::testing
