#include "server/ingest/ingest_metrics.h"

#include "server/common/latency_buckets.h"

namespace telemetry {
namespace {

prometheus::Family<prometheus::Counter>& Counters(prometheus::Registry& r,
                                                  const std::string& name,
                                                  const std::string& help) {
  return prometheus::BuildCounter().Name(name).Help(help).Register(r);
}

prometheus::Gauge& Gauge(prometheus::Registry& r, const std::string& name,
                         const std::string& help) {
  return prometheus::BuildGauge().Name(name).Help(help).Register(r).Add({});
}

prometheus::Family<prometheus::Histogram>& Histograms(
    prometheus::Registry& r, const std::string& name, const std::string& help) {
  return prometheus::BuildHistogram().Name(name).Help(help).Register(r);
}

}  // namespace

IngestMetrics::IngestMetrics(prometheus::Registry& r)
    : readings_accepted(
          Counters(r, "telemetry_ingest_readings_total",
                   "Readings received, by outcome")
              .Add({{"outcome", "accepted"}})),
      readings_duplicate(
          Counters(r, "telemetry_ingest_readings_total", "")
              .Add({{"outcome", "duplicate"}})),
      readings_rejected(Counters(r, "telemetry_ingest_readings_total", "")
                            .Add({{"outcome", "rejected"}})),
      batches_committed(Counters(r, "telemetry_ingest_batches_total",
                                 "Batches received, by outcome")
                            .Add({{"outcome", "committed"}})),
      batches_duplicate(Counters(r, "telemetry_ingest_batches_total", "")
                            .Add({{"outcome", "duplicate"}})),
      batches_invalid(Counters(r, "telemetry_ingest_batches_total", "")
                          .Add({{"outcome", "invalid"}})),
      batches_failed(Counters(r, "telemetry_ingest_batches_total", "")
                         .Add({{"outcome", "failed"}})),
      batches_overloaded(Counters(r, "telemetry_ingest_batches_total", "")
                             .Add({{"outcome", "overloaded"}})),
      batches_throttled(Counters(r, "telemetry_ingest_batches_total", "")
                            .Add({{"outcome", "throttled"}})),
      ack_latency_seconds(
          Histograms(r, "telemetry_ingest_ack_latency_seconds",
                     "Time from a batch's arrival to its acknowledgement")
              .Add({}, LatencyBuckets())),
      queue_wait_seconds(
          Histograms(r, "telemetry_ingest_queue_wait_seconds",
                     "Time a batch waited in the write queue for a flusher")
              .Add({}, LatencyBuckets())),
      claim_seconds(
          Histograms(r, "telemetry_ingest_dedupe_claim_seconds",
                     "Duration of one commit group's claim of its idempotency keys")
              .Add({}, LatencyBuckets())),
      copy_seconds_direct(
          Histograms(r, "telemetry_ingest_copy_duration_seconds",
                     "Duration of one commit group's write transaction")
              .Add({{"path", "copy"}}, LatencyBuckets())),
      copy_seconds_staging(
          Histograms(r, "telemetry_ingest_copy_duration_seconds", "")
              .Add({{"path", "staging"}}, LatencyBuckets())),
      group_rows(Histograms(r, "telemetry_ingest_group_rows",
                            "Rows written per commit group")
                     .Add({}, prometheus::Histogram::BucketBoundaries{
                                  10, 100, 1000, 5000, 10000, 25000, 50000,
                                  100000})),
      duplicate_fallbacks(
          Counters(r, "telemetry_ingest_duplicate_fallbacks_total",
                   "Commit groups whose COPY hit the primary key and were "
                   "rewritten through the staging table")
              .Add({})),
      queue_readings(Gauge(r, "telemetry_ingest_queue_readings",
                           "Readings accepted but not yet acknowledged")),
      queue_capacity_readings(
          Gauge(r, "telemetry_ingest_queue_capacity_readings",
                "Bound on telemetry_ingest_queue_readings")),
      queue_bytes(Gauge(r, "telemetry_ingest_queue_bytes",
                        "Memory held by the readings accepted but not yet acknowledged")),
      queue_capacity_bytes(Gauge(r, "telemetry_ingest_queue_capacity_bytes",
                                 "Bound on telemetry_ingest_queue_bytes")),
      active_streams(Gauge(r, "telemetry_ingest_active_streams",
                           "Open StreamReadings calls")),
      busy_writers(Gauge(r, "telemetry_ingest_busy_writers",
                         "Database writers inside a commit group's write (all of them "
                         "busy: the write path is saturated)")),
      redis_errors(Counters(r, "telemetry_redis_errors_total",
                            "Dedupe store operations that could not reach "
                            "Redis")
                       .Add({})),
      dedupe_db_fallback_batches(
          Counters(r, "telemetry_dedupe_db_fallback_batches_total",
                   "Batches deduplicated by the database because Redis was "
                   "unavailable or the key was in flight elsewhere")
              .Add({})),
      redis_up(Gauge(r, "telemetry_redis_up",
                     "1 when the last dedupe store operation reached Redis")),
      device_usage_reports_ok(
          Counters(r, "telemetry_ingest_device_usage_reports_total",
                   "Reports of per-device usage to the cluster's counters in Redis, by "
                   "outcome (failed: device rate limits are per gateway meanwhile)")
              .Add({{"outcome", "ok"}})),
      device_usage_reports_failed(
          Counters(r, "telemetry_ingest_device_usage_reports_total", "")
              .Add({{"outcome", "failed"}})),
      postgres_errors(Counters(r, "telemetry_postgres_errors_total",
                               "Failed PostgreSQL connects and statements")
                          .Add({})),
      auth_failures(Counters(r, "telemetry_auth_failures_total",
                             "Calls refused as unauthenticated, and batches refused for "
                             "sensors the device does not own")
                        .Add({})) {}

void IngestMetrics::OnCommitted(Path path, int64_t rows,
                                absl::Duration elapsed) {
  (path == Path::kCopy ? copy_seconds_direct : copy_seconds_staging)
      .Observe(absl::ToDoubleSeconds(elapsed));
  group_rows.Observe(static_cast<double>(rows));
}

}  // namespace telemetry
