// One real PostgreSQL and one real Redis per test binary, started before the
// first test and stopped after the last (link integration_main).
#ifndef TELEMETRY_TESTS_SUPPORT_SERVERS_ENVIRONMENT_H_
#define TELEMETRY_TESTS_SUPPORT_SERVERS_ENVIRONMENT_H_

#include <string>

#include "storage/local/local_servers.h"

namespace telemetry::testing {

local::PostgresServer& Pg();
local::RedisServer& Redis();

// A fresh database with the schema migrated in `mode`; returns its
// conninfo.
std::string MigratedDatabase(pg::StorageMode mode = pg::StorageMode::kNative);

// Runs one SQL query on `conninfo` and returns the first column of the first
// row as text ("" for no row / NULL). Fails the current test on error.
std::string QueryScalar(const std::string& conninfo, const std::string& sql);

}  // namespace telemetry::testing

#endif  // TELEMETRY_TESTS_SUPPORT_SERVERS_ENVIRONMENT_H_
