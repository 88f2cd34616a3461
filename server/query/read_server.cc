#include "server/query/read_server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <prometheus/registry.h>

#include <algorithm>
#include <exception>

#include "absl/strings/str_cat.h"
#include "server/common/log.h"
#include "server/common/metrics_http_server.h"
#include "server/common/process_metrics.h"
#include "server/query/admin_service.h"
#include "server/query/alert_service.h"
#include "server/query/maintenance_service.h"
#include "server/query/query_service.h"
#include "server/query/read_status.h"
#include "storage/pg/migrator.h"

namespace telemetry::query {
namespace {

std::string SessionSql(absl::Duration statement_timeout, bool read_only) {
  return absl::StrCat("SET application_name = 'read-service'; SET statement_timeout = ",
                      absl::ToInt64Milliseconds(statement_timeout),
                      read_only ? "; SET default_transaction_read_only = on" : "");
}

// Health-check names: the server as a whole ("") and each service.
constexpr const char* kHealthNames[] = {"", "telemetry.v1.QueryService",
                                        "telemetry.v1.AlertService",
                                        "telemetry.v1.MaintenanceService",
                                        "telemetry.v1.AdminService"};

}  // namespace

absl::StatusOr<std::unique_ptr<ReadServer>> ReadServer::Start(ReadServerOptions options) {
  std::unique_ptr<ReadServer> s(new ReadServer());
  s->options_ = std::move(options);
  const ReadServerOptions& o = s->options_;
  const std::string writer_url = o.writer_database_url.empty() ? o.database_url
                                                               : o.writer_database_url;
  s->reader_ = std::make_unique<pg::ConnectionPool>(
      o.database_url, o.reader_connections, SessionSql(o.statement_timeout, true));
  s->writer_ = std::make_unique<pg::ConnectionPool>(
      writer_url, o.writer_connections, SessionSql(o.statement_timeout, false));

  {  // The schema must be migrated; its mode decides the SQL.
    auto conn = s->reader_->Acquire();
    if (!conn.ok()) return conn.status();
    auto migrations = pg::LoadEmbeddedMigrations();
    if (!migrations.ok()) return migrations.status();
    pg::Migrator migrator(&**conn, *migrations, {});
    auto state = migrator.Status();
    if (!state.ok()) return state.status();
    if (!state->mode || !state->pending.empty()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "the database schema is not up to date (", state->pending.size(),
          " migrations pending); run `telemetryctl migrate apply` first"));
    }
    s->ctx_.mode = *state->mode;
  }

  s->registry_ = std::make_shared<prometheus::Registry>();
  RegisterBuildInfo(*s->registry_, "read-service");
  s->rpc_metrics_ = std::make_unique<RpcMetrics>(*s->registry_);
  s->ctx_.reader = s->reader_.get();
  s->ctx_.writer = s->writer_.get();
  s->ctx_.metrics = s->rpc_metrics_.get();
  s->ctx_.watermark = &s->watermark_;
  if (o.require_api_auth) {
    s->credentials_ = std::make_unique<CredentialStore>(
        DatabaseCredentialSource(o.database_url, CredentialTable::kApiTokens), o.credential_refresh);
    s->credentials_->StartBackgroundRefresh();
    s->ctx_.credentials = s->credentials_.get();
  }
  s->jobs_ = std::make_unique<LifecycleJobs>(&s->ctx_, o.lifecycle, *s->registry_);
  s->services_.push_back(std::make_unique<QueryServiceImpl>(&s->ctx_));
  s->services_.push_back(std::make_unique<AlertServiceImpl>(&s->ctx_));
  s->services_.push_back(std::make_unique<MaintenanceServiceImpl>(&s->ctx_));
  s->services_.push_back(std::make_unique<AdminServiceImpl>(&s->ctx_, s->jobs_.get()));
  auto credentials = MakeServerCredentials(o.transport);
  if (!credentials.ok()) return credentials.status();
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  builder.AddListeningPort(o.listen_address, *credentials, &s->port_);
  for (auto& svc : s->services_) builder.RegisterService(svc.get());
  // The sync server grows a thread per concurrent call and, by default, lets
  // a thread exit as soon as more than two sit idle: under steady concurrency
  // that is a clone()+exit() pair per burst (profiled: thread creation and
  // TLB shootdowns were the top kernel paths of the handler threads). Let
  // as many pollers idle as the pools can serve calls concurrently.
  // Measured (read_bench, concurrency 8): 4,143 -> 4,521 qps.
  builder.SetSyncServerOption(grpc::ServerBuilder::SyncServerOption::MAX_POLLERS,
                              std::max(2, o.reader_connections + o.writer_connections));
  s->server_ = builder.BuildAndStart();
  if (!s->server_ || s->port_ == 0) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", o.listen_address));
  }
  if (!o.health_address.empty()) {
    auto health = HealthServer::Start(o.health_address);
    if (!health.ok()) {
      s->server_->Shutdown();
      return health.status();
    }
    s->health_ = *std::move(health);
  }
  for (const char* name : kHealthNames) {
    s->server_->GetHealthCheckService()->SetServingStatus(name, true);
    if (s->health_) s->health_->SetServing(name, true);
  }
  // Readiness follows the database; liveness ("") stays SERVING.
  s->readiness_ = std::make_unique<DatabaseReadiness>(
      o.database_url, o.readiness_interval, [raw = s.get()](bool ready) {
        raw->database_answers_.store(ready, std::memory_order_relaxed);
        for (const char* name : kHealthNames) {
          if (*name == '\0') continue;
          raw->server_->GetHealthCheckService()->SetServingStatus(name, ready);
          if (raw->health_) raw->health_->SetServing(name, ready);
        }
      });
  s->jobs_->Start();
  if (!o.metrics_address.empty()) {
    s->process_metrics_ = MakeProcessCollector();
    MetricsHttpOptions http;
    http.address = o.metrics_address;
    http.collectables = {s->registry_, s->process_metrics_};
    http.pages.push_back({"/status", "text/html; charset=utf-8", [raw = s.get()] {
                            return RenderStatusHtml(raw->Status(), absl::Now(),
                                                    absl::Seconds(5));
                          }});
    auto served = MetricsHttpServer::Start(std::move(http));
    if (!served.ok()) {
      s->Shutdown(absl::ZeroDuration());
      return served.status();
    }
    s->http_ = *std::move(served);
    s->metrics_port_ = s->http_->port();
  }
  Log(LogLevel::kInfo, "read service serving",
      {{"grpc_port", std::to_string(s->port_)},
       {"metrics_port", std::to_string(s->metrics_port_)},
       {"health_port", std::to_string(s->health_port())},
       {"storage_mode", std::string(pg::StorageModeName(s->ctx_.mode))},
       {"transport", std::string(TransportName(o.transport))},
       {"api_auth", o.require_api_auth ? "required" : "off"},
       {"database", pg::RedactConninfo(o.database_url)},
       {"writer_database", pg::RedactConninfo(writer_url)}});
  return s;
}

