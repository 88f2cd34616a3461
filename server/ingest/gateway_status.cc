#include "server/ingest/gateway_status.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "client/output_format.h"

namespace telemetry::ingest {
namespace {

int64_t Count(const prometheus::Counter& c) { return static_cast<int64_t>(c.Value()); }
int64_t Level(const prometheus::Gauge& g) { return static_cast<int64_t>(g.Value()); }

std::string Rate(double per_second) { return absl::StrFormat("%.1f readings/s", per_second); }

// "1,234 of 200,000 (0.6%)"
std::string OfCapacity(std::string used, std::string capacity, double fraction) {
  return absl::StrFormat("%s of %s (%.1f%%)", used, capacity, 100 * fraction);
}

Health FillHealth(double fraction) {
  if (fraction >= 0.9) return Health::kBad;
  if (fraction >= 0.5) return Health::kWarning;
  return Health::kGood;
}

StatusField DeviceRateField(const GatewayStatusInputs& in) {
  if (in.device_rate <= 0 || !in.device_auth) {
    return {"device rate limit", in.device_auth ? "none" : "none (device authentication is off)",
            Health::kNeutral, "device-rate"};
  }
  const std::string rate = absl::StrCat(GroupedInt(static_cast<int64_t>(in.device_rate)),
                                        " readings/s per device");
  if (!in.device_rate_cluster_wide) {
    return {"device rate limit", absl::StrCat(rate, " at each gateway"), Health::kNeutral,
            "device-rate"};
  }
  if (in.usage_reports_ok.has_value() && !*in.usage_reports_ok) {
    return {"device rate limit",
            absl::StrCat(rate, " at each gateway for now: usage cannot be reported to Redis"),
            Health::kWarning, "device-rate"};
  }
  return {"device rate limit", absl::StrCat(rate, " across the cluster (usage shared in Redis)"),
          Health::kNeutral, "device-rate"};
}

StatusSection DependencySection(const GatewayStatusInputs& in) {
  StatusSection s{"Dependencies", {}, {}};
  s.fields.push_back({"PostgreSQL",
                      in.database_answers ? "reachable" : "unreachable: batches are refused",
                      in.database_answers ? Health::kGood : Health::kBad, "dep-postgres"});
  std::string redis;
  Health redis_health = Health::kNeutral;
  if (!in.redis_configured) {
    redis = "not configured: retries are deduplicated by the database";
  } else if (!in.redis_up.has_value()) {
    redis = "configured; no batch yet";
  } else if (*in.redis_up) {
    redis = "reachable";
    redis_health = Health::kGood;
  } else {
    redis = "unreachable: deduplicating in the database until it returns";
    redis_health = Health::kWarning;
  }
  if (in.redis_configured && !in.redis_master_name.empty()) {
    absl::StrAppend(&redis, " (the primary of '", in.redis_master_name, "', through Sentinel)");
  }
  s.fields.push_back({"Redis (dedupe)", redis, redis_health, "dep-redis"});
  s.fields.push_back(DeviceRateField(in));
  return s;
}

StatusSection IngestSection(const GatewayStatusInputs& in, absl::Time now) {
  StatusSection s{"Ingest", {}, {}};
  const IngestMetrics& m = *in.metrics;
  s.fields.push_back({"stored per second (1-minute average)",
                      Rate(in.activity->TotalStoredPerSecond(now)), Health::kNeutral,
                      "ingest-rate"});
  s.fields.push_back(
      {"readings stored", GroupedInt(Count(m.readings_accepted)), Health::kNeutral,
       "readings-stored"});
  s.fields.push_back({"readings already stored (resends)",
                      GroupedInt(Count(m.readings_duplicate)), Health::kNeutral,
                      "readings-duplicate"});
  s.fields.push_back({"readings rejected", GroupedInt(Count(m.readings_rejected)),
                      m.readings_rejected.Value() > 0 ? Health::kWarning : Health::kNeutral,
                      "readings-rejected"});
  s.fields.push_back(
      {"batches committed / resends", absl::StrCat(GroupedInt(Count(m.batches_committed)), " / ",
                                                  GroupedInt(Count(m.batches_duplicate))),
       Health::kNeutral, "batches"});
  const int64_t refused = Count(m.batches_invalid) + Count(m.batches_failed) +
                          Count(m.batches_overloaded) + Count(m.batches_throttled);
  s.fields.push_back(
      {"batches refused", absl::StrFormat("%s (invalid %s, database %s, queue full %s, throttled %s)",
                                          GroupedInt(refused), GroupedInt(Count(m.batches_invalid)),
                                          GroupedInt(Count(m.batches_failed)),
                                          GroupedInt(Count(m.batches_overloaded)),
                                          GroupedInt(Count(m.batches_throttled))),
       refused > 0 ? Health::kWarning : Health::kNeutral, "batches-refused"});
  const double queued = m.queue_readings.Value(), capacity = m.queue_capacity_readings.Value();
  const double fill = capacity > 0 ? queued / capacity : 0;
  s.fields.push_back({"write queue",
                      OfCapacity(GroupedInt(Level(m.queue_readings)),
                                 absl::StrCat(GroupedInt(Level(m.queue_capacity_readings)),
                                              " readings"),
                                 fill),
                      FillHealth(fill), "queue-readings"});
  const double bytes = m.queue_bytes.Value(), byte_capacity = m.queue_capacity_bytes.Value();
  const double byte_fill = byte_capacity > 0 ? bytes / byte_capacity : 0;
  s.fields.push_back({"write queue memory",
                      OfCapacity(client::HumanBytes(static_cast<uint64_t>(bytes)),
                                 client::HumanBytes(static_cast<uint64_t>(byte_capacity)),
                                 byte_fill),
                      FillHealth(byte_fill), "queue-bytes"});
  const double busy = m.busy_writers.Value();
  s.fields.push_back({"writers in a transaction", absl::StrCat(Level(m.busy_writers), " of ", in.writers),
                      in.writers > 0 && busy >= in.writers ? Health::kWarning : Health::kNeutral,
                      "busy-writers"});
  s.fields.push_back(
      {"open streams", GroupedInt(Level(m.active_streams)), Health::kNeutral, "streams"});
  return s;
}

StatusSection DeviceSection(const GatewayStatusInputs& in, absl::Time now) {
  StatusSection s{"Devices", {}, {}};
  StatusTable t;
  t.id = "devices";
  t.columns = {"device", "last seen", "stored/s (1 min)", "stored", "resent", "rejected",
               "batches refused"};
  t.empty_text = "No batch since the gateway started.";
  const std::vector<DeviceActivityRow> rows = in.activity->MostRecent(in.max_devices_shown, now);
  for (const DeviceActivityRow& r : rows) {
    t.rows.push_back({r.device, TimeAndAge(r.last_seen, now),
                      absl::StrFormat("%.1f", r.stored_per_second), GroupedInt(r.stored),
                      GroupedInt(r.duplicates), GroupedInt(r.rejected),
                      GroupedInt(r.refused_batches)});
  }
  const size_t tracked = in.activity->tracked();
  if (tracked > rows.size()) {
    t.footnote = absl::StrCat(GroupedInt(static_cast<int64_t>(tracked - rows.size())),
                              " more not shown (the most recently heard from come first)");
  }
  s.tables.push_back(std::move(t));
  return s;
}

}  // namespace

StatusReport GatewayStatus(const GatewayStatusInputs& in, absl::Time now) {
  StatusReport r;
  r.service = "ingest-gateway";
  r.sections.push_back(ServiceSection(
      {in.started,
       in.mode ? std::string(pg::StorageModeName(*in.mode))
               : std::string("not known yet (database not reached)"),
       in.mode.has_value(), in.grpc_port, in.transport, "device authentication", in.device_auth},
      now));
  r.sections.push_back(DependencySection(in));
  r.sections.push_back(IngestSection(in, now));
  r.sections.push_back(DeviceSection(in, now));
  return r;
}

}  // namespace telemetry::ingest
