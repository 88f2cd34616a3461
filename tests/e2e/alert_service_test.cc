// AlertService end to end: the alert lifecycle, its errors, and newest-first keyset pages.
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

TEST_F(ReadServiceTest, AlertLifecycleAndErrors) {
  v1::CreateAlertRequest create;
  v1::Alert* a = create.mutable_alert();
  a->set_sensor_id("ghost");
  a->set_anomaly_type("vibration_spike");
  a->set_severity(4);
  a->set_confidence(0.93);
  (*a->mutable_evidence()->mutable_fields())["zscore"].set_number_value(5.2);
  a->add_recommended_actions("inspect bearing");
  a->add_recommended_actions("check \"mounts\", bolts");
  v1::Alert out;
  grpc::ClientContext c1;
  grpc::Status s = alerts_->CreateAlert(&c1, create, &out);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_TRUE(absl::StartsWith(s.error_message(), "sensor 'ghost' is not registered [request_id="))
      << s.error_message();
  a->set_sensor_id("s1");
  a->set_severity(9);
  grpc::ClientContext c2;
  EXPECT_EQ(alerts_->CreateAlert(&c2, create, &out).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  a->set_severity(4);
  grpc::ClientContext c3;
  ASSERT_TRUE(alerts_->CreateAlert(&c3, create, &out).ok());
  EXPECT_EQ(out.status(), "open");
  EXPECT_EQ(out.recommended_actions(1), "check \"mounts\", bolts");
  EXPECT_EQ(out.evidence().fields().at("zscore").number_value(), 5.2);

  v1::AlertTransitionRequest t;
  t.set_id(out.id());
  grpc::ClientContext c4;
  ASSERT_TRUE(alerts_->AcknowledgeAlert(&c4, t, &out).ok());
  EXPECT_EQ(out.status(), "acknowledged");
  grpc::ClientContext c5;
  EXPECT_TRUE(alerts_->AcknowledgeAlert(&c5, t, &out).ok()) << "a retried ack is idempotent";
  grpc::ClientContext c6;
  ASSERT_TRUE(alerts_->ResolveAlert(&c6, t, &out).ok());
  EXPECT_EQ(out.status(), "resolved");
  grpc::ClientContext c6b;
  s = alerts_->AcknowledgeAlert(&c6b, t, &out);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_TRUE(absl::StartsWith(s.error_message(), "illegal alert status transition: resolved -> acknowledged [request_id="))
      << s.error_message();

  v1::ListAlertsRequest list;
  list.set_sensor_id("s1");
  list.set_status("resolved");
  v1::ListAlertsResponse listed;
  grpc::ClientContext c7;
  ASSERT_TRUE(alerts_->ListAlerts(&c7, list, &listed).ok());
  ASSERT_EQ(listed.alerts_size(), 1);
  EXPECT_EQ(listed.alerts(0).id(), out.id());

  t.set_id("not-a-uuid");
  grpc::ClientContext c8;
  EXPECT_EQ(alerts_->ResolveAlert(&c8, t, &out).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  t.set_id("00000000-0000-0000-0000-000000000000");
  grpc::ClientContext c9;
  EXPECT_EQ(alerts_->ResolveAlert(&c9, t, &out).error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST_F(ReadServiceTest, AlertAndTaskListingsPageNewestFirst) {
  std::vector<std::string> ids;
  for (int i = 0; i < 3; ++i) {
    v1::CreateAlertRequest create;
    create.mutable_alert()->set_sensor_id("s0");
    create.mutable_alert()->set_anomaly_type(absl::StrCat("type", i));
    create.mutable_alert()->set_severity(2);
    create.mutable_alert()->set_confidence(0.5);
    v1::Alert a;
    grpc::ClientContext c;
    ASSERT_TRUE(alerts_->CreateAlert(&c, create, &a).ok());
    ids.push_back(a.id());
    v1::CreateTaskRequest task;
    task.mutable_task()->set_equipment_id("pump-9");
    task.mutable_task()->set_task_type(absl::StrCat("t", i));
    v1::MaintenanceTask t;
    grpc::ClientContext c2;
    ASSERT_TRUE(maintenance_->CreateTask(&c2, task, &t).ok());
  }
  v1::ListAlertsRequest list;
  list.set_sensor_id("s0");
  list.set_page_size(2);
  v1::ListAlertsResponse page1, page2;
  grpc::ClientContext c1;
  ASSERT_TRUE(alerts_->ListAlerts(&c1, list, &page1).ok());
  ASSERT_EQ(page1.alerts_size(), 2);
  EXPECT_EQ(page1.alerts(0).id(), ids[2]);  // newest first
  ASSERT_FALSE(page1.next_page_token().empty());
  list.set_page_token(page1.next_page_token());
  grpc::ClientContext c2;
  ASSERT_TRUE(alerts_->ListAlerts(&c2, list, &page2).ok());
  ASSERT_EQ(page2.alerts_size(), 1);
  EXPECT_EQ(page2.alerts(0).id(), ids[0]);
  EXPECT_TRUE(page2.next_page_token().empty());

  v1::ListTasksRequest tasks;
  tasks.set_equipment_id("pump-9");
  tasks.set_page_size(2);
  v1::ListTasksResponse t1, t2;
  grpc::ClientContext c3;
  ASSERT_TRUE(maintenance_->ListTasks(&c3, tasks, &t1).ok());
  ASSERT_EQ(t1.tasks_size(), 2);
  tasks.set_page_token(t1.next_page_token());
  grpc::ClientContext c4;
  ASSERT_TRUE(maintenance_->ListTasks(&c4, tasks, &t2).ok());
  EXPECT_EQ(t2.tasks_size(), 1);
  EXPECT_TRUE(t2.next_page_token().empty());
  tasks.set_page_token("not a token");
  grpc::ClientContext c5;
  EXPECT_EQ(maintenance_->ListTasks(&c5, tasks, &t2).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
}

}  // namespace
}  // namespace telemetry::testing
