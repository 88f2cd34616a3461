// The native-mode hourly aggregate (refresh, late arrivals, idempotence,
// exclusive refreshers), the least-privilege roles, and the status rules,
// all checked in SQL against a real PostgreSQL.
#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "storage/pg/connection.h"
#include "tests/support/servers_environment.h"

namespace telemetry {
namespace {

using telemetry::testing::MigratedDatabase;
using telemetry::testing::QueryScalar;

class AggregateTest : public ::testing::Test {
 protected:
  void SetUp() override {
    conninfo_ = MigratedDatabase();
    auto c = pg::Connection::Open(conninfo_);
    ASSERT_TRUE(c.ok());
    conn_ = *std::move(c);
    Exec("SELECT telemetry_ensure_partitions('2031-03-01', '2031-03-02')");
  }
  void Exec(const std::string& sql) {
    absl::Status s = conn_->Exec(sql);
    ASSERT_TRUE(s.ok()) << s << " in " << sql;
  }
  std::string Q(const std::string& sql) { return QueryScalar(conninfo_, sql); }
  // n readings of `sensor` spread over the hour starting at `hour`.
  void Insert(const std::string& sensor, const std::string& hour, int n, double base) {
    Exec(absl::StrCat(
        "INSERT INTO sensor_readings (\"timestamp\", sensor_id, value) SELECT '", hour,
        "'::timestamptz + g * interval '1 second', '", sensor, "', ", base,
        " + g FROM generate_series(0, ", n - 1, ") g"));
  }
  // The summary as text, and the same statistics computed from raw rows.
  std::string Summary() {
    return Q("SELECT string_agg(sensor_id || '@' || to_char(hour AT TIME ZONE 'UTC', "
             "'HH24') || ':' || reading_count || ',' || avg_value || ',' || min_value || "
             "',' || max_value, ' ' ORDER BY sensor_id, hour) "
             "FROM sensor_readings_summary_hourly");
  }
  std::string Raw() {
    return Q("SELECT string_agg(s, ' ' ORDER BY sensor_id, h) FROM (SELECT sensor_id, "
             "date_trunc('hour', \"timestamp\", 'UTC') h, sensor_id || '@' || "
             "to_char(date_trunc('hour', \"timestamp\", 'UTC') AT TIME ZONE 'UTC', 'HH24') "
             "|| ':' || count(*) || ',' || avg(value) || ',' || min(value) || ',' || "
             "max(value) AS s FROM sensor_readings GROUP BY 1, 2) x");
  }