void ReadServer::Shutdown(absl::Duration grace) {
  if (shut_down_) return;
  shut_down_ = true;
  if (jobs_) jobs_->Stop();
  if (server_) {
    // Every name, not only "": readiness probes ask for a service by name.
    readiness_.reset();  // no status change after this
    for (const char* name : kHealthNames) {
      server_->GetHealthCheckService()->SetServingStatus(name, false);
      if (health_) health_->SetServing(name, false);
    }
    server_->Shutdown(absl::ToChronoTime(absl::Now() + grace));
    if (health_) health_->Shutdown();
    Log(LogLevel::kInfo, "read service stopped");
  }
}

StatusReport ReadServer::Status() const {
  ReadStatusInputs in;
  in.started = started_;
  in.mode = ctx_.mode;
  in.database_answers = database_answers_.load(std::memory_order_relaxed);
  in.transport = std::string(TransportName(options_.transport));
  in.api_auth = options_.require_api_auth;
  in.grpc_port = port_;
  in.reader_connections = options_.reader_connections;
  in.writer_connections = options_.writer_connections;
  in.stats = jobs_->LastStats();
  return ReadServiceStatus(in, absl::Now());
}

ReadServer::~ReadServer() {
  Shutdown(absl::ZeroDuration());
  http_.reset();  // before the parts its pages read
}

}  // namespace telemetry::query
