#include <gtest/gtest.h>
#include <libpq-fe.h>

#include <cstdio>
#include <cstdlib>
#include <memory>

#include "storage/pg/connection.h"
#include "storage/pg/migrator.h"
#include "tests/support/servers_environment.h"

namespace telemetry::testing {
namespace {

std::unique_ptr<local::PostgresServer> g_pg;
std::unique_ptr<local::RedisServer> g_redis;

class ServersEnvironment : public ::testing::Environment {
 public:
  void SetUp() override {
    auto pg = local::PostgresServer::Start(
        {.preload_timescale = local::PostgresServer::TimescaleInstalled()});
    if (!pg.ok()) {
      std::fprintf(stderr, "cannot start PostgreSQL: %s\n",
                   std::string(pg.status().message()).c_str());
      std::abort();
    }
    g_pg = *std::move(pg);
    auto redis = local::RedisServer::Start();
    if (!redis.ok()) {
      std::fprintf(stderr, "cannot start Redis: %s\n",
                   std::string(redis.status().message()).c_str());
      std::abort();
    }
    g_redis = *std::move(redis);
  }
  void TearDown() override {
    g_redis.reset();
    g_pg.reset();
  }
};

}  // namespace

local::PostgresServer& Pg() { return *g_pg; }
local::RedisServer& Redis() { return *g_redis; }

std::string MigratedDatabase(pg::StorageMode mode) {
  auto db = local::CreateMigratedDatabase(Pg(), mode);
  EXPECT_TRUE(db.ok()) << db.status();
  return db.ok() ? Pg().ConnInfo(*db) : std::string();
}

std::string QueryScalar(const std::string& conninfo, const std::string& sql) {
  auto conn = pg::Connection::Open(conninfo);
  EXPECT_TRUE(conn.ok()) << conn.status();
  if (!conn.ok()) return "";
  auto r = (*conn)->Query(sql);
  EXPECT_TRUE(r.ok()) << r.status() << " in: " << sql;
  if (!r.ok() || r->rows() == 0 || r->IsNull(0, 0)) return "";
  return std::string(r->Get(0, 0));
}

}  // namespace telemetry::testing

int main(int argc, char** argv) {
  // Line by line, so that a test ctest kills on its timeout still shows how
  // far it got (a pipe would otherwise hold the last few KiB).
  setvbuf(stdout, nullptr, _IOLBF, 0);
  // The gateway, loadgen and telemetryctl these tests start keep abseil's
  // lock-order checking (storage/util/mutex.h).
  setenv("TELEMETRY_MUTEX_DEADLOCK_DETECTION", "on", 1);
  ::testing::InitGoogleTest(&argc, argv);
  ::testing::AddGlobalTestEnvironment(
      new telemetry::testing::ServersEnvironment());
  return RUN_ALL_TESTS();
}
