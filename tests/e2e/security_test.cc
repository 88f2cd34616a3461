// Transport security and caller authentication through the real services on
// loopback, real PostgreSQL and Redis: TLS and mutual TLS (certificates made
// by a throwaway CA), device tokens and sensor ownership at the gateway,
// API token scopes at the read service, and credentials issued, rotated and
// revoked with telemetryctl.
#include <gtest/gtest.h>

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "client/channel.h"
#include "client/telemetry_client.h"
#include "server/common/credentials.h"
#include "server/ingest/ingest_server.h"
#include "server/query/read_server.h"
#include "telemetry/v1/ingest.grpc.pb.h"
#include "telemetry/v1/query.grpc.pb.h"
#include "tests/support/reading_builders.h"
#include "tests/support/servers_environment.h"
#include "tests/support/test_pki.h"

// Designated initializers name only the ChannelOptions fields that matter.
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

namespace telemetry {
namespace {

using telemetry::testing::MigratedDatabase;
using telemetry::testing::QueryScalar;
using telemetry::testing::Redis;
namespace v1 = telemetry::v1;

v1::ReadingBatch Batch(const std::string& key, const std::vector<std::string>& sensors) {
  v1::ReadingBatch b;
  b.set_idempotency_key(key);
  const int64_t now_s = absl::ToUnixSeconds(absl::Now()) - 60;
  int i = 0;
  for (const std::string& s : sensors) {
    *b.add_readings() = telemetry::testing::ReadingAt(s, (now_s - i++) * 1'000'000, 1.5);
  }
  return b;
}

// Issues a device credential straight into the table, as telemetryctl does.
std::string AddDevice(const std::string& db, const std::string& id, const std::string& patterns) {
  std::string token = *NewBearerToken();
  QueryScalar(db, absl::StrCat("INSERT INTO device_credentials (device_id, token_sha256, "
                               "sensor_patterns) VALUES ('", id, "', decode('",
                               Sha256Hex(token), "', 'hex'), '", patterns,
                               "') RETURNING 1"));
  return token;
}

class SecurityTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string(absl::StrCat(::testing::TempDir(), "/pki-", getpid()));
    std::filesystem::create_directories(*dir_);
    auto pki = telemetry::testing::MakeTestPki(*dir_, {"device-1", "device-unknown"});
    ASSERT_TRUE(pki.ok()) << pki.status();
    pki_ = new telemetry::testing::TestPki(*pki);
  }

  void StartGateway(bool mtls, absl::Duration credential_refresh = absl::Minutes(10),
                    ingest::DeviceLimits limits = {}, size_t max_batch_readings = 10000) {
    db_ = MigratedDatabase();
    auto s = ingest::IngestServer::Start(
        GatewayOptions(mtls, credential_refresh, limits, max_batch_readings));
    ASSERT_TRUE(s.ok()) << s.status();
    gateway_ = *std::move(s);
  }

  // A TLS gateway over db_ and the shared Redis.
  ingest::IngestServerOptions GatewayOptions(bool mtls, absl::Duration credential_refresh,
                                             ingest::DeviceLimits limits,
                                             size_t max_batch_readings) {
    ingest::IngestServerOptions o;
    o.service.device_limits = limits;
    o.service.validation.max_batch_readings = max_batch_readings;
    o.listen_address = "127.0.0.1:0";
    o.metrics_address = "";
    o.database_url = db_;
    o.redis_url = Redis().Url();
    o.transport.cert_file = pki_->server_cert;
    o.transport.key_file = pki_->server_key;
    if (mtls) o.transport.client_ca_file = pki_->ca_cert;
    o.credential_refresh = credential_refresh;
    return o;
  }

  std::unique_ptr<v1::IngestService::Stub> StubFor(int port, client::ChannelOptions o) {
    if (!o.plaintext && o.ca_file.empty()) o.ca_file = pki_->ca_cert;
    auto ch = client::OpenChannel(absl::StrCat("127.0.0.1:", port), o);
    EXPECT_TRUE(ch.ok()) << ch.status();
    return v1::IngestService::NewStub(*ch);
  }

  std::unique_ptr<v1::IngestService::Stub> IngestStub(client::ChannelOptions o) {
    return StubFor(gateway_->port(), o);
  }

  grpc::Status Write(v1::IngestService::Stub& stub, const v1::ReadingBatch& b,
                     v1::BatchAck* ack = nullptr) {
    v1::BatchAck local;
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    return stub.WriteBatch(&ctx, b, ack ? ack : &local);
  }

