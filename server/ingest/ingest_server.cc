#include "server/ingest/ingest_server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <prometheus/exposer.h>
#include <prometheus/registry.h>

#include <exception>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "server/common/log.h"
#include "storage/pg/connection.h"
#include "storage/pg/copy_writer.h"
#include "storage/redis/redis_dedupe_store.h"

namespace telemetry::ingest {
namespace {

constexpr const char* kServiceName = "telemetry.v1.IngestService";

// Reads the storage mode recorded by the migrator; FailedPrecondition when
// the schema is missing.
absl::StatusOr<pg::StorageMode> PrepareSchema(const IngestServerOptions& o) {
  absl::StatusOr<std::unique_ptr<pg::Connection>> conn =
      pg::Connection::Open(o.database_url);
  if (!conn.ok()) return conn.status();
  absl::StatusOr<std::vector<pg::Migration>> migrations =
      pg::LoadEmbeddedMigrations();
  if (!migrations.ok()) return migrations.status();
  pg::Migrator migrator(conn->get(), *migrations, o.migrator);
  if (o.migrate_on_start) {
    absl::StatusOr<int> applied = migrator.Up();
    if (!applied.ok()) return applied.status();
    if (*applied > 0) {
      Log(LogLevel::kInfo, "applied migrations",
          {{"count", std::to_string(*applied)}});
    }
  }
  absl::StatusOr<pg::MigrationState> state = migrator.Status();
  if (!state.ok()) return state.status();
  if (!state->mode || !state->pending.empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the database schema is not up to date (",
        state->pending.size(),
        " migrations pending); run `telemetryctl migrate apply` first"));
  }
  return *state->mode;
}

}  // namespace

absl::StatusOr<std::unique_ptr<IngestServer>> IngestServer::Start(
    IngestServerOptions options) {
  std::unique_ptr<IngestServer> s(new IngestServer());
  s->options_ = std::move(options);
  const IngestServerOptions& o = s->options_;

  absl::StatusOr<pg::StorageMode> mode = PrepareSchema(o);
  if (!mode.ok()) return mode.status();
  s->mode_ = *mode;

  s->registry_ = std::make_shared<prometheus::Registry>();
  s->metrics_ = std::make_unique<IngestMetrics>(*s->registry_);
  if (!o.metrics_address.empty()) {
    try {
      s->exposer_ = std::make_unique<prometheus::Exposer>(o.metrics_address);
    } catch (const std::exception& e) {
      return absl::UnavailableError(absl::StrCat(
          "cannot serve metrics on ", o.metrics_address, ": ", e.what()));
    }
    s->exposer_->RegisterCollectable(s->registry_);
    std::vector<int> ports = s->exposer_->GetListeningPorts();
    s->metrics_port_ = ports.empty() ? 0 : ports.front();
  }

  if (o.dedupe && !o.redis_url.empty()) {
    absl::StatusOr<RedisDedupeOptions> redis = ParseRedisUrl(o.redis_url);
    if (!redis.ok()) return redis.status();
    s->dedupe_ = std::make_unique<RedisDedupeStore>(*redis);
  }

  s->caches_ = std::make_unique<pg::WriterCaches>();
  pg::CopyWriterOptions writer_options;
  writer_options.conninfo = o.database_url;
  writer_options.mode = s->mode_;
  writer_options.statement_timeout = o.statement_timeout;
  {
    // Partitions for today and the coming days exist before the first write.
    pg::CopyWriter writer(writer_options, s->caches_.get(), s->metrics_.get());
    absl::Time now = absl::Now();
    absl::Status ps = writer.EnsurePartitions(
        now - absl::Hours(24),
        now + absl::Hours(24) * o.partition_premake_days);
    if (!ps.ok()) return ps;
  }
  pg::WriterCaches* caches = s->caches_.get();
  IngestMetrics* metrics = s->metrics_.get();
  s->pipeline_ = std::make_unique<IngestPipeline>(
      o.pipeline, s->dedupe_.get(),
      [writer_options, caches, metrics]() -> std::unique_ptr<TelemetrySink> {
        return std::make_unique<pg::CopyWriter>(writer_options, caches,
                                                metrics);
      },
      metrics);
  if (o.require_device_auth) {
    s->credentials_ = std::make_unique<CredentialStore>(
        DatabaseCredentialSource(o.database_url, CredentialTable::kDevices), o.credential_refresh);
    s->credentials_->StartBackgroundRefresh();
  }
  IngestServiceOptions service_options = o.service;
  service_options.max_message_bytes = o.max_message_bytes;
  s->service_ = std::make_unique<IngestServiceImpl>(service_options, s->pipeline_.get(), metrics,
                                                    s->credentials_.get());

  auto credentials = MakeServerCredentials(o.transport);
  if (!credentials.ok()) {
    s->pipeline_->Shutdown();
    return credentials.status();
  }
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  builder.AddListeningPort(o.listen_address, *credentials, &s->port_);
  builder.RegisterService(s->service_.get());
  // gRPC itself refuses a message over its receive limit with
  // RESOURCE_EXHAUSTED (which our API documents as "resend the same batch")
  // and ends the whole stream. So the transport takes up to twice the
  // documented limit and the service refuses what is over the limit as
  // INVALID_ARGUMENT, that message alone; only beyond twice the limit does
  // gRPC's own refusal apply.
  builder.SetMaxReceiveMessageSize(o.max_message_bytes > (1 << 30) ? o.max_message_bytes
                                                                   : 2 * o.max_message_bytes);
  if (o.max_connection_age > absl::ZeroDuration()) {
    builder.AddChannelArgument(GRPC_ARG_MAX_CONNECTION_AGE_MS,
                               static_cast<int>(absl::ToInt64Milliseconds(o.max_connection_age)));
    builder.AddChannelArgument(
        GRPC_ARG_MAX_CONNECTION_AGE_GRACE_MS,
        static_cast<int>(absl::ToInt64Milliseconds(o.max_connection_age_grace)));
  }
  if (o.keepalive_time > absl::ZeroDuration()) {
    builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS,
                               static_cast<int>(absl::ToInt64Milliseconds(o.keepalive_time)));
    builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 20'000);
    builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  }
  s->server_ = builder.BuildAndStart();
  if (!s->server_ || s->port_ == 0) {
    s->pipeline_->Shutdown();
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", o.listen_address));
  }
  if (!o.health_address.empty()) {
    auto health = HealthServer::Start(o.health_address);
    if (!health.ok()) {
      s->server_->Shutdown();
      s->pipeline_->Shutdown();
      return health.status();
    }
    s->health_ = *std::move(health);
  }
  for (const std::string& name : {std::string(kServiceName), std::string()}) {
    s->server_->GetHealthCheckService()->SetServingStatus(name, true);
    if (s->health_) s->health_->SetServing(name, true);
  }
  // Readiness follows the database; liveness ("") stays SERVING.
  s->readiness_ = std::make_unique<DatabaseReadiness>(
      o.database_url, o.readiness_interval, [raw = s.get()](bool ready) {
        raw->server_->GetHealthCheckService()->SetServingStatus(kServiceName, ready);
        if (raw->health_) raw->health_->SetServing(kServiceName, ready);
      });
  if (s->mode_ == pg::StorageMode::kNative) {
    s->maintenance_ = std::thread([raw = s.get()] { raw->MaintenanceLoop(); });
  }
  Log(LogLevel::kInfo, "ingest gateway serving",
      {{"grpc_port", std::to_string(s->port_)},
       {"metrics_port", std::to_string(s->metrics_port_)},
       {"health_port", std::to_string(s->health_port())},
       {"storage_mode", std::string(pg::StorageModeName(s->mode_))},
       {"transport", std::string(TransportName(o.transport))},
       {"device_auth", o.require_device_auth ? "required" : "off"},
       {"database", pg::RedactConninfo(o.database_url)},
       {"dedupe", s->dedupe_ ? "redis" : "database"}});
  return s;
}

