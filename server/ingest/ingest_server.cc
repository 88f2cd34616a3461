#include "server/ingest/ingest_server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <prometheus/registry.h>

#include <algorithm>
#include <exception>
#include <functional>
#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "server/common/log.h"
#include "server/common/metrics_http_server.h"
#include "server/common/process_metrics.h"
#include "server/ingest/gateway_status.h"
#include "storage/pg/connection.h"
#include "storage/pg/copy_writer.h"
#include "storage/pg/schema_mode.h"
#include "storage/redis/redis_dedupe_store.h"
#include "storage/redis/redis_usage_counters.h"

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

// A CopyWriter made on the first write, once the storage mode is known: a
// gateway that started while its database was away has its flushers
// before it knows what it writes into.
class DeferredCopyWriter final : public TelemetrySink {
 public:
  DeferredCopyWriter(pg::CopyWriterOptions options, pg::WriterCaches* caches,
                     IngestMetrics* metrics, std::function<std::optional<pg::StorageMode>()> mode)
      : options_(std::move(options)), caches_(caches), metrics_(metrics), mode_(std::move(mode)) {}

  absl::StatusOr<std::vector<BatchResult>> WriteBatches(
      absl::Span<const std::vector<ReadingRow>* const> batches,
      bool may_contain_duplicates) override {
    if (writer_ == nullptr) {
      std::optional<pg::StorageMode> mode = mode_();
      if (!mode) {
        absl::Status away = absl::UnavailableError(
            "the gateway has not reached its database yet; retry later");
        away.SetPayload(pg::kSqlStatePayload, absl::Cord("08001"));  // public wording
        return away;
      }
      options_.mode = *mode;
      writer_ = std::make_unique<pg::CopyWriter>(options_, caches_, metrics_);
    }
    return writer_->WriteBatches(batches, may_contain_duplicates);
  }

 private:
  pg::CopyWriterOptions options_;
  pg::WriterCaches* const caches_;
  IngestMetrics* const metrics_;
  const std::function<std::optional<pg::StorageMode>()> mode_;
  std::unique_ptr<pg::CopyWriter> writer_;
};

// The Redis to use (directly or through Sentinel); nullopt: none configured.
absl::StatusOr<std::optional<RedisConnectionOptions>> RedisFromOptions(
    const IngestServerOptions& o) {
  if (!o.redis_master_name.empty() && o.redis_sentinels.empty()) {
    return absl::InvalidArgumentError(
        "a Redis master name is used only with sentinels (--redis_sentinels)");
  }
  if (o.redis_url.empty() && o.redis_sentinels.empty()) return std::nullopt;
  absl::StatusOr<RedisConnectionOptions> redis =
      o.redis_url.empty() ? RedisConnectionOptions{} : ParseRedisUrl(o.redis_url);
  if (!redis.ok()) return redis.status();
  if (!o.redis_sentinels.empty()) {
    absl::StatusOr<std::vector<RedisAddress>> sentinels = ParseSentinelList(o.redis_sentinels);
    if (!sentinels.ok()) return sentinels.status();
    if (o.redis_master_name.empty()) {
      return absl::InvalidArgumentError("Redis sentinels need a master name (--redis_master_name)");
    }
    redis->sentinels = *std::move(sentinels);
    redis->master_name = o.redis_master_name;
  }
  return *std::move(redis);
}

}  // namespace

std::optional<pg::StorageMode> IngestServer::storage_mode() const {
  MutexLock lock(&storage_mu_);
  return mode_;
}

absl::Status IngestServer::StorageReady(pg::StorageMode mode) {
  if (pg::SchemaMode::For(mode).MakesDayPartitions()) {
    // Partitions for today and the coming days exist before the first write.
    pg::CopyWriterOptions writer_options;
    writer_options.conninfo = options_.database_url;
    writer_options.mode = mode;
    writer_options.statement_timeout = options_.statement_timeout;
    pg::CopyWriter writer(writer_options, caches_.get(), metrics_.get());
    const absl::Time now = absl::Now();
    absl::Status ps = writer.EnsurePartitions(
        now - absl::Hours(24), now + absl::Hours(24) * options_.partition_premake_days);
    if (!ps.ok()) return ps;
    maintenance_ = std::thread([this, mode] { MaintenanceLoop(mode); });
  }
  {
    MutexLock lock(&storage_mu_);
    mode_ = mode;
  }
  PublishReadiness();
  return absl::OkStatus();
}

void IngestServer::StarterLoop() {
  static LogRateLimiter limit(1, absl::Seconds(30));
  while (!stop_maintenance_.WaitForNotificationWithTimeout(absl::Seconds(2))) {
    absl::StatusOr<pg::StorageMode> mode = PrepareSchema(options_);
    absl::Status st = mode.ok() ? StorageReady(*mode) : mode.status();
    if (st.ok()) {
      Log(LogLevel::kInfo, "database reached: serving",
          {{"storage_mode", std::string(pg::StorageModeName(*mode))}});
      return;
    }
    int64_t left_out = 0;
    if (limit.Allow(&left_out)) {
      Log(LogLevel::kWarning, "database not ready yet; not serving",
          {{"error", std::string(st.message())},
           {"similar_lines_left_out", absl::StrCat(left_out)}});
    }
  }
}

