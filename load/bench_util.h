// Small helpers shared by the benchmarks (which are programs, not library
// code: a failed step ends the run with its reason).
#ifndef TELEMETRY_LOAD_BENCH_UTIL_H_
#define TELEMETRY_LOAD_BENCH_UTIL_H_

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "storage/local/local_servers.h"
#include "storage/pg/connection.h"

namespace telemetry::load {

// Exits the benchmark with `what: <message>` unless `s` is OK.
inline void DieUnlessOk(const absl::Status& s, const char* what) {
  if (s.ok()) return;
  std::fprintf(stderr, "%s: %s\n", what, std::string(s.message()).c_str());
  std::exit(1);
}

// The median of `v` (0 for none).
inline double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

struct PgbenchResult {
  double tps = 0;
  double latency_avg_ms = 0;
};

// pgbench (from `bindir`) running `script` against `db` on 127.0.0.1:`port`
// as postgres, `concurrency` clients, `protocol` (simple, extended,
// prepared), for `duration`; run under `prefix` when given (say taskset).
inline PgbenchResult Pgbench(const std::string& bindir, int port, const std::string& db,
                             const std::string& script, const std::string& protocol,
                             int concurrency, absl::Duration duration,
                             const std::vector<std::string>& prefix = {}) {
  char dir[] = "/tmp/tg-pgbench-XXXXXX";
  if (mkdtemp(dir) == nullptr) DieUnlessOk(absl::InternalError("mkdtemp"), "tmp");
  std::string file = absl::StrCat(dir, "/script.sql");
  std::ofstream(file) << script;
  std::string log = absl::StrCat(dir, "/out.txt");
  std::vector<std::string> argv = prefix;
  for (std::string arg :
       {bindir + "/pgbench", std::string("-n"), std::string("-h"), std::string("127.0.0.1"),
        std::string("-p"), std::to_string(port), std::string("-U"), std::string("postgres"),
        std::string("-M"), protocol, std::string("-c"), std::to_string(concurrency),
        std::string("-j"), std::to_string(std::min(concurrency, 2)), std::string("-T"),
        std::to_string(absl::ToInt64Seconds(duration)), std::string("-f"), file,
        std::string("-r"), db}) {
    argv.push_back(std::move(arg));
  }
  auto rc = telemetry::local::RunCommand(argv, "", log);
  DieUnlessOk(rc.status(), "pgbench");
  std::ifstream in(log);
  std::string text((std::istreambuf_iterator<char>(in)), {});
  std::smatch m;
  PgbenchResult r;
  if (std::regex_search(text, m, std::regex(R"(tps = ([0-9.]+))"))) {
    (void)absl::SimpleAtod(m[1].str(), &r.tps);
  }
  if (std::regex_search(text, m, std::regex(R"(latency average = ([0-9.]+) ms)"))) {
    (void)absl::SimpleAtod(m[1].str(), &r.latency_avg_ms);
  }
  if (r.tps == 0) std::fprintf(stderr, "pgbench output:\n%s\n", text.c_str());
  std::filesystem::remove_all(dir);
  return r;
}

// A flag's comma-separated list of integers, each at least 1; ends the
// program naming `flag` otherwise.
inline std::vector<int> PositiveInts(const std::string& list, const char* flag) {
  std::vector<int> out;
  for (absl::string_view part : absl::StrSplit(list, ',')) {
    int v = 0;
    if (!absl::SimpleAtoi(part, &v) || v < 1) {
      DieUnlessOk(absl::InvalidArgumentError(absl::StrCat(flag, ": integers of at least 1")),
                  "flags");
    }
    out.push_back(v);
  }
  return out;
}

// The directory of PostgreSQL's client programs (pgbench), or "".
inline std::string PostgresBindir() {
  for (const char* d : {"/usr/lib/postgresql/15/bin", "/usr/lib/postgresql/16/bin"}) {
    if (std::filesystem::exists(std::string(d) + "/pgbench")) return d;
  }
  return "";
}

// A private PostgreSQL (with a migrated database) and Redis on loopback,
// and a superuser connection to that database.
struct BenchStack {
  std::unique_ptr<local::PostgresServer> pg;
  std::unique_ptr<local::RedisServer> redis;
  std::string conninfo;
  std::unique_ptr<pg::Connection> conn;
};

// Starts a BenchStack; ends the program if any part does not come up.
inline BenchStack StartBenchStack(local::PostgresServer::Options options) {
  BenchStack s;
  auto pg = local::PostgresServer::Start(options);
  DieUnlessOk(pg.status(), "postgres");
  s.pg = *std::move(pg);
  auto redis = local::RedisServer::Start();
  DieUnlessOk(redis.status(), "redis");
  s.redis = *std::move(redis);
  auto db = local::CreateMigratedDatabase(*s.pg);
  DieUnlessOk(db.status(), "database");
  s.conninfo = s.pg->ConnInfo(*db);
  auto conn = pg::Connection::Open(s.conninfo);
  DieUnlessOk(conn.status(), "connect");
  s.conn = *std::move(conn);
  return s;
}

}  // namespace telemetry::load

#endif  // TELEMETRY_LOAD_BENCH_UTIL_H_
