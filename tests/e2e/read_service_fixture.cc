#include "tests/e2e/read_service_fixture.h"

#include <cstdlib>
#include <fstream>

#include "server/query/sql_values.h"
#include "storage/pg/connection.h"
#include "tests/support/reading_builders.h"

namespace telemetry::testing {

// Login roles for the services, members of the migration's group roles.
void EnsureLoginRoles(const std::string& conninfo) {
  auto c = pg::Connection::Open(conninfo);
  ASSERT_TRUE(c.ok());
  ASSERT_TRUE((*c)->Exec(
                      "DO $$ BEGIN "
                      "IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'gw_svc') "
                      "THEN CREATE ROLE gw_svc LOGIN IN ROLE telemetry_writer; END IF; "
                      "IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'read_svc') "
                      "THEN CREATE ROLE read_svc LOGIN IN ROLE telemetry_reader; END IF; "
                      "IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'maint_svc') "
                      "THEN CREATE ROLE maint_svc LOGIN IN ROLE telemetry_maintainer; END IF; "
                      "END $$")
                  .ok());
}

std::string AsUser(const std::string& conninfo, const std::string& user) {
  std::string out = conninfo;
  size_t at = out.find("user=postgres");
  return out.replace(at, 13, "user=" + user);
}

telemetry::v1::Reading MakeReading(const std::string& sensor, int64_t us, double value) {
  telemetry::v1::Reading r = ReadingAt(sensor, us, value);
  r.set_unit("bar");
  return r;
}

std::string RunCli(const std::string& args, int* rc) {
  std::string out = absl::StrCat(::testing::TempDir(), "/cli.out");
  std::string cmd = absl::StrCat("TELEMETRY_PLAINTEXT=1 ", TELEMETRYCTL_PATH, " ", args, " > ", out, " 2>&1");
  *rc = std::system(cmd.c_str());
  std::ifstream in(out);
  return std::string((std::istreambuf_iterator<char>(in)), {});
}


}  // namespace telemetry::testing
