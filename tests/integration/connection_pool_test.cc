// The connection pool against a real PostgreSQL.
#include "storage/pg/connection_pool.h"

#include <gtest/gtest.h>

#include <thread>

#include "absl/strings/str_cat.h"

#include "tests/support/servers_environment.h"

namespace telemetry::pg {
namespace {

using telemetry::testing::Pg;

TEST(ConnectionPoolTest, ReusesConnectionsAndRunsSessionSql) {
  ConnectionPool pool(Pg().ConnInfo(), 2, "SET application_name = 'pool-test'");
  std::string first_pid;
  {
    auto lease = pool.Acquire();
    ASSERT_TRUE(lease.ok()) << lease.status();
    auto r = (*lease)->Query("SELECT pg_backend_pid()::text, current_setting('application_name')");
    ASSERT_TRUE(r.ok());
    first_pid = std::string(r->Get(0, 0));
    EXPECT_EQ(r->Get(0, 1), "pool-test");
  }
  auto lease = pool.Acquire();
  ASSERT_TRUE(lease.ok());
  auto r = (*lease)->Query("SELECT pg_backend_pid()::text");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->Get(0, 0), first_pid);
  EXPECT_EQ(pool.open_connections(), 1);
}

TEST(ConnectionTest, PreparedStatementsArePreparedOnceAndStaySeparatePerText) {
  auto conn = Connection::Open(Pg().ConnInfo());
  ASSERT_TRUE(conn.ok()) << conn.status();
  const std::string add = "SELECT $1::int8 + 1";
  const std::string mul = "SELECT $1::int8 * 10";
  for (int i = 0; i < 3; ++i) {
    auto a = (*conn)->QueryPrepared(add, {std::to_string(i)});
    ASSERT_TRUE(a.ok()) << a.status();
    EXPECT_EQ(a->GetInt(0, 0), i + 1);  // binary result format
    auto m = (*conn)->QueryPrepared(mul, {std::to_string(i)});
    ASSERT_TRUE(m.ok()) << m.status();
    EXPECT_EQ(m->GetInt(0, 0), i * 10);
  }
  auto count = (*conn)->Query("SELECT count(*) FROM pg_prepared_statements");
  ASSERT_TRUE(count.ok());
  EXPECT_EQ(count->Get(0, 0), "2");
  // A statement that does not parse is an error, and not cached as prepared.
  auto bad = (*conn)->QueryPrepared("SELEC 1");
  EXPECT_FALSE(bad.ok());
  EXPECT_EQ(SqlStateOf(bad.status()), "42601");
  auto again = (*conn)->QueryPrepared(add, {"41"});
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->GetInt(0, 0), 42);
}

// Texts that come and go (a daily bound in the SQL) never leave a
// connection running everything unprepared: a new text replaces the least
// recently used one, and a hot text stays.
TEST(ConnectionTest, AFullStatementCacheEvictsTheLeastRecentlyUsed) {
  auto conn = Connection::Open(Pg().ConnInfo());
  ASSERT_TRUE(conn.ok()) << conn.status();
  const std::string hot = "SELECT $1::int8 * 2";
  const int texts = static_cast<int>(Connection::kMaxPrepared) + 5;
  for (int i = 0; i < texts; ++i) {
    auto r = (*conn)->QueryPrepared(absl::StrCat("SELECT $1::int8 + ", i), {"1"});
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->GetInt(0, 0), i + 1);
    auto h = (*conn)->QueryPrepared(hot, {"21"});
    ASSERT_TRUE(h.ok()) << h.status();
    EXPECT_EQ(h->GetInt(0, 0), 42);
  }
  auto count = (*conn)->Query(
      "SELECT count(*), count(*) FILTER (WHERE statement LIKE '%* 2') FROM pg_prepared_statements");
  ASSERT_TRUE(count.ok());
  EXPECT_EQ(count->GetInt(0, 0), static_cast<int64_t>(Connection::kMaxPrepared));
  EXPECT_EQ(count->GetInt(0, 1), 1) << "the hot text was never evicted";
  // An evicted text is prepared again when it comes back.
  auto again = (*conn)->QueryPrepared("SELECT $1::int8 + 0", {"7"});
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->GetInt(0, 0), 7);
}

TEST(ConnectionPoolTest, WaitsForAFreeSlotThenTimesOut) {
  ConnectionPool pool(Pg().ConnInfo(), 1);
  auto held = pool.Acquire();
  ASSERT_TRUE(held.ok());
  auto second = pool.Acquire(absl::Milliseconds(50));
  EXPECT_EQ(second.status().code(), absl::StatusCode::kDeadlineExceeded);
}

TEST(ConnectionPoolTest, DiscardsAConnectionLeftInsideATransaction) {
  ConnectionPool pool(Pg().ConnInfo(), 1);
  {
    auto lease = pool.Acquire();
    ASSERT_TRUE(lease.ok());
    ASSERT_TRUE((*lease)->Exec("BEGIN").ok());
  }
  EXPECT_EQ(pool.open_connections(), 0);
  auto lease = pool.Acquire();
  ASSERT_TRUE(lease.ok());
  EXPECT_FALSE((*lease)->InTransaction());
}

TEST(ConnectionPoolTest, UnreachableServerIsUnavailableAndFreesTheSlot) {
  ConnectionPool pool(absl::StrCat("host=127.0.0.1 port=",
                                   telemetry::local::FreeLoopbackPort(),
                                   " connect_timeout=2"),
                      1);
  EXPECT_EQ(pool.Acquire().status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(pool.Acquire().status().code(), absl::StatusCode::kUnavailable)
      << "a failed connect must not leak the slot";
}

}  // namespace
}  // namespace telemetry::pg
