// ingest_bench: the same rows loaded through the gateway and straight into
// PostgreSQL, side by side in one run, on private loopback servers it starts
// and stops itself.
//
//   (a) gateway, Redis deduplication on     (streams of BatchStream)
//       a2: Redis down (connections refused); a3: Redis stalled (SIGSTOP:
//       accepts connections, never answers)
//   (b) gateway, deduplication off          (database key only)
//   (c) direct libpq binary COPY, 1 connection and N parallel connections
//   (d) psql \copy of the same rows as CSV
//
// Each variant loads into an empty sensor_readings (TRUNCATE between runs,
// partitions created beforehand, same indexes). Every variant runs --rounds
// times, interleaved; medians and ratios are printed (the machine is shared
// and noisy, so single runs mean little).
#include <grpcpp/grpcpp.h>

#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <functional>
#include <cstdio>
#include <fstream>
#include <map>
#include <random>
#include <thread>

#include "absl/flags/flag.h"
#include "load/bench_util.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "client/telemetry_client.h"
#include "server/ingest/ingest_server.h"
#include "storage/pg/connection.h"
#include "storage/pg/copy_encoding.h"
#include "storage/pg/migrator.h"
#include "storage/local/local_servers.h"
#include "storage/util/mutex.h"

ABSL_FLAG(int, rows, 1'000'000, "readings per run");
ABSL_FLAG(int, sensors, 1000, "distinct sensors");
ABSL_FLAG(int, batch, 1000, "readings per batch (gateway) / per COPY chunk x50");
ABSL_FLAG(int, streams, 4, "concurrent gateway streams (devices)");
ABSL_FLAG(int, parallel_copy, 2, "connections for the parallel direct COPY");
ABSL_FLAG(int, rounds, 3, "runs of each variant (medians reported)");
ABSL_FLAG(bool, json, false, "also print the medians as one JSON line");
ABSL_FLAG(std::string, only, "",
          "comma-separated variant name prefixes to run (default: all)");


