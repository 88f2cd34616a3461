// Migrations against a real PostgreSQL: fresh apply, idempotent re-apply,
// concurrent starters, down/up, edit detection, and the resulting catalog
// checked against the seed design (tables, keys, foreign keys, indexes,
// sequence default, partitioning).
#include "storage/pg/migrator.h"

#include <gtest/gtest.h>

#include <thread>

#include "absl/strings/str_cat.h"

#include "storage/pg/connection.h"
#include "tests/support/servers_environment.h"

namespace telemetry::pg {
namespace {

using telemetry::testing::Pg;
using telemetry::testing::QueryScalar;

class MigratorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto db = Pg().CreateDatabase();
    ASSERT_TRUE(db.ok()) << db.status();
    conninfo_ = Pg().ConnInfo(*db);
    auto conn = Connection::Open(conninfo_);
    ASSERT_TRUE(conn.ok()) << conn.status();
    conn_ = *std::move(conn);
    auto m = LoadEmbeddedMigrations();
    ASSERT_TRUE(m.ok()) << m.status();
    migrations_ = *m;
  }
  Migrator NativeMigrator(Connection* conn = nullptr) {
    MigratorOptions o;
    o.mode = StorageMode::kNative;
    return Migrator(conn ? conn : conn_.get(), migrations_, o);
  }
  int CountFor(StorageMode mode) {
    int n = 0;
    for (const auto& m : migrations_) n += m.AppliesTo(mode);
    return n;
  }
  std::string Q(const std::string& sql) { return QueryScalar(conninfo_, sql); }

  std::string conninfo_;
  std::unique_ptr<Connection> conn_;
  std::vector<Migration> migrations_;
};

TEST_F(MigratorTest, FreshApplyCreatesTheSeedSchema) {
  Migrator m = NativeMigrator();
  auto applied = m.Up();
  ASSERT_TRUE(applied.ok()) << applied.status();
  EXPECT_EQ(*applied, CountFor(StorageMode::kNative));

  // All five seed tables.
  EXPECT_EQ(Q("SELECT string_agg(relname, ',' ORDER BY relname) FROM pg_class "
              "WHERE relname IN ('sensors','sensor_readings','anomaly_alerts',"
              "'maintenance_tasks','maintenance_logs') AND relkind IN ('r','p')"),
            "anomaly_alerts,maintenance_logs,maintenance_tasks,sensor_readings,"
            "sensors");
  // sensor_readings: partitioned, PK (timestamp, sensor_id), sequence default.
  EXPECT_EQ(Q("SELECT relkind FROM pg_class WHERE relname = 'sensor_readings'"), "p");
  EXPECT_EQ(Q("SELECT pg_get_constraintdef(oid) FROM pg_constraint "
              "WHERE conname = 'sensor_readings_pkey'"),
            "PRIMARY KEY (\"timestamp\", sensor_id)");
  EXPECT_EQ(Q("SELECT column_default FROM information_schema.columns "
              "WHERE table_name = 'sensor_readings' AND column_name = 'id'"),
            "nextval('sensor_readings_id_seq'::regclass)");
  EXPECT_EQ(Q("SELECT pg_get_indexdef('ix_sensor_readings_sensor_id_timestamp'"
              "::regclass)"),
            "CREATE INDEX ix_sensor_readings_sensor_id_timestamp ON ONLY "
            "public.sensor_readings USING btree (sensor_id, \"timestamp\" DESC)");
  EXPECT_EQ(Q("SELECT count(*) FROM pg_inherits WHERE inhrelid = "
              "'sensor_readings_default'::regclass"),
            "1");
  // Column types as in the seed.
  EXPECT_EQ(Q("SELECT string_agg(column_name || ':' || data_type || "
              "coalesce('(' || character_maximum_length || ')', ''), ',' "
              "ORDER BY ordinal_position) FROM information_schema.columns "
              "WHERE table_name = 'sensor_readings'"),
            "timestamp:timestamp with time zone,sensor_id:character varying(255),"
            "sensor_type:character varying(50),value:double precision,"
            "unit:character varying(50),quality:double precision,"
            "sensor_metadata:jsonb,id:bigint,created_at:timestamp with time zone");
  // Foreign keys.
  EXPECT_EQ(Q("SELECT string_agg(conrelid::regclass || '->' || confrelid::regclass, "
              "',' ORDER BY conname) FROM pg_constraint WHERE contype = 'f'"),
            "anomaly_alerts->sensors,maintenance_logs->maintenance_tasks,"
            "maintenance_tasks->sensors");
  // Secondary indexes of the other tables.
  EXPECT_EQ(Q("SELECT string_agg(indexname, ',' ORDER BY indexname) FROM pg_indexes "
              "WHERE tablename IN ('maintenance_tasks','maintenance_logs',"
              "'anomaly_alerts') AND indexname LIKE 'ix_%'"),
            "ix_anomaly_alerts_sensor_id_created_at,"
            "ix_anomaly_alerts_status_created_at,"
            "ix_maintenance_logs_equipment_id,ix_maintenance_logs_task_id,"
            "ix_maintenance_tasks_equipment_id,ix_maintenance_tasks_sensor_id");
  EXPECT_EQ(Q("SELECT count(*) FROM schema_migrations WHERE storage_mode = 'native'"),
            std::to_string(CountFor(StorageMode::kNative)));
}

