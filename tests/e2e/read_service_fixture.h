// The read-service end-to-end tests' shared fixture: data written through
// the real gateway, read through the real read service (connected as
// least-privilege login roles), every result checked against a direct SQL
// computation on the same data. One test file per service uses it
// (query_service_test.cc, alert_service_test.cc, ...); they link into one
// binary, read_service_test, which starts PostgreSQL and Redis once.
#ifndef TELEMETRY_TESTS_E2E_READ_SERVICE_FIXTURE_H_
#define TELEMETRY_TESTS_E2E_READ_SERVICE_FIXTURE_H_

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "server/ingest/ingest_server.h"
#include "server/query/read_server.h"
#include "telemetry/v1/ingest.grpc.pb.h"
#include "telemetry/v1/maintenance.grpc.pb.h"
#include "telemetry/v1/query.grpc.pb.h"
#include "tests/support/loopback_gateway.h"
#include "tests/support/loopback_read_service.h"
#include "tests/support/servers_environment.h"

namespace telemetry::testing {

inline constexpr int64_t kHourUs = 3'600'000'000LL;

// Login roles for the services, members of the migration's group roles.
void EnsureLoginRoles(const std::string& conninfo);
// `conninfo` (the superuser's) logged in as `user` instead.
std::string AsUser(const std::string& conninfo, const std::string& user);
telemetry::v1::Reading MakeReading(const std::string& sensor, int64_t us, double value);
// Runs telemetryctl with `args` (plaintext); its output, and its exit code in `rc`.
std::string RunCli(const std::string& args, int* rc);

// A migrated database, the gateway (as gw_svc) and the read service (as
// read_svc / maint_svc), and five hours of data for sensors s0..s2, one
// reading every 10 s, in whole hours starting five hours before the
// current hour.
class ReadServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    conninfo_ = MigratedDatabase(mode_);
    EnsureLoginRoles(conninfo_);
    auto gw = ingest::IngestServer::Start(LoopbackGateway(AsUser(conninfo_, "gw_svc")));
    ASSERT_TRUE(gw.ok()) << gw.status();
    gateway_ = *std::move(gw);
    ingest_ = v1::IngestService::NewStub(grpc::CreateChannel(
        absl::StrCat("127.0.0.1:", gateway_->port()), grpc::InsecureChannelCredentials()));

    // Least privilege: queries as read_svc, writes as maint_svc.
    query::ReadServerOptions ro =
        LoopbackReadService(AsUser(conninfo_, "read_svc"), AsUser(conninfo_, "maint_svc"));
    auto rs = query::ReadServer::Start(ro);
    ASSERT_TRUE(rs.ok()) << rs.status();
    reader_ = *std::move(rs);
    auto channel = grpc::CreateChannel(absl::StrCat("127.0.0.1:", reader_->port()),
                                       grpc::InsecureChannelCredentials());
    query_ = v1::QueryService::NewStub(channel);
    alerts_ = v1::AlertService::NewStub(channel);
    maintenance_ = v1::MaintenanceService::NewStub(channel);
    admin_ = v1::AdminService::NewStub(channel);

    // Five hours of data for three sensors, one reading every 10 s, in whole
    // hours starting five hours before the current hour.
    base_us_ = (absl::ToUnixMicros(absl::Now()) / kHourUs - 5) * kHourUs;
    for (int s = 0; s < 3; ++s) {
      for (int h = 0; h < 5; ++h) {
        v1::ReadingBatch b;
        b.set_idempotency_key(absl::StrCat(Db(), "-", s, "-", h));
        for (int i = 0; i < 360; ++i) {
          int64_t us = base_us_ + h * kHourUs + i * 10'000'000LL;
          *b.add_readings() = MakeReading(absl::StrCat("s", s), us,
                                          s * 100 + h * 10 + std::sin(i) * 3);
        }
        Write(b);
      }
    }
  }
  void TearDown() override {
    if (reader_) reader_->Shutdown(absl::Seconds(2));
    if (gateway_) gateway_->Shutdown(absl::Seconds(2));
  }
  void Write(const v1::ReadingBatch& b) {
    grpc::ClientContext ctx;
    v1::BatchAck ack;
    grpc::Status s = ingest_->WriteBatch(&ctx, b, &ack);
    ASSERT_TRUE(s.ok()) << s.error_message();
    ASSERT_EQ(ack.rejected(), 0u);
  }
  std::string Q(const std::string& sql) { return QueryScalar(conninfo_, sql); }
  // The test's database name: unique, so Redis keys never collide across tests.
  std::string Db() const { return conninfo_.substr(conninfo_.find("dbname=") + 7); }
  std::string Ts(int64_t us) {
    return absl::StrCat("('epoch'::timestamptz + ", us, " * interval '1 microsecond')");
  }

  pg::StorageMode mode_ = pg::StorageMode::kNative;  // set before SetUp
  std::string conninfo_;
  int64_t base_us_ = 0;
  std::unique_ptr<ingest::IngestServer> gateway_;
  std::unique_ptr<query::ReadServer> reader_;
  std::unique_ptr<v1::IngestService::Stub> ingest_;
  std::unique_ptr<v1::QueryService::Stub> query_;
  std::unique_ptr<v1::AlertService::Stub> alerts_;
  std::unique_ptr<v1::MaintenanceService::Stub> maintenance_;
  std::unique_ptr<v1::AdminService::Stub> admin_;
};

}  // namespace telemetry::testing

#endif  // TELEMETRY_TESTS_E2E_READ_SERVICE_FIXTURE_H_