namespace {

using telemetry::load::DieUnlessOk;
using telemetry::load::Median;

using telemetry::ReadingRow;
using telemetry::local::PostgresServer;
using telemetry::local::RedisServer;

struct Data {
  std::vector<ReadingRow> rows;
  std::vector<telemetry::v1::ReadingBatch> batches;
};

// Deterministic fleet: rows in time order, round-robin over sensors, one
// millisecond apart per sensor sweep, ending one hour ago.
Data MakeData(int rows, int sensors, int batch) {
  Data d;
  std::mt19937_64 rng(42);
  std::normal_distribution<double> noise(0, 1);
  int64_t sweeps = (rows + sensors - 1) / sensors;
  int64_t base_us = absl::ToUnixMicros(absl::Now()) - 3'600'000'000LL - sweeps * 1000;
  d.rows.reserve(static_cast<size_t>(rows));
  for (int n = 0; n < rows; ++n) {
    ReadingRow r;
    int s = n % sensors;
    r.sensor_id = absl::StrCat("sensor-", s);
    r.timestamp_us = base_us + static_cast<int64_t>(n / sensors) * 1000;
    r.sensor_type = "vibration";
    r.value = 20 + s % 7 + noise(rng);
    r.unit = "mm/s";
    r.quality = 0.99;
    d.rows.push_back(std::move(r));
  }
  for (int first = 0; first < rows; first += batch) {
    telemetry::v1::ReadingBatch b;
    b.set_idempotency_key(absl::StrCat("bench-", first));
    for (int n = first; n < std::min(rows, first + batch); ++n) {
      const ReadingRow& r = d.rows[static_cast<size_t>(n)];
      auto* p = b.add_readings();
      p->set_sensor_id(r.sensor_id);
      p->mutable_timestamp()->set_seconds(r.timestamp_us / 1'000'000);
      p->mutable_timestamp()->set_nanos(static_cast<int32_t>(r.timestamp_us % 1'000'000) * 1000);
      p->set_sensor_type(*r.sensor_type);
      p->set_value(r.value);
      p->set_unit(*r.unit);
      p->set_quality(*r.quality);
    }
    d.batches.push_back(std::move(b));
  }
  return d;
}

int64_t Count(telemetry::pg::Connection& c) {
  auto r = c.Query("SELECT count(*) FROM sensor_readings");
  DieUnlessOk(r.status(), "count");
  return r->GetInt(0, 0);
}

void Reset(telemetry::pg::Connection& c) {
  DieUnlessOk(c.Exec("TRUNCATE sensor_readings; TRUNCATE sensors CASCADE; CHECKPOINT"),
        "truncate");
}

// Direct binary COPY of `data` split over `connections` (50 batches a COPY).
double DirectCopy(const std::string& conninfo, const Data& data, int connections,
                  int chunk) {
  absl::Time start = absl::Now();
  std::vector<std::thread> threads;
  size_t per = (data.rows.size() + static_cast<size_t>(connections) - 1) /
               static_cast<size_t>(connections);
  for (int t = 0; t < connections; ++t) {
    threads.emplace_back([&, t] {
      auto conn = telemetry::pg::Connection::Open(conninfo);
      DieUnlessOk(conn.status(), "connect");
      size_t lo = static_cast<size_t>(t) * per;
      size_t hi = std::min(data.rows.size(), lo + per);
      for (size_t first = lo; first < hi; first += static_cast<size_t>(chunk)) {
        telemetry::pg::CopyEncoder enc;
        for (size_t n = first; n < std::min(hi, first + static_cast<size_t>(chunk)); ++n) {
          enc.AddReading(data.rows[n]);
        }
        DieUnlessOk((*conn)->Exec("BEGIN"), "begin");
        DieUnlessOk((*conn)
                  ->CopyIn(absl::StrCat("COPY sensor_readings (",
                                        telemetry::pg::kReadingCopyColumns,
                                        ") FROM STDIN (FORMAT binary)"),
                           enc.Finish())
                  .status(),
              "copy");
        DieUnlessOk((*conn)->Exec("COMMIT"), "commit");
      }
    });
  }
  for (auto& t : threads) t.join();
  return absl::ToDoubleSeconds(absl::Now() - start);
}

double PsqlCopy(const std::string& conninfo, const std::string& csv_path,
                const std::string& psql) {
  absl::Time start = absl::Now();
  auto rc = telemetry::local::RunCommand(
      {psql, "-q", "-v", "ON_ERROR_STOP=1", "-d", conninfo, "-c",
       absl::StrCat("\\copy sensor_readings (", telemetry::pg::kReadingCopyColumns,
                    ") FROM '", csv_path, "' WITH (FORMAT csv)")});
  DieUnlessOk(rc.status(), "psql");
  if (*rc != 0) DieUnlessOk(absl::InternalError("psql \\copy failed"), "psql");
  return absl::ToDoubleSeconds(absl::Now() - start);
}

void WriteCsv(const Data& d, const std::string& path) {
  std::ofstream out(path);
  for (const ReadingRow& r : d.rows) {
    out << absl::FormatTime("%Y-%m-%d %H:%M:%E6S+00", absl::FromUnixMicros(r.timestamp_us),
                            absl::UTCTimeZone())
        << ',' << r.sensor_id << ',' << *r.sensor_type << ','
        << absl::StrFormat("%.17g", r.value) << ',' << *r.unit << ','
        << absl::StrFormat("%.17g", *r.quality) << ",\n";
  }
}

double Gateway(const std::string& conninfo, const std::string& redis_url,
               bool dedupe, const Data& data, int streams, int round) {
  telemetry::ingest::IngestServerOptions o;
  o.transport.plaintext = true;  // loopback
  o.require_device_auth = false;
  o.listen_address = "127.0.0.1:0";
  o.metrics_address = "";
  o.database_url = conninfo;
  o.redis_url = redis_url;
  o.dedupe = dedupe;
  auto server = telemetry::ingest::IngestServer::Start(o);
  DieUnlessOk(server.status(), "gateway");
  auto channel = grpc::CreateChannel(absl::StrCat("127.0.0.1:", (*server)->port()),
                                     grpc::InsecureChannelCredentials());
  absl::Time start = absl::Now();
  std::vector<std::thread> devices;
  for (int s = 0; s < streams; ++s) {
    devices.emplace_back([&, s] {
      telemetry::client::BatchStream stream(channel, {});
      for (size_t b = static_cast<size_t>(s); b < data.batches.size();
           b += static_cast<size_t>(streams)) {
        telemetry::v1::ReadingBatch batch = data.batches[b];
        // Fresh keys per round so Redis treats every round as new data.
        batch.set_idempotency_key(absl::StrCat(batch.idempotency_key(), "-", round,
                                               dedupe ? "-d" : "-n"));
        DieUnlessOk(stream.Send(std::move(batch)), "send");
      }
      auto stats = stream.Close(absl::Minutes(10));
      DieUnlessOk(stats.status(), "close");
      if (!stats->failed.empty()) DieUnlessOk(absl::InternalError("batch failed"), "ack");
    });
  }
  for (auto& t : devices) t.join();
  double seconds = absl::ToDoubleSeconds(absl::Now() - start);
  (*server)->Shutdown(absl::Seconds(5));
  return seconds;
}

}  // namespace