TEST_F(MigratorTest, ReapplyIsANoOp) {
  Migrator m = NativeMigrator();
  ASSERT_TRUE(m.Up().ok());
  auto again = m.Up();
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(*again, 0);
  auto state = m.Status();
  ASSERT_TRUE(state.ok());
  EXPECT_TRUE(state->pending.empty());
  EXPECT_EQ(state->mode, StorageMode::kNative);
}

TEST_F(MigratorTest, ConcurrentStartersApplyEachMigrationOnce) {
  std::atomic<int> total{0};
  std::atomic<int> failures{0};
  std::vector<std::thread> starters;
  for (int i = 0; i < 3; ++i) {
    starters.emplace_back([&] {
      auto conn = Connection::Open(conninfo_);
      if (!conn.ok()) {
        ++failures;
        return;
      }
      Migrator m = NativeMigrator(conn->get());
      auto n = m.Up();
      if (n.ok()) {
        total += *n;
      } else {
        ++failures;
      }
    });
  }
  for (auto& t : starters) t.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(total.load(), CountFor(StorageMode::kNative));
  EXPECT_EQ(Q("SELECT count(*) FROM schema_migrations"),
            std::to_string(CountFor(StorageMode::kNative)));
}

TEST_F(MigratorTest, DownThenUpRoundTrips) {
  Migrator m = NativeMigrator();
  ASSERT_TRUE(m.Up().ok());
  auto down = m.Down(1);
  ASSERT_TRUE(down.ok()) << down.status();
  EXPECT_EQ(*down, CountFor(StorageMode::kNative) - 1);
  EXPECT_EQ(Q("SELECT to_regclass('sensor_readings') IS NULL"), "t");
  EXPECT_EQ(Q("SELECT to_regclass('sensor_readings_id_seq') IS NULL"), "t");
  EXPECT_EQ(Q("SELECT to_regclass('sensors') IS NOT NULL"), "t");
  ASSERT_TRUE(m.Down(0).ok());
  EXPECT_EQ(Q("SELECT count(*) FROM pg_tables WHERE schemaname = 'public' "
              "AND tablename <> 'schema_migrations'"),
            "0");
  auto up = m.Up();
  ASSERT_TRUE(up.ok()) << up.status();
  EXPECT_EQ(*up, CountFor(StorageMode::kNative));
  EXPECT_EQ(Q("SELECT count(*) FROM sensor_readings"), "0");
}