  std::string conninfo_;
  std::unique_ptr<pg::Connection> conn_;
};

TEST_F(AggregateTest, RefreshMaterialisesTheWindowExactly) {
  Insert("a", "2031-03-01 10:00+00", 100, 0);
  Insert("a", "2031-03-01 11:00+00", 50, 1000);
  Insert("b", "2031-03-01 11:00+00", 10, 5);
  EXPECT_EQ(Q("SELECT telemetry_refresh_hourly('2031-03-01 10:00+00', '2031-03-01 12:00+00')"),
            "2");
  EXPECT_EQ(Summary(), Raw());
  EXPECT_EQ(Q("SELECT count(*) FROM sensor_readings_summary_hourly"), "3");
  EXPECT_EQ(Q("SELECT watermark = '2031-03-01 12:00+00' FROM telemetry_aggregate_state"), "t");
}

TEST_F(AggregateTest, LateArrivalsInAMaterialisedHourAreRematerialised) {
  Insert("a", "2031-03-01 10:00+00", 100, 0);
  ASSERT_EQ(Q("SELECT telemetry_refresh_hourly('2031-03-01 10:00+00', '2031-03-01 11:00+00')"),
            "1");
  EXPECT_EQ(Q("SELECT count(*) FROM telemetry_aggregate_invalidations"), "0");
  // Late data for 10:00, and new data for 12:00.
  Insert("a", "2031-03-01 10:30+00", 20, 500);
  Insert("c", "2031-03-01 12:00+00", 5, 1);
  EXPECT_EQ(Q("SELECT count(*) FROM telemetry_aggregate_invalidations "
              "WHERE hour = '2031-03-01 10:00+00'"),
            "1");
  // The next window is 12:00-13:00, yet 10:00 is refreshed too.
  EXPECT_EQ(Q("SELECT telemetry_refresh_hourly('2031-03-01 12:00+00', '2031-03-01 13:00+00')"),
            "2");
  EXPECT_EQ(Summary(), Raw());
  EXPECT_EQ(Q("SELECT reading_count FROM sensor_readings_summary_hourly WHERE sensor_id = 'a'"),
            "120");
  EXPECT_EQ(Q("SELECT count(*) FROM telemetry_aggregate_invalidations"), "0");
}

TEST_F(AggregateTest, RefreshingTwiceChangesNothing) {
  Insert("a", "2031-03-01 10:00+00", 100, 0);
  Exec("SELECT telemetry_refresh_hourly('2031-03-01 00:00+00', '2031-03-02 00:00+00')");
  std::string once = Summary();
  Exec("SELECT telemetry_refresh_hourly('2031-03-01 00:00+00', '2031-03-02 00:00+00')");
  EXPECT_EQ(Summary(), once);
  EXPECT_EQ(once, Raw());
}

TEST_F(AggregateTest, HotHoursAfterTheWindowStayPending) {
  Insert("a", "2031-03-01 13:00+00", 10, 0);
  Exec("SELECT telemetry_refresh_hourly('2031-03-01 10:00+00', '2031-03-01 13:00+00')");
  EXPECT_EQ(Q("SELECT count(*) FROM sensor_readings_summary_hourly"), "0");
  EXPECT_EQ(Q("SELECT count(*) FROM telemetry_aggregate_invalidations "
              "WHERE hour = '2031-03-01 13:00+00'"),
            "1");
}

TEST_F(AggregateTest, AConcurrentRefresherSkipsInsteadOfDoublingWork) {
  Insert("a", "2031-03-01 10:00+00", 10, 0);
  auto other = pg::Connection::Open(conninfo_);
  ASSERT_TRUE(other.ok());
  ASSERT_TRUE((*other)->Exec("BEGIN").ok());
  auto first = (*other)->Query(
      "SELECT telemetry_refresh_hourly('2031-03-01 10:00+00', '2031-03-01 11:00+00')");
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(first->Get(0, 0), "1");
  // The first refresher's transaction is still open: the second skips.
  EXPECT_EQ(Q("SELECT telemetry_refresh_hourly('2031-03-01 10:00+00', '2031-03-01 11:00+00')"),
            "-1");
  ASSERT_TRUE((*other)->Exec("COMMIT").ok());
  EXPECT_EQ(Q("SELECT telemetry_refresh_hourly('2031-03-01 10:00+00', '2031-03-01 11:00+00')"),
            "1");
}

TEST_F(AggregateTest, RefreshAllCoversEveryHourWithData) {
  Insert("a", "2031-03-01 01:00+00", 3, 0);
  Insert("a", "2031-03-01 22:00+00", 3, 0);
  EXPECT_EQ(Q("SELECT telemetry_refresh_hourly_all() >= 2"), "t");
  EXPECT_EQ(Summary(), Raw());
}

// Runs `sql` as `role`; returns the SQLSTATE ("" on success).
std::string AsRole(pg::Connection& c, const std::string& role, const std::string& sql) {
  EXPECT_TRUE(c.Exec(absl::StrCat("BEGIN; SET LOCAL ROLE ", role)).ok());
  absl::Status s = c.Exec(sql);
  EXPECT_TRUE(c.Exec("ROLLBACK").ok());
  return s.ok() ? "" : pg::SqlStateOf(s);
}

TEST_F(AggregateTest, RolesGrantOnlyWhatEachServiceNeeds) {
  const std::string insert_reading =
      "INSERT INTO sensor_readings (\"timestamp\", sensor_id, value) VALUES "
      "('2031-03-01 10:00+00', 'r', 1)";
  const std::string insert_alert =
      "INSERT INTO sensors (sensor_id) VALUES ('r2') ON CONFLICT DO NOTHING; "
      "INSERT INTO anomaly_alerts (sensor_id, anomaly_type, severity, confidence) "
      "VALUES ('r2', 'spike', 3, 0.5)";
  EXPECT_EQ(AsRole(*conn_, "telemetry_reader", insert_reading), "42501");
  EXPECT_EQ(AsRole(*conn_, "telemetry_reader", "SELECT count(*) FROM sensor_readings"), "");
  EXPECT_EQ(AsRole(*conn_, "telemetry_reader", "DELETE FROM sensors"), "42501");
  EXPECT_EQ(AsRole(*conn_, "telemetry_writer", insert_reading), "");
  EXPECT_EQ(AsRole(*conn_, "telemetry_writer", "DELETE FROM sensor_readings"), "42501");
  EXPECT_EQ(AsRole(*conn_, "telemetry_writer", insert_alert), "42501");
  EXPECT_EQ(AsRole(*conn_, "telemetry_maintainer", insert_alert), "");
  EXPECT_EQ(AsRole(*conn_, "telemetry_maintainer", insert_reading), "42501");
  EXPECT_EQ(AsRole(*conn_, "telemetry_maintainer",
                   "SELECT telemetry_refresh_hourly(now() - interval '3 hours', now())"),
            "");
  EXPECT_EQ(AsRole(*conn_, "telemetry_reader",
                   "SELECT telemetry_refresh_hourly(now() - interval '3 hours', now())"),
            "42501");
}

TEST_F(AggregateTest, StatusLifecyclesAreEnforcedByTheDatabase) {
  Exec("INSERT INTO sensors (sensor_id) VALUES ('s')");
  std::string alert = Q(
      "INSERT INTO anomaly_alerts (sensor_id, anomaly_type, severity, confidence) "
      "VALUES ('s', 'spike', 4, 0.9) RETURNING id");
  auto set_alert = [&](const std::string& status) {
    return pg::SqlStateOf(conn_->Exec(absl::StrCat(
        "UPDATE anomaly_alerts SET status = '", status, "' WHERE id = '", alert, "'")));
  };
  EXPECT_EQ(set_alert("acknowledged"), "");
  EXPECT_EQ(set_alert("open"), "23514");
  EXPECT_EQ(set_alert("resolved"), "");
  EXPECT_EQ(set_alert("acknowledged"), "23514");

  std::string task = Q(
      "INSERT INTO maintenance_tasks (equipment_id, task_type) VALUES ('pump-7', 'inspect') "
      "RETURNING id");
  auto set_task = [&](const std::string& status) {
    return pg::SqlStateOf(conn_->Exec(absl::StrCat(
        "UPDATE maintenance_tasks SET status = '", status, "' WHERE id = '", task, "'")));
  };
  EXPECT_EQ(set_task("completed"), "23514");
  EXPECT_EQ(set_task("scheduled"), "");
  EXPECT_EQ(set_task("in_progress"), "");
  EXPECT_EQ(set_task("pending"), "23514");
  EXPECT_EQ(set_task("completed"), "");
  EXPECT_EQ(set_task("cancelled"), "23514");
  // Logs must point at an existing task.
  EXPECT_EQ(pg::SqlStateOf(conn_->Exec(
                "INSERT INTO maintenance_logs (task_id, equipment_id, completion_date, "
                "technician_id) VALUES (gen_random_uuid(), 'pump-7', now(), 'tech-1')")),
            "23503");
}

}  // namespace
}  // namespace telemetry
