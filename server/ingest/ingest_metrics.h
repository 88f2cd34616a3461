// Every Prometheus metric of the ingest gateway, declared in one place and
// registered once. Components receive a pointer to this struct; a null
// pointer means "no metrics" (unit tests).
#ifndef TELEMETRY_SERVER_INGEST_INGEST_METRICS_H_
#define TELEMETRY_SERVER_INGEST_INGEST_METRICS_H_

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include "storage/pg/copy_writer.h"

namespace telemetry {

class IngestMetrics : public pg::WriteObserver {
 public:
  explicit IngestMetrics(prometheus::Registry& registry);

  // Readings by outcome.
  prometheus::Counter& readings_accepted;
  prometheus::Counter& readings_duplicate;
  prometheus::Counter& readings_rejected;
  // Batches by outcome.
  prometheus::Counter& batches_committed;
  prometheus::Counter& batches_duplicate;  // answered from the dedupe store
  prometheus::Counter& batches_invalid;    // refused as a whole
  prometheus::Counter& batches_failed;     // database error, retryable
  prometheus::Counter& batches_overloaded; // refused: queue full
  prometheus::Counter& batches_throttled;  // refused: device over its rate
  // Time from a batch's arrival to its ack, and the stages of it: waiting
  // in the queue for a flusher, and the group's claim of its keys in the
  // dedupe store (then the write, copy_seconds_*, then the ack).
  prometheus::Histogram& ack_latency_seconds;
  prometheus::Histogram& queue_wait_seconds;
  prometheus::Histogram& claim_seconds;
  // COPY transaction time by path, and rows per commit group.
  prometheus::Histogram& copy_seconds_direct;
  prometheus::Histogram& copy_seconds_staging;
  prometheus::Histogram& group_rows;
  prometheus::Counter& duplicate_fallbacks;  // COPY hit the primary key
  // Readings queued or being written (bounded by the queue capacity).
  prometheus::Gauge& queue_readings;
  prometheus::Gauge& queue_capacity_readings;
  prometheus::Gauge& queue_bytes;  // memory those readings hold
  prometheus::Gauge& queue_capacity_bytes;
  prometheus::Gauge& active_streams;
  // Writers (flushers) in a transaction; all of them busy = saturated.
  prometheus::Gauge& busy_writers;
  // Dedupe store (Redis) health.
  prometheus::Counter& redis_errors;
  prometheus::Counter& dedupe_db_fallback_batches;
  prometheus::Gauge& redis_up;
  // Reports of device usage to the cluster's counters (Redis), by outcome:
  // failing reports mean each gateway holds devices to the rate alone.
  prometheus::Counter& device_usage_reports_ok;
  prometheus::Counter& device_usage_reports_failed;
  // PostgreSQL errors seen by writers.
  prometheus::Counter& postgres_errors;
  // Calls refused as unauthenticated and batches refused as not permitted.
  prometheus::Counter& auth_failures;

  // pg::WriteObserver
  void OnCommitted(Path path, int64_t rows, absl::Duration elapsed) override;
  void OnDuplicateFallback() override { duplicate_fallbacks.Increment(); }
  void OnDatabaseError(const absl::Status&) override {
    postgres_errors.Increment();
  }
};

}  // namespace telemetry

#endif  // TELEMETRY_SERVER_INGEST_INGEST_METRICS_H_