TEST_F(MigratorTest, RefusesAnAppliedMigrationThatWasEdited) {
  Migrator m = NativeMigrator();
  ASSERT_TRUE(m.Up().ok());
  Q("UPDATE schema_migrations SET checksum = '0000000000000000' WHERE version = 1 "
    "RETURNING version");
  auto again = m.Up();
  EXPECT_EQ(again.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(again.status().message().find("was edited after it was applied"),
            absl::string_view::npos)
      << again.status();
}

TEST_F(MigratorTest, RefusesToSwitchStorageMode) {
  ASSERT_TRUE(NativeMigrator().Up().ok());
  MigratorOptions o;
  o.mode = StorageMode::kTimescale;
  Migrator ts(conn_.get(), migrations_, o);
  EXPECT_EQ(ts.Up().status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(MigratorTest, FailedMigrationLeavesNoTrace) {
  std::vector<Migration> broken = migrations_;
  Migration bad;
  bad.version = 99;
  bad.name = "broken";
  bad.file_name = "0099_broken.sql";
  bad.up_sql = "CREATE TABLE half_done (x int);\nSELECT no_such_function();\n";
  bad.down_sql = "DROP TABLE half_done;\n";
  bad.checksum = "x";
  broken.push_back(bad);
  MigratorOptions o;
  o.mode = StorageMode::kNative;
  Migrator m(conn_.get(), broken, o);
  auto r = m.Up();
  EXPECT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("0099_broken.sql"), absl::string_view::npos);
  EXPECT_EQ(Q("SELECT to_regclass('half_done') IS NULL"), "t");
  EXPECT_EQ(Q("SELECT count(*) FROM schema_migrations WHERE version = 99"), "0");
  // The good ones before it are applied.
  EXPECT_EQ(Q("SELECT count(*) FROM schema_migrations"),
            std::to_string(CountFor(StorageMode::kNative)));
}

TEST_F(MigratorTest, PartitionsAreCreatedOnDemandAndAbsorbDefaultRows) {
  ASSERT_TRUE(NativeMigrator().Up().ok());
  // A row for a day without a partition lands in the default partition...
  Q("INSERT INTO sensors (sensor_id) VALUES ('s') RETURNING 1");
  Q("INSERT INTO sensor_readings (\"timestamp\", sensor_id, value) VALUES "
    "('2031-05-05 12:00+00', 's', 1) RETURNING 1");
  EXPECT_EQ(Q("SELECT count(*) FROM sensor_readings_default"), "1");
  // ...and moves into the day's partition when it is created.
  EXPECT_EQ(Q("SELECT telemetry_ensure_partitions('2031-05-04', '2031-05-06')"), "3");
  EXPECT_EQ(Q("SELECT count(*) FROM sensor_readings_default"), "0");
  EXPECT_EQ(Q("SELECT count(*) FROM sensor_readings_p20310505"), "1");
  EXPECT_EQ(Q("SELECT telemetry_ensure_partitions('2031-05-04', '2031-05-06')"), "0");
  // Each partition carries the parent's key and index.
  EXPECT_EQ(Q("SELECT count(*) FROM pg_indexes WHERE tablename = "
              "'sensor_readings_p20310505'"),
            "2");
  // Retention drops whole days.
  EXPECT_EQ(Q("SELECT telemetry_drop_partitions_before('2031-05-06')"), "2");
  EXPECT_EQ(Q("SELECT to_regclass('sensor_readings_p20310505') IS NULL"), "t");
  EXPECT_EQ(Q("SELECT to_regclass('sensor_readings_p20310506') IS NOT NULL"), "t");
}

// Why the seed's standalone (timestamp) index is not created: the primary
// key leads with "timestamp", so time-range scans already have a B-tree (and
// daily partitions prune whole days before any index is read).
TEST_F(MigratorTest, TimeRangeScansUseThePrimaryKeyWithoutASeparateIndex) {
  ASSERT_TRUE(NativeMigrator().Up().ok());
  Q("SELECT telemetry_ensure_partitions('2031-01-01', '2031-01-03')");
  Q("INSERT INTO sensor_readings (\"timestamp\", sensor_id, value) "
    "SELECT '2031-01-01'::timestamptz + n * interval '1 second', 's' || (n % 10), n "
    "FROM generate_series(0, 172799) n RETURNING 0");
  ASSERT_TRUE(conn_->Exec("ANALYZE sensor_readings").ok());
  auto conn = Connection::Open(conninfo_);
  ASSERT_TRUE(conn.ok());
  auto plan = (*conn)->Query(
      "EXPLAIN (FORMAT TEXT) SELECT * FROM sensor_readings WHERE "
      "\"timestamp\" >= '2031-01-02 10:00+00' AND \"timestamp\" < '2031-01-02 10:05+00'");
  ASSERT_TRUE(plan.ok()) << plan.status();
  std::string text;
  for (int i = 0; i < plan->rows(); ++i) absl::StrAppend(&text, plan->Get(i, 0), "\n");
  EXPECT_NE(text.find("sensor_readings_p20310102_pkey"), std::string::npos) << text;
  EXPECT_EQ(text.find("sensor_readings_p20310101"), std::string::npos)
      << "other days must be pruned:\n" << text;
}

TEST_F(MigratorTest, TimescaleModeCreatesHypertableWithPolicies) {
  if (!telemetry::local::PostgresServer::TimescaleInstalled()) {
    GTEST_SKIP() << "TimescaleDB is not installed for this PostgreSQL; the "
                    "timescale migration path is not exercised here";
  }
  MigratorOptions o;  // auto-detect must pick timescale
  Migrator m(conn_.get(), migrations_, o);
  auto applied = m.Up();
  ASSERT_TRUE(applied.ok()) << applied.status();
  EXPECT_EQ(Q("SELECT storage_mode FROM schema_migrations LIMIT 1"), "timescale");
  EXPECT_EQ(Q("SELECT count(*) FROM timescaledb_information.hypertables "
              "WHERE hypertable_name = 'sensor_readings'"),
            "1");
  EXPECT_EQ(Q("SELECT string_agg(proc_name, ',' ORDER BY proc_name) FROM "
              "timescaledb_information.jobs WHERE hypertable_name = "
              "'sensor_readings'"),
            "policy_compression,policy_retention");
  EXPECT_EQ(Q("SELECT segmentby_column_index FROM "
              "timescaledb_information.compression_settings WHERE "
              "attname = 'sensor_id'"),
            "1");
  // The seed's hourly continuous aggregate, with its refresh policy.
  EXPECT_EQ(Q("SELECT materialized_only::text FROM "
              "timescaledb_information.continuous_aggregates WHERE view_name = "
              "'sensor_readings_summary_hourly'"),
            "true");
  EXPECT_EQ(Q("SELECT schedule_interval || ' ' || (config->>'start_offset') || ' ' || "
              "(config->>'end_offset') FROM timescaledb_information.jobs WHERE "
              "proc_name = 'policy_refresh_continuous_aggregate'"),
            "00:30:00 03:00:00 00:30:00");
  // No default time index: the primary key covers time-range scans.
  EXPECT_EQ(Q("SELECT count(*) FROM pg_indexes WHERE tablename = "
              "'sensor_readings'"),
            "2");
  ASSERT_TRUE(m.Down(0).ok());
  EXPECT_EQ(Q("SELECT to_regclass('sensor_readings') IS NULL"), "t");
}

}  // namespace
}  // namespace telemetry::pg
