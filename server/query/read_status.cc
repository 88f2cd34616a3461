#include "server/query/read_status.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "client/output_format.h"

namespace telemetry::query {
namespace {

absl::Time FromTimestamp(const google::protobuf::Timestamp& t) {
  return absl::FromUnixSeconds(t.seconds()) + absl::Nanoseconds(t.nanos());
}

std::string TimestampCell(const google::protobuf::Timestamp& t, bool set, absl::Time now) {
  return set ? TimeAndAge(FromTimestamp(t), now) : std::string("-");
}

StatusSection DependencySection(const ReadStatusInputs& in, absl::Time now) {
  StatusSection s{"Dependencies", {}, {}};
  s.fields.push_back(
      {"PostgreSQL",
       in.database_answers
           ? absl::StrCat("reachable (pools: ", in.reader_connections, " read-only, ",
                          in.writer_connections, " maintainer connections)")
           : std::string("unreachable: queries answer UNAVAILABLE"),
       in.database_answers ? Health::kGood : Health::kBad, "dep-postgres"});
  const LifecycleJobs::StatsSnapshot& st = in.stats;
  if (st.replica.has_value()) {
    std::string answered = "the primary";
    Health health = Health::kNeutral;
    if (st.replica->standby && st.replica->lag.has_value()) {
      answered = absl::StrCat("a standby, behind by at most ", HumanDuration(*st.replica->lag));
      health = *st.replica->lag > in.replica_lag_after ? Health::kBad : Health::kGood;
    } else if (st.replica->standby) {
      answered = "a standby that cannot tell its lag (not streaming)";
      health = Health::kBad;
    }
    s.fields.push_back({"queries answered by", answered, health, "replica-lag"});
  }
  s.fields.push_back({"figures below read", st.collected == absl::InfinitePast()
                                                ? std::string("not yet")
                                                : TimeAndAge(st.collected, now),
                      Health::kNeutral, "stats-collected"});
  if (!st.error.empty()) {
    s.fields.push_back({"last read failed",
                        absl::StrCat(st.error, " (the figures below are the last read)"),
                        Health::kBad, "stats-error"});
  }
  return s;
}

StatusSection JobSection(const ReadStatusInputs& in, absl::Time now) {
  StatusSection s{"Jobs", {}, {}};
  StatusTable t;
  t.id = "jobs";
  t.columns = {"job", "schedule", "last run", "took", "result", "successes", "failures",
               "next run", "last error"};
  if (!in.stats.jobs.has_value()) {
    t.empty_text = "Not read yet.";
  } else {
    t.empty_text = "No jobs.";
    for (const telemetry::v1::Job& j : *in.stats.jobs) {
      const bool ran = j.has_last_run_started();
      t.rows.push_back({j.name(), j.schedule(), TimestampCell(j.last_run_started(), ran, now),
                        ran ? HumanDuration(absl::Seconds(j.last_run_seconds())) : "-",
                        j.last_run_status().empty() ? "-" : j.last_run_status(),
                        GroupedInt(j.total_successes()), GroupedInt(j.total_failures()),
                        TimestampCell(j.next_start(), j.has_next_start(), now),
                        j.last_error().empty() ? "-" : j.last_error()});
    }
  }
  s.tables.push_back(std::move(t));
  if (in.stats.jobs.has_value()) {
    int failing = 0;
    for (const auto& j : *in.stats.jobs) failing += j.last_run_status() == "failure" ? 1 : 0;
    s.fields.push_back({"failing", failing == 0 ? "none" : absl::StrCat(failing, " job(s)"),
                        failing == 0 ? Health::kGood : Health::kBad, "jobs-failing"});
  }
  return s;
}

StatusSection AggregateSection(const ReadStatusInputs& in, absl::Time now) {
  StatusSection s{"Hourly aggregate", {}, {}};
  if (!in.stats.watermark_read) {
    s.fields.push_back({"materialised up to", "not read yet", Health::kNeutral, "watermark"});
  } else if (!in.stats.watermark.has_value()) {
    s.fields.push_back({"materialised up to", "nothing materialised yet", Health::kNeutral,
                        "watermark"});
  } else {
    const absl::Duration lag = std::max(now - *in.stats.watermark, absl::ZeroDuration());
    s.fields.push_back({"materialised up to", TimeAndAge(*in.stats.watermark, now),
                        lag > in.stale_after ? Health::kBad : Health::kGood, "watermark"});
    s.fields.push_back({"behind now by", HumanDuration(lag),
                        lag > in.stale_after ? Health::kBad : Health::kNeutral, "staleness"});
  }
  return s;
}

StatusSection StorageSection(const ReadStatusInputs& in, absl::Time now) {
  StatusSection s{in.mode == pg::StorageMode::kTimescale ? "Chunks" : "Partitions", {}, {}};
  StatusTable t;
  t.id = "chunks";
  t.columns = {"name", "from", "to", "size", "estimated rows", "compressed"};
  if (!in.stats.chunks.has_value()) {
    t.empty_text = "Not read yet.";
    s.tables.push_back(std::move(t));
    return s;
  }
  const telemetry::v1::ListChunksResponse& c = *in.stats.chunks;
  int64_t compressed = 0, rows = 0;
  for (const auto& chunk : c.chunks()) {
    compressed += chunk.compressed() ? 1 : 0;
    rows += chunk.estimated_rows();
  }
  s.fields.push_back({"count", GroupedInt(c.chunks_size()), Health::kNeutral, "chunk-count"});
  s.fields.push_back({"compressed", GroupedInt(compressed), Health::kNeutral, "chunks-compressed"});
  s.fields.push_back({"size", client::HumanBytes(static_cast<uint64_t>(c.total_bytes())),
                      Health::kNeutral, "storage-bytes"});
  s.fields.push_back({"estimated rows", GroupedInt(rows), Health::kNeutral, "storage-rows"});
  s.fields.push_back({"compression ratio",
                      compressed > 0 && c.compression_ratio() > 0
                          ? absl::StrFormat("%.1f%% of the uncompressed size (%.1fx smaller)",
                                            100 * c.compression_ratio(),
                                            1 / c.compression_ratio())
                          : std::string("nothing compressed"),
                      Health::kNeutral, "compression-ratio"});
  t.empty_text = "No data yet.";
  // Newest first: the ones being written and the next to compress.
  const int first = std::max(0, c.chunks_size() - static_cast<int>(in.max_chunks_shown));
  for (int i = c.chunks_size() - 1; i >= first; --i) {
    const auto& chunk = c.chunks(i);
    t.rows.push_back({chunk.name(), TimestampCell(chunk.range_start(), true, now),
                      TimestampCell(chunk.range_end(), true, now),
                      client::HumanBytes(static_cast<uint64_t>(chunk.total_bytes())),
                      GroupedInt(chunk.estimated_rows()), chunk.compressed() ? "yes" : "no"});
  }
  if (first > 0) {
    t.footnote = absl::StrCat(GroupedInt(first), " older not shown (telemetryctl chunks lists all)");
  }
  s.tables.push_back(std::move(t));
  return s;
}

}  // namespace

StatusReport ReadServiceStatus(const ReadStatusInputs& in, absl::Time now) {
  StatusReport r;
  r.service = "read-service";
  r.sections.push_back(ServiceSection({in.started, std::string(pg::StorageModeName(in.mode)),
                                       true, in.grpc_port, in.transport, "API authentication",
                                       in.api_auth},
                                      now));
  r.sections.push_back(DependencySection(in, now));
  r.sections.push_back(JobSection(in, now));
  r.sections.push_back(AggregateSection(in, now));
  r.sections.push_back(StorageSection(in, now));
  return r;
}

}  // namespace telemetry::query