int main(int argc, char** argv) {
  telemetry::DisableMutexDeadlockDetection();  // measure what production runs
  absl::ParseCommandLine(argc, argv);
  const int rows = absl::GetFlag(FLAGS_rows);
  const int rounds = absl::GetFlag(FLAGS_rounds);
  const int streams = absl::GetFlag(FLAGS_streams);
  const int parallel = absl::GetFlag(FLAGS_parallel_copy);
  const int chunk = absl::GetFlag(FLAGS_batch) * 50;

  std::fprintf(stderr, "starting private PostgreSQL and Redis on loopback...\n");
  auto pg = PostgresServer::Start();
  DieUnlessOk(pg.status(), "postgres");
  auto redis = RedisServer::Start();
  DieUnlessOk(redis.status(), "redis");
  auto db = telemetry::local::CreateMigratedDatabase(**pg);
  DieUnlessOk(db.status(), "database");
  const std::string conninfo = (*pg)->ConnInfo(*db);
  auto conn = telemetry::pg::Connection::Open(conninfo);
  DieUnlessOk(conn.status(), "connect");

  std::fprintf(stderr, "generating %d readings...\n", rows);
  Data data = MakeData(rows, absl::GetFlag(FLAGS_sensors), absl::GetFlag(FLAGS_batch));
  int64_t first_day = data.rows.front().timestamp_us / 86'400'000'000LL;
  int64_t last_day = data.rows.back().timestamp_us / 86'400'000'000LL;
  auto r = (*conn)->Query(
      "SELECT telemetry_ensure_partitions(to_timestamp($1::bigint * 86400), "
      "to_timestamp($2::bigint * 86400))",
      {std::to_string(first_day), std::to_string(last_day)});
  DieUnlessOk(r.status(), "partitions");
  char csv_dir[] = "/tmp/tg-bench-XXXXXX";
  if (mkdtemp(csv_dir) == nullptr) DieUnlessOk(absl::InternalError("mkdtemp"), "tmp");
  std::string csv = absl::StrCat(csv_dir, "/readings.csv");
  WriteCsv(data, csv);
  chmod(csv_dir, 0755);  // psql runs as us, but keep it readable anyway

  using Runner = std::function<double()>;
  // The best direct COPY again, between `setup` and `teardown` SQL.
  auto copy_with = [&](const std::string& setup, const std::string& teardown) {
    DieUnlessOk((*conn)->Exec(setup), "variant setup");
    double s = DirectCopy(conninfo, data, parallel, chunk);
    DieUnlessOk((*conn)->Exec(teardown), "variant teardown");
    return s;
  };
  const std::string kDisableTrigger =
      "ALTER TABLE sensor_readings DISABLE TRIGGER sensor_readings_record_invalidations";
  const std::string kEnableTrigger =
      "ALTER TABLE sensor_readings ENABLE TRIGGER sensor_readings_record_invalidations";
  std::vector<std::pair<std::string, Runner>> variants = {
      {"a_gateway_dedupe",
       [&] { static int round = 0; return Gateway(conninfo, (*redis)->Url(), true, data, streams, round++); }},
      {"a2_gateway_redis_down",
       [&] {
         static int round = 0;
         std::string refused =
             absl::StrCat("redis://127.0.0.1:", telemetry::local::FreeLoopbackPort());
         return Gateway(conninfo, refused, true, data, streams, round++);
       }},
      {"a3_gateway_redis_stalled",
       [&] {
         static int round = 0;
         DieUnlessOk((*redis)->Pause(), "pause redis");
         double s = Gateway(conninfo, (*redis)->Url(), true, data, streams, round++);
         DieUnlessOk((*redis)->Resume(), "resume redis");
         return s;
       }},
      {"b_gateway_no_dedupe",
       [&] { static int round = 0; return Gateway(conninfo, "", false, data, streams, round++); }},
      {"c1_copy_1_conn", [&] { return DirectCopy(conninfo, data, 1, chunk); }},
      {absl::StrCat("c", parallel, "_copy_", parallel, "_conn"),
       [&] { return DirectCopy(conninfo, data, parallel, chunk); }},
      {"d_psql_copy_csv", [&] { return PsqlCopy(conninfo, csv, "/usr/bin/psql"); }},
      // What the seed's standalone (timestamp) index would cost the write
      // path: the best direct COPY again, with that index present.
      {absl::StrCat("e_copy_", parallel, "_conn_seed_ts_index"),
       [&] {
         return copy_with("CREATE INDEX ix_sensor_readings_timestamp ON sensor_readings "
                          "(\"timestamp\")",
                          "DROP INDEX ix_sensor_readings_timestamp");
       }},
      // What the aggregate's invalidation trigger costs the write path: the
      // best direct COPY again, with the statement trigger disabled.
      {absl::StrCat("f_copy_", parallel, "_conn_no_invalidation_trigger"),
       [&] { return copy_with(kDisableTrigger, kEnableTrigger); }},
      // Where the trigger's cost lies: the same transition table with a
      // trigger that does nothing with it (the capture alone).
      {absl::StrCat("f2_copy_", parallel, "_conn_capture_only_trigger"),
       [&] {
         return copy_with(
             absl::StrCat(kDisableTrigger,
                          "; CREATE FUNCTION bench_noop_trigger() RETURNS trigger "
                          "LANGUAGE plpgsql AS $$ BEGIN RETURN NULL; END $$; "
                          "CREATE TRIGGER bench_capture_only AFTER INSERT ON sensor_readings "
                          "REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT "
                          "EXECUTE FUNCTION bench_noop_trigger()"),
             absl::StrCat("DROP TRIGGER bench_capture_only ON sensor_readings; "
                          "DROP FUNCTION bench_noop_trigger(); ",
                          kEnableTrigger));
       }},
      // The alternative to the trigger: no trigger, and a BRIN index on
      // created_at from which a refresh would find the hours written since
      // the last one.
      {absl::StrCat("f3_copy_", parallel, "_conn_brin_created_at"),
       [&] {
         return copy_with(absl::StrCat(kDisableTrigger,
                                       "; CREATE INDEX bench_brin_created_at ON sensor_readings "
                                       "USING brin (created_at)"),
                          absl::StrCat("DROP INDEX bench_brin_created_at; ", kEnableTrigger));
       }},
      // The same trigger with a cheaper body: date_bin is arithmetic on the
      // timestamp, where date_trunc(..., 'UTC') converts through a time zone.
      {absl::StrCat("f4_copy_", parallel, "_conn_date_bin_trigger"),
       [&] {
         auto body = [](const char* hour_of_timestamp) {
           return absl::StrCat(
               "CREATE OR REPLACE FUNCTION telemetry_record_invalidations() RETURNS trigger "
               "LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $fn$ "
               "BEGIN INSERT INTO telemetry_aggregate_invalidations (hour) SELECT DISTINCT ",
               hour_of_timestamp, " FROM new_rows; RETURN NULL; END $fn$");
         };
         return copy_with(body("date_bin('1 hour', \"timestamp\", '2000-01-01 00:00:00+00')"),
                          body("date_trunc('hour', \"timestamp\", 'UTC')"));
       }},
  };
  if (std::string only = absl::GetFlag(FLAGS_only); !only.empty()) {
    std::vector<std::string> prefixes = absl::StrSplit(only, ',');
    std::erase_if(variants, [&](const auto& v) {
      return std::none_of(prefixes.begin(), prefixes.end(), [&](const std::string& p) {
        return v.first.rfind(p, 0) == 0;
      });
    });
  }
  std::map<std::string, std::vector<double>> rate;
  for (int round = 0; round < rounds; ++round) {
    for (auto& [name, run] : variants) {
      Reset(**conn);
      double seconds = run();
      int64_t stored = Count(**conn);
      if (stored != rows) {
        std::fprintf(stderr, "%s stored %lld rows, expected %d\n", name.c_str(),
                     static_cast<long long>(stored), rows);
        return 1;
      }
      rate[name].push_back(rows / seconds);
      std::fprintf(stderr, "round %d %-22s %10.0f rows/s\n", round + 1, name.c_str(),
                   rows / seconds);
    }
  }
  std::map<std::string, double> med;
  for (auto& [name, v] : rate) med[name] = Median(v);
  double best_copy = 0;
  for (auto& [name, v] : med) {
    if (name[0] == 'c') best_copy = std::max(best_copy, v);  // as deployed
  }
  std::printf("\ningest_bench: %d readings, %d sensors, batches of %d, %d streams, "
              "%d rounds (medians)\n",
              rows, absl::GetFlag(FLAGS_sensors), absl::GetFlag(FLAGS_batch), streams,
              rounds);
  for (auto& [name, v] : med) std::printf("  %-22s %10.0f rows/s\n", name.c_str(), v);
  auto get = [&](const std::string& n) { return med.count(n) ? med[n] : 0.0; };
  double a = get("a_gateway_dedupe"), b = get("b_gateway_no_dedupe"),
         d = get("d_psql_copy_csv");
  std::printf("  best direct COPY (c)   %10.0f rows/s\n", best_copy);
  if (a > 0 && b > 0 && d > 0 && best_copy > 0) {  // all variants ran
    std::printf("  a/c = %.2f   b/c = %.2f   a/d = %.2f   a/b = %.2f\n", a / best_copy,
                b / best_copy, a / d, a / b);
  }
  double e = get(absl::StrCat("e_copy_", parallel, "_conn_seed_ts_index"));
  double c_same = get(absl::StrCat("c", parallel, "_copy_", parallel, "_conn"));
  if (e > 0 && c_same > 0) {
    std::printf("  seed (timestamp) index: COPY at %.2fx the rate without it\n",
                e / c_same);
  }
  double f = get(absl::StrCat("f_copy_", parallel, "_conn_no_invalidation_trigger"));
  if (f > 0 && c_same > 0) {
    std::printf("  aggregate invalidation trigger: COPY at %.2fx the rate without it\n",
                c_same / f);
  }
  if (absl::GetFlag(FLAGS_json)) {
    std::printf("{\"rows\":%d,\"a\":%.0f,\"b\":%.0f,\"c\":%.0f,\"d\":%.0f,"
                "\"a_over_c\":%.3f,\"b_over_c\":%.3f,\"a_over_d\":%.3f,\"a_over_b\":%.3f}\n",
                rows, a, b, best_copy, d, a / best_copy, b / best_copy, a / d, a / b);
  }
  std::filesystem::remove_all(csv_dir);
  return 0;
}