void IngestServer::PublishReadiness() {
  // Computed and published under one lock: the probe and starter threads
  // publish concurrently, and an older answer must not land last.
  // (SetServingStatus does not call back into us.)
  MutexLock lock(&storage_mu_);
  if (shut_down_) return;  // Shutdown has set NOT_SERVING for good
  const bool ready = mode_.has_value() && database_answers_;
  if (server_) server_->GetHealthCheckService()->SetServingStatus(kServiceName, ready);
  if (health_) health_->SetServing(kServiceName, ready);
}

absl::StatusOr<std::unique_ptr<IngestServer>> IngestServer::Start(
    IngestServerOptions options) {
  std::unique_ptr<IngestServer> s(new IngestServer());
  s->options_ = std::move(options);
  const IngestServerOptions& o = s->options_;

  // The database away at start (after a crash, both may restart together)
  // is no reason to refuse the port: the gateway serves, not ready, and
  // answers UNAVAILABLE until it reaches the database. A schema that is not
  // migrated is a configuration error, reported at once.
  absl::StatusOr<pg::StorageMode> mode = PrepareSchema(o);
  if (!mode.ok() && mode.status().code() != absl::StatusCode::kUnavailable) {
    return mode.status();
  }

  s->registry_ = std::make_shared<prometheus::Registry>();
  RegisterBuildInfo(*s->registry_, "ingest-gateway");
  s->metrics_ = std::make_unique<IngestMetrics>(*s->registry_);
  absl::StatusOr<std::optional<RedisConnectionOptions>> redis = RedisFromOptions(o);
  if (!redis.ok()) return redis.status();
  if (o.dedupe && redis->has_value()) {
    s->dedupe_ = std::make_unique<RedisDedupeStore>(RedisDedupeOptions(**redis));
  }
  IngestServiceOptions service_options = o.service;
  service_options.max_message_bytes = o.max_message_bytes;
  const bool cluster_limits =
      o.device_limit_scope == IngestServerOptions::DeviceLimitScope::kCluster &&
      redis->has_value() && o.require_device_auth &&
      service_options.device_limits.readings_per_second > 0;
  service_options.device_limits.report_usage = cluster_limits;

  s->caches_ = std::make_unique<pg::WriterCaches>();
  pg::CopyWriterOptions writer_options;
  writer_options.conninfo = o.database_url;
  writer_options.statement_timeout = o.statement_timeout;
  pg::WriterCaches* caches = s->caches_.get();
  IngestMetrics* metrics = s->metrics_.get();
  IngestServer* raw = s.get();
  s->pipeline_ = std::make_unique<IngestPipeline>(
      o.pipeline, s->dedupe_.get(),
      [writer_options, caches, metrics, raw]() -> std::unique_ptr<TelemetrySink> {
        return std::make_unique<DeferredCopyWriter>(writer_options, caches, metrics,
                                                    [raw] { return raw->storage_mode(); });
      },
      metrics);
  if (mode.ok()) {
    if (absl::Status ready = s->StorageReady(*mode); !ready.ok()) {
      s->pipeline_->Shutdown();
      return ready;
    }
  }
  if (o.require_device_auth) {
    s->credentials_ = std::make_unique<CredentialStore>(
        DatabaseCredentialSource(o.database_url, CredentialTable::kDevices), o.credential_refresh);
    s->credentials_->StartBackgroundRefresh();
  }
  s->service_ = std::make_unique<IngestServiceImpl>(service_options, s->pipeline_.get(), metrics,
                                                    s->credentials_.get());
  if (cluster_limits) {
    RedisUsageOptions usage_options(**redis);
    // A counter must outlive many intervals, or reports would only ever
    // find it expired and take new baselines.
    usage_options.ttl = std::max(usage_options.ttl, 10 * o.device_usage_interval);
    s->usage_counters_ = std::make_unique<RedisUsageCounters>(usage_options);
    s->usage_sync_ = std::make_unique<DeviceUsageSync>(&s->service_->admission().limiter(),
                                                       s->usage_counters_.get(),
                                                       o.device_usage_interval, metrics);
    s->usage_sync_->Start();
  }

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
  // Liveness ("") is SERVING from now on; readiness (the service's name)
  // once the database answers and its schema is known.
  s->server_->GetHealthCheckService()->SetServingStatus("", true);
  if (s->health_) s->health_->SetServing("", true);
  {
    MutexLock lock(&s->storage_mu_);
    s->database_answers_ = mode.ok();
  }
  s->PublishReadiness();
  s->readiness_ = std::make_unique<DatabaseReadiness>(
      o.database_url, o.readiness_interval, [raw](bool answers) {
        {
          MutexLock lock(&raw->storage_mu_);
          raw->database_answers_ = answers;
        }
        raw->PublishReadiness();
      });
  if (!mode.ok()) {
    Log(LogLevel::kWarning, "database not reachable at start; serving, not ready, until it is",
        {{"error", std::string(mode.status().message())}});
    s->starter_ = std::thread([raw] { raw->StarterLoop(); });
  }
  // Last: the status page reads every part above.
  if (!o.metrics_address.empty()) {
    s->process_metrics_ = MakeProcessCollector();
    MetricsHttpOptions http;
    http.address = o.metrics_address;
    http.collectables = {s->registry_, s->process_metrics_};
    http.pages.push_back({"/status", "text/html; charset=utf-8", [raw] {
                            return RenderStatusHtml(raw->Status(), absl::Now(),
                                                    absl::Seconds(5));
                          }});
    auto served = MetricsHttpServer::Start(std::move(http));
    // The destructor's Shutdown drains what was accepted meanwhile.
    if (!served.ok()) return served.status();
    s->http_ = *std::move(served);
    s->metrics_port_ = s->http_->port();
  }
  Log(LogLevel::kInfo, "ingest gateway serving",
      {{"grpc_port", std::to_string(s->port_)},
       {"metrics_port", std::to_string(s->metrics_port_)},
       {"health_port", std::to_string(s->health_port())},
       {"storage_mode",
        mode.ok() ? std::string(pg::StorageModeName(*mode)) : std::string("not known yet")},
       {"transport", std::string(TransportName(o.transport))},
       {"device_auth", o.require_device_auth ? "required" : "off"},
       {"device_rate_limit", o.service.device_limits.readings_per_second <= 0 ? "none"
                             : s->usage_sync_                              ? "cluster-wide"
                                                                           : "per gateway"},
       {"database", pg::RedactConninfo(o.database_url)},
       {"dedupe", !s->dedupe_                   ? "database"
                  : o.redis_sentinels.empty() ? "redis"
                                              : "redis via sentinel"}});
  return s;
}