  int64_t Stored(const std::string& sensor_prefix) {
    return std::stoll(QueryScalar(db_, absl::StrCat("SELECT count(*) FROM sensor_readings "
                                                    "WHERE sensor_id LIKE '",
                                                    sensor_prefix, "%'")));
  }

  void TearDown() override {
    if (gateway_) gateway_->Shutdown(absl::Seconds(2));
  }

  static std::string* dir_;
  static telemetry::testing::TestPki* pki_;
  std::string db_;
  std::unique_ptr<ingest::IngestServer> gateway_;
};
std::string* SecurityTest::dir_ = nullptr;
telemetry::testing::TestPki* SecurityTest::pki_ = nullptr;

TEST_F(SecurityTest, ServersRefuseToStartWithoutCertificatesUnlessPlaintextIsExplicit) {
  ingest::IngestServerOptions o;
  o.listen_address = "127.0.0.1:0";
  o.metrics_address = "";
  o.database_url = MigratedDatabase();
  auto s = ingest::IngestServer::Start(o);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.status().message().find("--plaintext"), std::string_view::npos) << s.status();

  query::ReadServerOptions ro;
  ro.listen_address = "127.0.0.1:0";
  ro.metrics_address = "";
  ro.database_url = o.database_url;
  ro.transport.cert_file = pki_->server_cert;  // no key
  auto r = query::ReadServer::Start(ro);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(SecurityTest, TlsGatewayServesTlsClientsAndRefusesPlaintextAndUnknownCas) {
  StartGateway(/*mtls=*/false);
  const std::string token = AddDevice(db_, "dev-a", "{tls-*}");

  auto good = IngestStub({.bearer_token = token});
  EXPECT_TRUE(Write(*good, Batch("k1", {"tls-1", "tls-2"})).ok());
  EXPECT_EQ(Stored("tls-"), 2);

  auto plain = IngestStub({.plaintext = true, .bearer_token = token});
  EXPECT_EQ(Write(*plain, Batch("k2", {"tls-3"})).error_code(), grpc::StatusCode::UNAVAILABLE);

  // A client that trusts another CA does not accept the server.
  auto wrong_ca = IngestStub({.ca_file = pki_->dir + "/rogue-ca.pem", .bearer_token = token});
  EXPECT_EQ(Write(*wrong_ca, Batch("k3", {"tls-4"})).error_code(),
            grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(Stored("tls-"), 2);
}

// Several gateway addresses in one channel over TLS: the certificate is
// checked against the first address (the channel's authority), not
// against the whole list, and a wrong CA is still refused.
TEST_F(SecurityTest, TlsChannelToAListOfGatewaysVerifiesTheServer) {
  StartGateway(/*mtls=*/false);
  const std::string token = AddDevice(db_, "dev-list", "{tlslist-*}");
  const std::string list =
      absl::StrCat("127.0.0.1:", gateway_->port(), ",127.0.0.1:", gateway_->port());
  auto good = client::OpenChannel(list, {.ca_file = pki_->ca_cert, .bearer_token = token});
  ASSERT_TRUE(good.ok()) << good.status();
  auto stub = v1::IngestService::NewStub(*good);
  for (int i = 0; i < 4; ++i) {  // round_robin: more than one pick
    const grpc::Status st =
        Write(*stub, Batch(absl::StrCat("list-", i), {absl::StrCat("tlslist-", i)}));
    EXPECT_TRUE(st.ok()) << st.error_message();
  }
  EXPECT_EQ(Stored("tlslist-"), 4);
  auto rogue = client::OpenChannel(
      list, {.ca_file = pki_->dir + "/rogue-ca.pem", .bearer_token = token});
  ASSERT_TRUE(rogue.ok()) << rogue.status();
  auto rogue_stub = v1::IngestService::NewStub(*rogue);
  EXPECT_EQ(Write(*rogue_stub, Batch("list-rogue", {"tlslist-x"})).error_code(),
            grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(Stored("tlslist-"), 4);
}

TEST_F(SecurityTest, ARotatedServerCertificateIsServedWithoutARestart) {
  // The gateway serves copies of the first PKI's files; the test then puts a
  // second CA's certificate in their place, as a secret renewal would.
  namespace fs = std::filesystem;
  const fs::path dir = fs::path(*dir_) / "rotate";
  fs::create_directories(dir / "second");
  fs::copy_file(pki_->server_cert, dir / "server.crt", fs::copy_options::overwrite_existing);
  fs::copy_file(pki_->server_key, dir / "server.key", fs::copy_options::overwrite_existing);
  auto second = telemetry::testing::MakeTestPki((dir / "second").string(), {});
  ASSERT_TRUE(second.ok()) << second.status();

  db_ = MigratedDatabase();
  ingest::IngestServerOptions o;
  o.listen_address = "127.0.0.1:0";
  o.metrics_address = "";
  o.database_url = db_;
  o.redis_url = Redis().Url();
  o.transport.cert_file = (dir / "server.crt").string();
  o.transport.key_file = (dir / "server.key").string();
  o.transport.certificate_refresh = absl::Seconds(1);
  auto s = ingest::IngestServer::Start(o);
  ASSERT_TRUE(s.ok()) << s.status();
  gateway_ = *std::move(s);

  // A handshake that completes reaches the service, which wants a token:
  // UNAUTHENTICATED. One that fails is UNAVAILABLE. A fresh connection each
  // time, so the handshake is redone.
  auto handshake_with = [&](const std::string& ca) {
    auto ch = client::OpenChannel(absl::StrCat("127.0.0.1:", gateway_->port()),
                                  {.ca_file = ca, .dedicated_connection = true});
    EXPECT_TRUE(ch.ok());
    auto stub = v1::IngestService::NewStub(*ch);
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    v1::BatchAck ack;
    return stub->WriteBatch(&ctx, Batch("rot", {"rot-1"}), &ack).error_code();
  };
  EXPECT_EQ(handshake_with(pki_->ca_cert), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(handshake_with(second->ca_cert), grpc::StatusCode::UNAVAILABLE);

  // Replace both files atomically (rename), key first.
  fs::copy_file(second->server_key, dir / "server.key.new");
  fs::copy_file(second->server_cert, dir / "server.crt.new");
  fs::rename(dir / "server.key.new", dir / "server.key");
  fs::rename(dir / "server.crt.new", dir / "server.crt");
  grpc::StatusCode after = grpc::StatusCode::OK;
  for (absl::Time deadline = absl::Now() + absl::Seconds(20); absl::Now() < deadline;) {
    after = handshake_with(second->ca_cert);
    if (after == grpc::StatusCode::UNAUTHENTICATED) break;
    absl::SleepFor(absl::Milliseconds(200));
  }
  EXPECT_EQ(after, grpc::StatusCode::UNAUTHENTICATED) << "the new certificate was never served";
  EXPECT_EQ(handshake_with(pki_->ca_cert), grpc::StatusCode::UNAVAILABLE);
}

TEST_F(SecurityTest, DeviceTokensAuthenticateAndSensorOwnershipIsEnforced) {
  StartGateway(/*mtls=*/false, /*credential_refresh=*/absl::Seconds(1));
  const std::string token = AddDevice(db_, "dev-b", "{own-1,ownp-*}");

  // No token, a made-up token: UNAUTHENTICATED, on unary and stream alike.
  auto none = IngestStub({});
  grpc::Status st = Write(*none, Batch("n1", {"own-1"}));
  EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAUTHENTICATED) << st.error_message();
  auto forged = IngestStub({.bearer_token = "not-a-token"});
  EXPECT_EQ(Write(*forged, Batch("n2", {"own-1"})).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  {
    grpc::ClientContext ctx;
    auto stream = forged->StreamReadings(&ctx);
    stream->Write(Batch("n3", {"own-1"}));
    stream->WritesDone();
    v1::BatchAck ack;
    while (stream->Read(&ack)) {
    }
    EXPECT_EQ(stream->Finish().error_code(), grpc::StatusCode::UNAUTHENTICATED);
  }
  EXPECT_EQ(Stored("own"), 0);

  auto dev = IngestStub({.bearer_token = token});
  EXPECT_TRUE(Write(*dev, Batch("b1", {"own-1", "ownp-7", "ownp-8"})).ok());
  EXPECT_EQ(Stored("own"), 3);
  // One foreign sensor fails the whole batch: nothing of it is stored.
  st = Write(*dev, Batch("b2", {"own-1", "other-9"}));
  EXPECT_EQ(st.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_NE(st.error_message().find("other-9"), std::string::npos) << st.error_message();
  EXPECT_EQ(Stored("own"), 3);
  EXPECT_EQ(Stored("other"), 0);
  // On a stream the batch's ack carries the refusal; the stream goes on.
  {
    grpc::ClientContext ctx;
    auto stream = dev->StreamReadings(&ctx);
    v1::ReadingBatch denied = Batch("s1", {"other-1"});
    v1::ReadingBatch fine = Batch("s2", {"ownp-9"});
    fine.mutable_readings(0)->mutable_timestamp()->set_seconds(
        absl::ToUnixSeconds(absl::Now()) - 120);
    ASSERT_TRUE(stream->Write(denied));
    ASSERT_TRUE(stream->Write(fine));
    stream->WritesDone();
    std::map<std::string, v1::BatchAck> acks;
    v1::BatchAck ack;
    while (stream->Read(&ack)) acks[ack.idempotency_key()] = ack;
    EXPECT_TRUE(stream->Finish().ok());
    EXPECT_EQ(acks["s1"].status_code(), grpc::StatusCode::PERMISSION_DENIED);
    EXPECT_EQ(acks["s2"].status_code(), 0);
    EXPECT_EQ(acks["s2"].accepted(), 1u);
  }
  EXPECT_EQ(Stored("own"), 4);

  // Two devices may use the same idempotency key without colliding. (A
  // credential issued a moment ago is found by the reload an unknown token
  // forces, at most once a second: poll.)
  const std::string token2 = AddDevice(db_, "dev-c", "{ownq-*}");
  auto dev2 = IngestStub({.bearer_token = token2});
  v1::BatchAck ack;
  grpc::Status first;
  for (absl::Time deadline = absl::Now() + absl::Seconds(10); absl::Now() < deadline;) {
    first = Write(*dev2, Batch("b1", {"ownq-1"}), &ack);
    if (first.error_code() != grpc::StatusCode::UNAUTHENTICATED) break;
    absl::SleepFor(absl::Milliseconds(100));
  }
  ASSERT_TRUE(first.ok()) << first.error_message();
  EXPECT_EQ(ack.accepted(), 1u);
  EXPECT_EQ(ack.duplicates(), 0u);

  // Revoked: refused once the gateway's snapshot refreshes (1 s here).
  QueryScalar(db_, "UPDATE device_credentials SET revoked_at = now() WHERE device_id = 'dev-b' "
                   "RETURNING 1");
  grpc::Status after;
  for (absl::Time deadline = absl::Now() + absl::Seconds(10); absl::Now() < deadline;) {
    after = Write(*dev, Batch("r", {"ownp-r"}));
    if (after.error_code() == grpc::StatusCode::UNAUTHENTICATED) break;
    absl::SleepFor(absl::Milliseconds(100));
  }
  EXPECT_EQ(after.error_code(), grpc::StatusCode::UNAUTHENTICATED) << after.error_message();
  // 4 above, ownq-1, and "r" once however often it was sent before the
  // revocation took effect.
  EXPECT_EQ(Stored("own"), 6);
}

TEST_F(SecurityTest, RevokingADeviceEndsItsOpenStreamWithUnauthenticated) {
  StartGateway(/*mtls=*/false, /*credential_refresh=*/absl::Milliseconds(200));
  const std::string token = AddDevice(db_, "dev-rv", "{rev-*}");
  auto dev = IngestStub({.bearer_token = token});
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
  auto stream = dev->StreamReadings(&ctx);
  v1::BatchAck ack;
  ASSERT_TRUE(stream->Write(Batch("rv-0", {"rev-0"})));
  ASSERT_TRUE(stream->Read(&ack));
  EXPECT_EQ(ack.status_code(), 0) << ack.status_message();

  QueryScalar(db_, "UPDATE device_credentials SET revoked_at = now() WHERE device_id = "
                   "'dev-rv' RETURNING 1");
  // The device keeps sending on its open stream, one batch per ack, until
  // the gateway refuses (bounded: the refresh is 200 ms here).
  int sent = 1;
  bool refused = false;
  for (absl::Time deadline = absl::Now() + absl::Seconds(20); absl::Now() < deadline; ++sent) {
    const std::string n = absl::StrCat(sent);
    if (!stream->Write(Batch("rv-" + n, {"rev-" + n})) || !stream->Read(&ack)) break;
    if (ack.status_code() == grpc::StatusCode::UNAUTHENTICATED) {
      refused = true;
      EXPECT_NE(ack.status_message().find("revoked"), std::string::npos) << ack.status_message();
      break;
    }
    EXPECT_EQ(ack.status_code(), 0) << ack.status_message();
    absl::SleepFor(absl::Milliseconds(20));  // the device's pace, not synchronisation
  }
  EXPECT_TRUE(refused) << "the stream went on after the revocation";
  stream->WritesDone();
  while (stream->Read(&ack)) {
  }
  grpc::Status st = stream->Finish();
  EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAUTHENTICATED) << st.error_message();
  // The refused batch was not stored; everything acknowledged before was.
  EXPECT_EQ(Stored("rev-"), sent);  // rev-0 and the batches acked before the refusal
}

TEST_F(SecurityTest, ClientLibraryStopsAtOnceOnARefusalNoRetryCanFix) {
  StartGateway(/*mtls=*/false);
  auto ch = client::OpenChannel(absl::StrCat("127.0.0.1:", gateway_->port()),
                                {.ca_file = pki_->ca_cert, .bearer_token = "revoked-or-bogus"});
  ASSERT_TRUE(ch.ok());
  client::BatchStream stream(*ch, {}, nullptr);
  ASSERT_TRUE(stream.Send(Batch("x1", {"any-1"})).ok());
  const absl::Time start = absl::Now();
  auto closed = stream.Close(absl::Minutes(2));
  EXPECT_EQ(closed.status().code(), absl::StatusCode::kUnauthenticated) << closed.status();
  // Not the close timeout: the refusal ends the stream for good.
  EXPECT_LT(absl::Now() - start, absl::Minutes(1));
}

v1::ReadingBatch TenReadings(const std::string& key, const std::string& sensor) {
  return Batch(key, std::vector<std::string>(10, sensor));  // ten timestamps, one sensor
}

TEST_F(SecurityTest, DeviceOverItsRateGetsResourceExhaustedWithAHintAndTheClientWaitsForIt) {
  ingest::DeviceLimits limits;
  limits.readings_per_second = 20;
  limits.burst_readings = 20;
  StartGateway(/*mtls=*/false, absl::Minutes(10), limits, /*max_batch_readings=*/10);
  const std::string token = AddDevice(db_, "dev-rate", "{rate-*}");
  auto dev = IngestStub({.bearer_token = token});

  // The burst passes (20 readings, then 20 a second); a batch beyond it is
  // refused whole, with the wait. (Sent until refused, so a slow machine
  // refilling the bucket between calls cannot make this flaky.)
  int admitted = 0;
  grpc::Status st;
  absl::Duration hint;
  for (int i = 0; i < 50; ++i) {
    grpc::ClientContext ctx;
    v1::BatchAck ack;
    st = dev->WriteBatch(&ctx, TenReadings(absl::StrCat("u", i), absl::StrCat("rate-u", i)),
                         &ack);
    if (!st.ok()) {
      hint = client::RetryPushback(ctx);
      break;
    }
    ++admitted;
  }
  ASSERT_EQ(st.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << st.error_message();
  EXPECT_GE(admitted, 2);
  EXPECT_NE(st.error_message().find("dev-rate"), std::string::npos) << st.error_message();
  EXPECT_NE(st.error_message().find("retry in"), std::string::npos) << st.error_message();
  EXPECT_GT(hint, absl::ZeroDuration());
  EXPECT_LE(hint, absl::Milliseconds(500));  // at most 10 readings at 20/s
  EXPECT_EQ(Stored("rate"), 10 * admitted);

  // On a stream a throttled batch's ack says so, with retry_after, and the
  // stream goes on. Five batches back to back: more than the bucket can
  // have refilled, however slow this machine is.
  int throttled_acks = 0;
  uint64_t raw_accepted = 0;
  {
    grpc::ClientContext raw_ctx;
    auto raw = dev->StreamReadings(&raw_ctx);
    for (int i = 0; i < 5; ++i) {
      ASSERT_TRUE(raw->Write(TenReadings(absl::StrCat("raw", i), absl::StrCat("rate-raw", i))));
    }
    raw->WritesDone();
    v1::BatchAck raw_ack;
    while (raw->Read(&raw_ack)) {
      raw_accepted += raw_ack.accepted();
      if (raw_ack.status_code() == grpc::StatusCode::RESOURCE_EXHAUSTED) {
        ++throttled_acks;
        EXPECT_TRUE(raw_ack.has_retry_after());
        EXPECT_GT(raw_ack.retry_after().nanos() + raw_ack.retry_after().seconds(), 0);
        EXPECT_EQ(raw_ack.accepted(), 0u);
      }
    }
    EXPECT_TRUE(raw->Finish().ok());
  }
  EXPECT_GE(throttled_acks, 1);

  // Another device is not held back by this one.
  const std::string other = AddDevice(db_, "dev-calm", "{calm-*}");
  auto calm = IngestStub({.bearer_token = other});
  grpc::Status calm_status;
  for (absl::Time deadline = absl::Now() + absl::Seconds(10); absl::Now() < deadline;) {
    calm_status = Write(*calm, TenReadings("c1", "calm-1"));
    if (calm_status.error_code() != grpc::StatusCode::UNAUTHENTICATED) break;
    absl::SleepFor(absl::Milliseconds(100));
  }
  EXPECT_TRUE(calm_status.ok()) << calm_status.error_message();

  // The client library waits as told and resends: everything lands once.
  auto ch = client::OpenChannel(absl::StrCat("127.0.0.1:", gateway_->port()),
                                {.ca_file = pki_->ca_cert, .bearer_token = token});
  ASSERT_TRUE(ch.ok());
  client::BatchStream stream(*ch, {}, nullptr);
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(stream.Send(TenReadings(absl::StrCat("s", i), absl::StrCat("rate-s", i))).ok());
  }
  auto stats = stream.Close(absl::Seconds(60));
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(stats->accepted, 50u);
  EXPECT_GT(stats->resends, 0u);  // 50 readings > the 20 the bucket holds
  EXPECT_TRUE(stats->failed.empty());
  EXPECT_EQ(Stored("rate"), 10 * admitted + static_cast<int64_t>(raw_accepted) + 50);
}

// What one device got through two gateways in one run: the readings
// admitted (all of them stored: checked), the seconds it took, and the
// calls each gateway refused as over the rate.
struct TwoGatewayRun {
  int64_t admitted = 0;
  double seconds = 0;
  int refused_by[2] = {0, 0};
};

// Two gateways on one database and one Redis; one device writes through
// both at once (two connections, as fast as they answer) for four seconds.
TEST_F(SecurityTest, ADeviceRateIsOneLimitAcrossGatewaysUnlessScopedPerGateway) {
  constexpr double kRate = 200;  // readings/s, and a bucket of as many
  ingest::DeviceLimits limits;
  limits.readings_per_second = kRate;
  limits.burst_readings = kRate;
  db_ = MigratedDatabase();
  auto run = [&](ingest::IngestServerOptions::DeviceLimitScope scope,
                 const std::string& device) -> TwoGatewayRun {
    std::unique_ptr<ingest::IngestServer> gateways[2];
    for (auto& g : gateways) {
      ingest::IngestServerOptions o = GatewayOptions(false, absl::Minutes(10), limits, 10);
      o.device_limit_scope = scope;
      o.device_usage_interval = absl::Milliseconds(100);
      auto s = ingest::IngestServer::Start(o);
      EXPECT_TRUE(s.ok()) << s.status();
      if (!s.ok()) return {};
      g = *std::move(s);
    }
    const std::string token = AddDevice(db_, device, absl::StrCat("{", device, "-*}"));
    std::atomic<int64_t> admitted{0};
    TwoGatewayRun out;
    const absl::Time start = absl::Now(), end = start + absl::Seconds(4);
    std::thread writers[2];
    for (int w = 0; w < 2; ++w) {
      writers[w] = std::thread([&, w] {
        auto stub = StubFor(gateways[w]->port(), {.bearer_token = token});
        for (int i = 0; i < 100'000 && absl::Now() < end; ++i) {
          const std::string key = absl::StrCat("g", w, "-", i);
          v1::BatchAck ack;
          grpc::ClientContext ctx;
          ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
          grpc::Status st =
              stub->WriteBatch(&ctx, TenReadings(key, absl::StrCat(device, "-", key)), &ack);
          if (st.ok()) {
            admitted += 10;
          } else if (st.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED) {
            ++out.refused_by[w];
            // As a well-behaved device would: ask again when told (capped,
            // so that the run ends on time), not in a busy loop.
            absl::SleepFor(std::min(client::RetryPushback(ctx), absl::Milliseconds(200)));
          }
        }
      });
    }
    for (auto& t : writers) t.join();
    out.seconds = absl::ToDoubleSeconds(absl::Now() - start);
    out.admitted = admitted.load();
    for (auto& g : gateways) g->Shutdown(absl::Seconds(2));
    EXPECT_EQ(Stored(device), out.admitted);
    return out;
  };

  const TwoGatewayRun cluster =
      run(ingest::IngestServerOptions::DeviceLimitScope::kCluster, "rate-cluster");
  const TwoGatewayRun alone =
      run(ingest::IngestServerOptions::DeviceLimitScope::kGateway, "rate-alone");
  // The rate over the run plus each gateway's first bucket (neither is
  // charged for what came before its first report) and an interval of lag
  // each: about 1,240 readings. On top, one and a half buckets to spare,
  // for a report that fails on a loaded machine (its timeout and backoff).
  // Per gateway, about 2,000 (twice the rate and a bucket each).
  std::printf("one device through two gateways: cluster scope %lld readings in %.1f s, "
              "per-gateway scope %lld in %.1f s\n",
              static_cast<long long>(cluster.admitted), cluster.seconds,
              static_cast<long long>(alone.admitted), alone.seconds);
  auto bound = [&](double seconds) {
    return kRate * (seconds + 2 * 0.1) + 3.5 * kRate;
  };
  EXPECT_LE(cluster.admitted, bound(cluster.seconds))
      << "over " << cluster.seconds << " s, refused " << cluster.refused_by[0] << "/"
      << cluster.refused_by[1];
  EXPECT_GE(cluster.admitted, kRate * 2);  // the device was not shut out
  EXPECT_GT(cluster.refused_by[0], 0);
  EXPECT_GT(cluster.refused_by[1], 0);
  // Per gateway, each holds it to the rate alone: the same bound fails.
  EXPECT_GT(alone.admitted, bound(alone.seconds))
      << "over " << alone.seconds << " s";
}


TEST_F(SecurityTest, DeviceStreamCapRefusesTheExtraStreamUntilOneCloses) {
  ingest::DeviceLimits limits;
  limits.max_streams = 2;
  StartGateway(/*mtls=*/false, absl::Minutes(10), limits);
  const std::string token = AddDevice(db_, "dev-streams", "{cap-*}");
  auto dev = IngestStub({.bearer_token = token});

  // Two streams, each proven open by an acknowledged batch.
  std::vector<std::unique_ptr<grpc::ClientContext>> contexts;
  std::vector<std::unique_ptr<grpc::ClientReaderWriter<v1::ReadingBatch, v1::BatchAck>>> open;
  for (int i = 0; i < 2; ++i) {
    contexts.push_back(std::make_unique<grpc::ClientContext>());
    open.push_back(dev->StreamReadings(contexts.back().get()));
    ASSERT_TRUE(open.back()->Write(Batch(absl::StrCat("o", i), {absl::StrCat("cap-", i)})));
    v1::BatchAck ack;
    ASSERT_TRUE(open.back()->Read(&ack));
    EXPECT_EQ(ack.status_code(), 0) << ack.status_message();
  }
  auto third_attempt = [&](const std::string& key) {
    grpc::ClientContext ctx;
    auto s = dev->StreamReadings(&ctx);
    s->Write(Batch(key, {absl::StrCat("cap-", key)}));
    s->WritesDone();
    v1::BatchAck ack;
    while (s->Read(&ack)) {
    }
    grpc::Status st = s->Finish();
    return std::make_pair(st, client::RetryPushback(ctx));
  };
  auto [refused, hint] = third_attempt("x");
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << refused.error_message();
  EXPECT_NE(refused.error_message().find("2 open streams"), std::string::npos)
      << refused.error_message();
  EXPECT_GT(hint, absl::ZeroDuration());
  EXPECT_EQ(Stored("cap-x"), 0);

  // Close one: a new stream is admitted (the server releases the slot when
  // the call is done, asynchronously: poll).
  open[0]->WritesDone();
  v1::BatchAck drain;
  while (open[0]->Read(&drain)) {
  }
  EXPECT_TRUE(open[0]->Finish().ok());
  grpc::Status admitted;
  for (absl::Time deadline = absl::Now() + absl::Seconds(10); absl::Now() < deadline;) {
    admitted = third_attempt("y").first;
    if (admitted.ok()) break;
    absl::SleepFor(absl::Milliseconds(50));
  }
  EXPECT_TRUE(admitted.ok()) << admitted.error_message();
  EXPECT_EQ(Stored("cap-y"), 1);
  open[1]->WritesDone();
  while (open[1]->Read(&drain)) {
  }
  EXPECT_TRUE(open[1]->Finish().ok());
}

TEST_F(SecurityTest, MutualTlsIdentifiesTheDeviceByItsCertificate) {
  StartGateway(/*mtls=*/true);
  QueryScalar(db_, "INSERT INTO device_credentials (device_id, sensor_patterns) VALUES "
                   "('device-1', '{mtls-*}') RETURNING 1");
  auto dev = IngestStub(
      {.cert_file = pki_->ClientCert("device-1"), .key_file = pki_->ClientKey("device-1")});
  EXPECT_TRUE(Write(*dev, Batch("m1", {"mtls-1"})).ok());
  EXPECT_EQ(Stored("mtls-"), 1);
  EXPECT_EQ(Write(*dev, Batch("m2", {"elsewhere-1"})).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);

  // A valid certificate of an unregistered device: UNAUTHENTICATED.
  auto unknown = IngestStub({.cert_file = pki_->ClientCert("device-unknown"),
                             .key_file = pki_->ClientKey("device-unknown")});
  EXPECT_EQ(Write(*unknown, Batch("m3", {"mtls-2"})).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  // No certificate, or one from another CA: the handshake fails.
  auto anonymous = IngestStub({});
  EXPECT_EQ(Write(*anonymous, Batch("m4", {"mtls-3"})).error_code(),
            grpc::StatusCode::UNAVAILABLE);
  auto rogue = IngestStub({.cert_file = pki_->rogue_cert, .key_file = pki_->rogue_key});
  EXPECT_EQ(Write(*rogue, Batch("m5", {"mtls-4"})).error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(Stored("mtls-"), 1);
}

TEST_F(SecurityTest, ReadServiceTokensHaveReadAndAdminScopes) {
  db_ = MigratedDatabase();
  query::ReadServerOptions ro;
  ro.listen_address = "127.0.0.1:0";
  ro.metrics_address = "";
  ro.database_url = db_;
  ro.transport.cert_file = pki_->server_cert;
  ro.transport.key_file = pki_->server_key;
  ro.lifecycle.run_native_jobs = false;
  auto server = query::ReadServer::Start(ro);
  ASSERT_TRUE(server.ok()) << server.status();
  std::string read_token = *NewBearerToken(), admin_token = *NewBearerToken();
  QueryScalar(db_, absl::StrCat("INSERT INTO api_tokens (name, token_sha256, scope) VALUES "
                                "('dash', decode('", Sha256Hex(read_token), "', 'hex'), 'read'), "
                                "('ops', decode('", Sha256Hex(admin_token), "', 'hex'), 'admin') "
                                "RETURNING 1"));
  auto channel = [&](const std::string& token) {
    auto ch = client::OpenChannel(absl::StrCat("127.0.0.1:", (*server)->port()),
                                  {.ca_file = pki_->ca_cert, .bearer_token = token});
    EXPECT_TRUE(ch.ok());
    return *ch;
  };
  auto latest = [&](const std::string& token) {
    v1::LatestReadingsRequest req;
    req.set_sensor_id("any");
    v1::LatestReadingsResponse resp;
    grpc::ClientContext ctx;
    return v1::QueryService::NewStub(channel(token))->LatestReadings(&ctx, req, &resp)
        .error_code();
  };
  auto jobs = [&](const std::string& token) {
    v1::ListJobsResponse resp;
    grpc::ClientContext ctx;
    return v1::AdminService::NewStub(channel(token))->ListJobs(&ctx, {}, &resp).error_code();
  };
  EXPECT_EQ(latest(""), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(latest("forged"), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(latest(read_token), grpc::StatusCode::OK);
  EXPECT_EQ(latest(admin_token), grpc::StatusCode::OK);
  EXPECT_EQ(jobs(read_token), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(jobs(admin_token), grpc::StatusCode::OK);
  (*server)->Shutdown(absl::Seconds(1));
}

TEST_F(SecurityTest, TelemetryctlIssuesTokensThatWorkAndStoresOnlyTheirHash) {
  StartGateway(/*mtls=*/false);
  const std::string out = absl::StrCat(*dir_, "/token.out");
  std::string cmd = absl::StrCat("DATABASE_URL='", db_, "' ", TELEMETRYCTL_PATH,
                                 " device add ctl-dev --sensors='ctl-*' > ", out, " 2>/dev/null");
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  std::ifstream in(out);
  std::string token;
  std::getline(in, token);
  ASSERT_EQ(token.size(), 43u) << token;  // 32 bytes, base64url without padding
  EXPECT_EQ(QueryScalar(db_, "SELECT encode(token_sha256, 'hex') FROM device_credentials "
                             "WHERE device_id = 'ctl-dev'"),
            Sha256Hex(token));
  EXPECT_EQ(QueryScalar(db_, absl::StrCat("SELECT count(*) FROM device_credentials WHERE "
                                          "position('", token, "' IN token_sha256::text) > 0")),
            "0");

  // telemetryctl send with the token from a file, over TLS.
  const std::string token_file = absl::StrCat(*dir_, "/ctl.token");
  std::ofstream(token_file) << token << "\n";
  const std::string csv = absl::StrCat(*dir_, "/ctl.csv");
  std::ofstream(csv) << "sensor_id,timestamp,value\nctl-1," << absl::ToUnixSeconds(absl::Now()) - 30
                     << ",1.0\n";
  cmd = absl::StrCat("INGEST_ADDRESS=127.0.0.1:", gateway_->port(), " TELEMETRY_TLS_CA=",
                     pki_->ca_cert, " TELEMETRY_TOKEN_FILE=", token_file, " ", TELEMETRYCTL_PATH,
                     " send --file=", csv, " > ", out, " 2>&1");
  EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
  EXPECT_EQ(Stored("ctl-"), 1);
}

}  // namespace
}  // namespace telemetry