void IngestServer::MaintenanceLoop() {
  pg::CopyWriterOptions writer_options;
  writer_options.conninfo = options_.database_url;
  writer_options.mode = mode_;
  pg::CopyWriter writer(writer_options, caches_.get(), metrics_.get());
  while (!stop_maintenance_.WaitForNotificationWithTimeout(
      options_.maintenance_interval)) {
    absl::Time now = absl::Now();
    absl::Status st = writer.EnsurePartitions(
        now, now + absl::Hours(24) * options_.partition_premake_days);
    if (!st.ok()) {
      Log(LogLevel::kWarning, "partition maintenance failed",
          {{"error", std::string(st.message())}});
    }
  }
}

void IngestServer::Shutdown(absl::Duration grace) {
  if (shut_down_) return;
  shut_down_ = true;
  if (!server_) {  // Start() failed part-way
    if (pipeline_) pipeline_->Shutdown();
    return;
  }
  readiness_.reset();  // no status change after this
  for (const std::string& name : {std::string(kServiceName), std::string()}) {
    server_->GetHealthCheckService()->SetServingStatus(name, false);
    if (health_) health_->SetServing(name, false);
  }
  // Open streams stop reading and end as soon as what they accepted is
  // acknowledged; the grace then bounds only that (and unary calls).
  service_->DrainStreams();
  server_->Shutdown(absl::ToChronoTime(absl::Now() + grace));
  pipeline_->Shutdown();
  if (health_) health_->Shutdown();
  stop_maintenance_.Notify();
  if (maintenance_.joinable()) maintenance_.join();
  Log(LogLevel::kInfo, "ingest gateway stopped");
}

IngestServer::~IngestServer() { Shutdown(absl::ZeroDuration()); }

}  // namespace telemetry::ingest
