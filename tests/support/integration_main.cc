#include <gtest/gtest.h>
#include <libpq-fe.h>

#include <cstdlib>
#include <memory>

#include "storage/pg/connection.h"
#include "storage/pg/migrator.h"
#include "tests/support/servers_environment.h"

namespace telemetry::testing {
namespace {

std::unique_ptr<PostgresServer> g_pg;
std::unique_ptr<RedisServer> g_redis;

class ServersEnvironment : public ::testing::Environment {
 public:
  void SetUp() override {
    auto pg = PostgresServer::Start(PostgresServer::TimescaleInstalled());
    if (!pg.ok()) {
      std::fprintf(stderr, "cannot start PostgreSQL: %s\n",
                   std::string(pg.status().message()).c_str());
      std::abort();
    }
    g_pg = *std::move(pg);
    auto redis = RedisServer::Start();
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

PostgresServer& Pg() { return *g_pg; }
RedisServer& Redis() { return *g_redis; }

std::string MigratedDatabase() {
  auto db = Pg().CreateDatabase();
  EXPECT_TRUE(db.ok()) << db.status();
  std::string conninfo = Pg().ConnInfo(*db);
  auto conn = pg::Connection::Open(conninfo);
  EXPECT_TRUE(conn.ok()) << conn.status();
  auto migrations = pg::LoadEmbeddedMigrations();
  EXPECT_TRUE(migrations.ok()) << migrations.status();
  pg::MigratorOptions options;
  options.mode = pg::StorageMode::kNative;
  pg::Migrator migrator(conn->get(), *migrations, options);
  auto applied = migrator.Up();
  EXPECT_TRUE(applied.ok()) << applied.status();
  return conninfo;
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
  ::testing::InitGoogleTest(&argc, argv);
  ::testing::AddGlobalTestEnvironment(
      new telemetry::testing::ServersEnvironment());
  return RUN_ALL_TESTS();
}