void IngestServer::MaintenanceLoop(pg::StorageMode mode) {
  pg::CopyWriterOptions writer_options;
  writer_options.conninfo = options_.database_url;
  writer_options.mode = mode;
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
  {
    MutexLock lock(&storage_mu_);
    if (shut_down_) return;
    shut_down_ = true;
  }
  if (!server_) {  // Start() failed part-way
    if (usage_sync_) usage_sync_->Stop();
    stop_maintenance_.Notify();
    if (maintenance_.joinable()) maintenance_.join();
    if (pipeline_) pipeline_->Shutdown();
    return;
  }
  // NOT_SERVING first (shut_down_ keeps the probe and starter threads from
  // publishing anything else), then the drain. The threads that may sit in
  // a database connect are joined last, so an unreachable database cannot
  // delay the drain.
  {
    MutexLock lock(&storage_mu_);
    for (const std::string& name : {std::string(kServiceName), std::string()}) {
      server_->GetHealthCheckService()->SetServingStatus(name, false);
      if (health_) health_->SetServing(name, false);
    }
  }
  stop_maintenance_.Notify();
  // Open streams stop reading and end as soon as what they accepted is
  // acknowledged; the grace then bounds only that (and unary calls).
  service_->DrainStreams();
  // Calls still waiting for their authentication's load end now.
  if (credentials_) credentials_->Stop();
  server_->Shutdown(absl::ToChronoTime(absl::Now() + grace));
  // After the drain: a report in flight (a Redis timeout) must not delay
  // NOT_SERVING, and the drain keeps cluster-wide accounting.
  if (usage_sync_) usage_sync_->Stop();
  pipeline_->Shutdown();
  readiness_.reset();
  if (starter_.joinable()) starter_.join();  // before maintenance_: it may start it
  if (health_) health_->Shutdown();
  if (maintenance_.joinable()) maintenance_.join();
  Log(LogLevel::kInfo, "ingest gateway stopped");
}

StatusReport IngestServer::Status() const {
  GatewayStatusInputs in;
  in.started = started_;
  {
    MutexLock lock(&storage_mu_);
    in.mode = mode_;
    in.database_answers = database_answers_;
  }
  in.redis_configured = dedupe_ != nullptr;
  in.redis_up = pipeline_->dedupe_up();
  if (!options_.redis_sentinels.empty()) in.redis_master_name = options_.redis_master_name;
  in.transport = std::string(TransportName(options_.transport));
  in.device_auth = options_.require_device_auth;
  in.device_rate = options_.service.device_limits.readings_per_second;
  in.device_rate_cluster_wide = usage_sync_ != nullptr;
  if (usage_sync_) in.usage_reports_ok = usage_sync_->last_report_ok();
  in.grpc_port = port_;
  in.writers = options_.pipeline.flushers;
  in.metrics = metrics_.get();
  in.activity = &service_->admission().activity();
  return GatewayStatus(in, absl::Now());
}

IngestServer::~IngestServer() {
  Shutdown(absl::ZeroDuration());
  http_.reset();  // before the parts its pages read
}

}  // namespace telemetry::ingest
