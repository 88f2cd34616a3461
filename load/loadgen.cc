// loadgen: a simulated fleet of edge devices streaming into the gateway.
//
// Each device is one client-library BatchStream carrying readings of its
// sensors; data is deterministic from --seed, so runs are comparable. A
// fraction of batches is deliberately sent twice (as a device that lost an
// ack would) and a fraction of readings is made invalid. Every second a
// progress line shows rows/s, acks/s, ack latency percentiles and errors; the
// end prints a summary (and --json one JSON line). With --verify_database_url
// it then checks in PostgreSQL that exactly the distinct valid readings it
// sent were stored: no loss, no duplicates. Exit code 0 only if all is well.
//
//   loadgen --target=127.0.0.1:50051 --devices=20 --sensors=10 --batch=500
//           --duration=30s --retry_fraction=0.05 --invalid_fraction=0.01
//           --verify_database_url="$DATABASE_URL"
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <deque>
#include <random>
#include <thread>

#include "absl/container/flat_hash_map.h"
#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "client/channel_flags.h"
#include "client/connect_check.h"
#include "client/telemetry_client.h"
#include "storage/util/mutex.h"
#include "telemetry/v1/query.grpc.pb.h"
#include "load/latency_recorder.h"
#include "server/common/flags_env.h"
#include "storage/pg/connection.h"

ABSL_FLAG(std::string, target, "",
          "gateway address, or several as a comma-separated list of IP:port, streams "
          "spread over them (env INGEST_ADDRESS; default 127.0.0.1:50051)");
ABSL_FLAG(int, devices, 10, "simulated devices, one stream each");
ABSL_FLAG(int, sensors, 10, "sensors per device");
ABSL_FLAG(int, batch, 500, "readings per batch");
ABSL_FLAG(double, rate, 0, "readings per second per device; 0 = as fast as possible");
ABSL_FLAG(bool, stagger, true,
          "with --rate: spread the devices' send times evenly over one batch interval, "
          "as independent devices are (false: every device sends at the same instants, "
          "as a fleet synchronised to the clock does)");
ABSL_FLAG(absl::Duration, duration, absl::Seconds(10), "how long to send");
ABSL_FLAG(int64_t, max_batches, 0, "stop each device after this many batches (0: no limit)");
ABSL_FLAG(double, retry_fraction, 0.0, "fraction of batches deliberately sent twice");
ABSL_FLAG(double, invalid_fraction, 0.0, "fraction of readings made invalid (NaN)");
ABSL_FLAG(uint64_t, seed, 1, "seed for the generated data");
ABSL_FLAG(std::string, run_id, "", "prefix of sensor ids and keys (default: derived from seed and time)");
ABSL_FLAG(int, window, 8, "unacknowledged batches per stream");
ABSL_FLAG(bool, json, false, "print the final summary as one JSON line too");
ABSL_FLAG(bool, quiet, false, "no per-second progress lines");
ABSL_FLAG(std::string, read_target, "",
          "read service address (env READ_ADDRESS); with --read_concurrency > 0 the "
          "run also drives LatestReadings, HourlySummary and DriftWindows");
ABSL_FLAG(int, read_concurrency, 0, "concurrent read clients during the run (0: none)");
ABSL_FLAG(std::string, read_token_file, "",
          "API token for the read service (env TELEMETRY_READ_TOKEN_FILE; the device token "
          "of --token_file is not one; empty: no token, for a service without API auth)");
ABSL_FLAG(std::string, verify_database_url, "",
          "after the run, check in PostgreSQL that exactly the distinct valid "
          "readings sent were stored");

namespace {

// The read calls ReadLoad makes, by kind.
constexpr const char* kKindNames[3] = {"latest", "summary", "drift"};

struct Totals {
  std::atomic<uint64_t> sent_readings{0};      // distinct readings generated
  std::atomic<uint64_t> valid_readings{0};     // of which valid
  std::atomic<uint64_t> batches{0};            // distinct batches
  std::atomic<uint64_t> resent_batches{0};     // deliberate re-sends
  std::atomic<uint64_t> resent_readings{0};    // valid readings in re-sends
  std::atomic<uint64_t> resent_invalid{0};     // invalid readings in re-sends
  std::atomic<uint64_t> acks{0};
  std::atomic<uint64_t> accepted{0};
  std::atomic<uint64_t> duplicates{0};
  std::atomic<uint64_t> rejected{0};
  std::atomic<uint64_t> failed_batches{0};
  std::atomic<uint64_t> client_errors{0};
};

class Device {
 public:
  Device(int index, std::shared_ptr<grpc::Channel> channel, const std::string& run_id,
         Totals* totals, telemetry::load::LatencyRecorder* latency)
      : index_(index),
        run_id_(run_id),
        totals_(totals),
        latency_(latency),
        rng_(absl::GetFlag(FLAGS_seed) * 1'000'003 + static_cast<uint64_t>(index)) {
    telemetry::client::StreamOptions o;
    o.max_in_flight = absl::GetFlag(FLAGS_window);
    auto on_ack = [this](const telemetry::v1::BatchAck& ack) { OnAck(ack); };
    stream_ = std::make_unique<telemetry::client::BatchStream>(channel, o, on_ack);
    retry_stream_ = std::make_unique<telemetry::client::BatchStream>(channel, o, on_ack);
  }

  void Run(absl::Time deadline, absl::Time data_start, int devices) {
    const int sensors = absl::GetFlag(FLAGS_sensors);
    const int batch_size = absl::GetFlag(FLAGS_batch);
    const double rate = absl::GetFlag(FLAGS_rate);
    const int64_t max_batches = absl::GetFlag(FLAGS_max_batches);
    const double retry_fraction = absl::GetFlag(FLAGS_retry_fraction);
    const double invalid_fraction = absl::GetFlag(FLAGS_invalid_fraction);
    std::uniform_real_distribution<double> unit(0, 1);
    std::normal_distribution<double> noise(0, 0.5);
    // Reading n of this device: sensor n % sensors at data time
    // data_start + (n / sensors) ms, so (sensor, timestamp) never repeats.
    int64_t n = 0;
    absl::Time started = absl::Now();
    if (rate > 0 && absl::GetFlag(FLAGS_stagger)) {
      // Device i of N starts i/N of a batch interval late.
      started += absl::Seconds(static_cast<double>(batch_size) / rate * index_ / devices);
      absl::SleepFor(std::min(started, deadline) - absl::Now());
    }
    for (int64_t b = 0; absl::Now() < deadline && (max_batches == 0 || b < max_batches); ++b) {
      telemetry::v1::ReadingBatch batch;
      batch.set_idempotency_key(absl::StrCat(run_id_, "/d", index_, "/b", b));
      uint64_t valid = 0;
      for (int i = 0; i < batch_size; ++i, ++n) {
        int s = static_cast<int>(n % sensors);
        int64_t us = absl::ToUnixMicros(data_start) + (n / sensors) * 1000;
        auto* r = batch.add_readings();
        r->set_sensor_id(absl::StrCat(run_id_, "-d", index_, "-s", s));
        r->mutable_timestamp()->set_seconds(us / 1'000'000);
        r->mutable_timestamp()->set_nanos(static_cast<int32_t>(us % 1'000'000) * 1000);
        r->set_sensor_type("vibration");
        r->set_unit("mm/s");
        r->set_quality(0.95);
        if (unit(rng_) < invalid_fraction) {
          r->set_value(std::nan(""));
        } else {
          r->set_value(10 + s + noise(rng_));
          ++valid;
        }
      }
      totals_->sent_readings += static_cast<uint64_t>(batch_size);
      totals_->valid_readings += valid;
      ++totals_->batches;
      if (unit(rng_) < retry_fraction) {
        // A device that lost the ack sends the batch again, on a second
        // stream, possibly while the first delivery is still in flight.
        ++totals_->resent_batches;
        totals_->resent_readings += valid;
        totals_->resent_invalid += static_cast<uint64_t>(batch_size) - valid;
        Send(retry_stream_.get(), batch);
      }
      Send(stream_.get(), std::move(batch));
      if (rate > 0) {
        absl::Time due =
            started + absl::Seconds(static_cast<double>((b + 1) * batch_size) / rate);
        absl::Time now = absl::Now();
        if (due > now) absl::SleepFor(std::min(due, deadline) - now);
      }
    }
  }

  void Close(absl::Duration timeout) {
    for (auto* s : {stream_.get(), retry_stream_.get()}) {
      auto stats = s->Close(timeout);
      if (!stats.ok()) {
        ++totals_->client_errors;
        std::fprintf(stderr, "device %d: %s\n", index_,
                     std::string(stats.status().message()).c_str());
        continue;
      }
      totals_->failed_batches += stats->failed.size();
    }
  }

 private:
  void Send(telemetry::client::BatchStream* stream, telemetry::v1::ReadingBatch batch) {
    {
      telemetry::MutexLock lock(&mu_);
      sent_at_[batch.idempotency_key()].push_back(absl::Now());
    }
    if (!stream->Send(std::move(batch)).ok()) ++totals_->client_errors;
  }

  void OnAck(const telemetry::v1::BatchAck& ack) {
    absl::Time sent;
    {
      telemetry::MutexLock lock(&mu_);
      auto it = sent_at_.find(ack.idempotency_key());
      if (it == sent_at_.end() || it->second.empty()) return;
      sent = it->second.front();  // deliveries of one key: earliest first
      it->second.pop_front();
      if (it->second.empty()) sent_at_.erase(it);
    }
    latency_->Record(absl::Now() - sent);
    ++totals_->acks;
    totals_->accepted += ack.accepted();
    totals_->duplicates += ack.duplicates();
    totals_->rejected += ack.rejected();
  }

  const int index_;
  const std::string run_id_;
  Totals* totals_;
  telemetry::load::LatencyRecorder* latency_;
  std::mt19937_64 rng_;
  telemetry::Mutex mu_;
  absl::flat_hash_map<std::string, std::deque<absl::Time>> sent_at_ ABSL_GUARDED_BY(mu_);
  std::unique_ptr<telemetry::client::BatchStream> stream_;
  std::unique_ptr<telemetry::client::BatchStream> retry_stream_;
};

// Read clients: while the fleet writes, each repeatedly calls one of the
// three read archetypes on this run's sensors and records its latency.
class ReadLoad {
 public:
  ReadLoad(std::shared_ptr<grpc::Channel> channel, std::string run_id, int devices,
           int sensors, absl::Time data_start)
      : stub_(telemetry::v1::QueryService::NewStub(std::move(channel))),
        run_id_(std::move(run_id)),
        devices_(devices),
        sensors_(sensors),
        data_start_(data_start) {}

  void Run(int concurrency, absl::Time deadline) {
    std::vector<std::thread> threads;
    for (int t = 0; t < concurrency; ++t) {
      threads.emplace_back([this, t, deadline] {
        std::mt19937 rng(static_cast<unsigned>(1000 + t));
        for (int i = 0; !stop_.load() && absl::Now() < deadline; ++i) Call(i % 3, rng);
      });
    }
    for (auto& th : threads) th.join();
  }

  // Ends Run() early (the writers are done).
  void Stop() { stop_ = true; }
  uint64_t errors() const { return errors_[0] + errors_[1] + errors_[2]; }

  void Report(double seconds, std::string* json) {
    const char* const* names = kKindNames;
    for (int k = 0; k < 3; ++k) {
      auto p = latency_[k].Total();
      std::printf("  read %-8s %7.0f qps  p50 %6.2f ms  p99 %6.2f ms  (%zu calls, %llu errors)\n",
                  names[k], p.count / seconds, p.p50_ms, p.p99_ms, p.count,
                  static_cast<unsigned long long>(errors_[k].load()));
      absl::StrAppend(json, ",\"read_", names[k], "_qps\":", absl::StrFormat("%.1f", p.count / seconds),
                      ",\"read_", names[k], "_p50_ms\":", absl::StrFormat("%.3f", p.p50_ms),
                      ",\"read_", names[k], "_p99_ms\":", absl::StrFormat("%.3f", p.p99_ms));
    }
  }

 private:
  std::string Sensor(std::mt19937& rng) {
    return absl::StrCat(run_id_, "-d", rng() % static_cast<unsigned>(devices_), "-s",
                        rng() % static_cast<unsigned>(sensors_));
  }
  void Call(int kind, std::mt19937& rng) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    absl::Time start = absl::Now();
    grpc::Status s;
    // Data time runs from data_start at 1 ms per sensor sweep: the first
    // minute of it holds plenty of readings for every sensor.
    auto set = [](absl::Time t, google::protobuf::Timestamp* ts) {
      int64_t us = absl::ToUnixMicros(t);
      ts->set_seconds(us / 1'000'000);
      ts->set_nanos(static_cast<int32_t>(us % 1'000'000) * 1000);
    };
    if (kind == 0) {
      telemetry::v1::LatestReadingsRequest req;
      req.set_sensor_id(Sensor(rng));
      req.set_limit(100);
      telemetry::v1::LatestReadingsResponse resp;
      s = stub_->LatestReadings(&ctx, req, &resp);
    } else if (kind == 1) {
      telemetry::v1::HourlySummaryRequest req;
      int d = static_cast<int>(rng() % static_cast<unsigned>(devices_));
      for (int i = 0; i < sensors_; ++i) req.add_sensor_ids(absl::StrCat(run_id_, "-d", d, "-s", i));
      set(data_start_ - absl::Hours(1), req.mutable_start());
      set(data_start_ + absl::Hours(2), req.mutable_end());
      telemetry::v1::HourlySummaryResponse resp;
      s = stub_->HourlySummary(&ctx, req, &resp);
    } else {
      telemetry::v1::DriftWindowsRequest req;
      req.set_sensor_id(Sensor(rng));
      // Two halves of the first second of data time, which even a short
      // run fills (1 ms per sweep).
      set(data_start_, req.mutable_reference_start());
      set(data_start_ + absl::Milliseconds(500), req.mutable_reference_end());
      set(data_start_ + absl::Milliseconds(500), req.mutable_current_start());
      set(data_start_ + absl::Seconds(1), req.mutable_current_end());
      telemetry::v1::DriftWindowsResponse resp;
      s = stub_->DriftWindows(&ctx, req, &resp);
      // Early in a run a window may still be empty: the service says so
      // (FAILED_PRECONDITION); that is an answer, not an error.
      if (s.error_code() == grpc::StatusCode::FAILED_PRECONDITION) s = grpc::Status::OK;
    }
    if (s.ok()) {
      latency_[kind].Record(absl::Now() - start);
    } else if (errors_[kind]++ == 0) {  // each kind's first error once, with its reason
      std::fprintf(stderr, "loadgen: read %s failed: %s\n", kKindNames[kind],
                   telemetry::client::DescribeStatus(s).c_str());
    }
  }

  std::unique_ptr<telemetry::v1::QueryService::Stub> stub_;
  const std::string run_id_;
  const int devices_, sensors_;
  const absl::Time data_start_;
  telemetry::load::LatencyRecorder latency_[3];
  std::atomic<uint64_t> errors_[3] = {0, 0, 0};
  std::atomic<bool> stop_{false};
};

}  // namespace

int main(int argc, char** argv) {
  telemetry::DisableMutexDeadlockDetection();
  absl::ParseCommandLine(argc, argv);
  std::string target = telemetry::FlagOrEnv(FLAGS_target, "INGEST_ADDRESS", "127.0.0.1:50051");
  std::string run_id = absl::GetFlag(FLAGS_run_id);
  if (run_id.empty()) {
    run_id = absl::StrCat("lg", absl::GetFlag(FLAGS_seed), "t", absl::ToUnixSeconds(absl::Now()));
  }
  const int devices = absl::GetFlag(FLAGS_devices);
  auto opened = telemetry::client::OpenChannelFromFlags(target);
  if (!opened.ok()) {
    std::fprintf(stderr, "loadgen: %s\n", opened.status().ToString().c_str());
    return 2;
  }
  std::shared_ptr<grpc::Channel> channel = *opened;
  // A wrong address, a stopped gateway or a TLS mismatch ends the run at
  // once, saying why; a gateway that goes away later is retried.
  if (absl::Status s = telemetry::client::CheckReachable(
          channel, target, telemetry::client::ConnectTimeoutFromFlags());
      !s.ok()) {
    std::fprintf(stderr, "loadgen: %s\n", std::string(s.message()).c_str());
    return 1;
  }

  Totals totals;
  telemetry::load::LatencyRecorder latency;
  // Data time starts a day back, so even a run far faster than real time
  // never produces readings in the future.
  absl::Time data_start = absl::Now() - absl::Hours(24);
  absl::Time start = absl::Now();
  absl::Time deadline = start + absl::GetFlag(FLAGS_duration);

  std::vector<std::unique_ptr<Device>> fleet;
  for (int d = 0; d < devices; ++d) {
    fleet.push_back(std::make_unique<Device>(d, channel, run_id, &totals, &latency));
  }
  std::vector<std::thread> threads;
  for (auto& dev : fleet) {
    threads.emplace_back([&, dev = dev.get()] { dev->Run(deadline, data_start, devices); });
  }

  std::unique_ptr<ReadLoad> reads;
  std::thread read_thread;
  if (int rc = absl::GetFlag(FLAGS_read_concurrency); rc > 0) {
    const std::string read_target =
        telemetry::FlagOrEnv(FLAGS_read_target, "READ_ADDRESS", "127.0.0.1:50052");
    auto read_options = telemetry::client::ChannelOptionsFromFlags();
    if (!read_options.ok()) {
      std::fprintf(stderr, "loadgen: %s\n", read_options.status().ToString().c_str());
      return 2;
    }
    read_options->bearer_token.clear();  // the device's token means nothing to the read service
    if (std::string file = telemetry::FlagOrEnv(FLAGS_read_token_file, "TELEMETRY_READ_TOKEN_FILE");
        !file.empty()) {
      auto token = telemetry::client::ReadTokenFile(file);
      if (!token.ok()) {
        std::fprintf(stderr, "loadgen: %s\n", std::string(token.status().message()).c_str());
        return 2;
      }
      read_options->bearer_token = *std::move(token);
    }
    auto read_channel = telemetry::client::OpenChannel(read_target, *read_options);
    if (!read_channel.ok()) {
      std::fprintf(stderr, "loadgen: %s\n", read_channel.status().ToString().c_str());
      return 2;
    }
    if (absl::Status s = telemetry::client::CheckReachable(
            *read_channel, read_target, telemetry::client::ConnectTimeoutFromFlags());
        !s.ok()) {
      std::fprintf(stderr, "loadgen: %s\n", std::string(s.message()).c_str());
      return 1;
    }
    reads = std::make_unique<ReadLoad>(*read_channel,
        run_id, devices, absl::GetFlag(FLAGS_sensors), data_start);
    read_thread = std::thread([&reads, rc, deadline] { reads->Run(rc, deadline); });
  }

  std::atomic<bool> done{false};
  std::thread progress([&] {
    uint64_t last_accepted = 0, last_acks = 0;
    absl::Time last = absl::Now();
    while (!done.load()) {
      absl::SleepFor(absl::Seconds(1));  // reporting cadence, not synchronisation
      absl::Time now = absl::Now();
      double dt = absl::ToDoubleSeconds(now - last);
      uint64_t acc = totals.accepted.load(), acks = totals.acks.load();
      auto p = latency.TakeWindow();
      if (!absl::GetFlag(FLAGS_quiet)) {
        std::fprintf(stderr,
                     "[%5.1fs] %9.0f rows/s %7.0f acks/s  ack p50 %6.1f ms p99 %6.1f ms  "
                     "errors %llu\n",
                     absl::ToDoubleSeconds(now - start), (acc - last_accepted) / dt,
                     (acks - last_acks) / dt, p.p50_ms, p.p99_ms,
                     static_cast<unsigned long long>(totals.client_errors.load() +
                                                     totals.failed_batches.load() +
                                                     (reads ? reads->errors() : 0)));
      }
      last_accepted = acc;
      last_acks = acks;
      last = now;
    }
  });
  for (auto& t : threads) t.join();
  absl::Time sending_done = absl::Now();
  if (reads) reads->Stop();
  if (read_thread.joinable()) read_thread.join();
  for (auto& dev : fleet) dev->Close(absl::Minutes(2));
  absl::Time end = absl::Now();
  done = true;
  progress.join();

  double seconds = absl::ToDoubleSeconds(end - start);
  auto all = latency.Total();
  uint64_t expected_accepted = totals.valid_readings.load();
  uint64_t expected_duplicates = totals.resent_readings.load();
  // Invalid readings are rejected on every delivery, re-sends included.
  uint64_t expected_rejected = totals.sent_readings.load() - totals.valid_readings.load() +
                               totals.resent_invalid.load();
  std::printf(
      "loadgen %s: %d devices x %d sensors, batches of %d, %.1f s (sending %.1f s)\n"
      "  sent      %llu readings in %llu batches (+%llu deliberate re-sends)\n"
      "  acked     %llu accepted, %llu duplicates, %llu rejected; %llu batches failed, "
      "%llu client errors\n"
      "  rate      %.0f accepted rows/s, %.0f acks/s\n"
      "  ack latency p50 %.2f ms  p90 %.2f ms  p99 %.2f ms  max %.2f ms\n",
      run_id.c_str(), devices, absl::GetFlag(FLAGS_sensors), absl::GetFlag(FLAGS_batch),
      seconds, absl::ToDoubleSeconds(sending_done - start),
      static_cast<unsigned long long>(totals.sent_readings.load()),
      static_cast<unsigned long long>(totals.batches.load()),
      static_cast<unsigned long long>(totals.resent_batches.load()),
      static_cast<unsigned long long>(totals.accepted.load()),
      static_cast<unsigned long long>(totals.duplicates.load()),
      static_cast<unsigned long long>(totals.rejected.load()),
      static_cast<unsigned long long>(totals.failed_batches.load()),
      static_cast<unsigned long long>(totals.client_errors.load()),
      totals.accepted.load() / seconds, totals.acks.load() / seconds, all.p50_ms,
      all.p90_ms, all.p99_ms, all.max_ms);

  std::string read_json;
  if (reads) reads->Report(absl::ToDoubleSeconds(sending_done - start), &read_json);

  bool ok = totals.failed_batches.load() == 0 && totals.client_errors.load() == 0 &&
            totals.accepted.load() == expected_accepted &&
            totals.duplicates.load() == expected_duplicates &&
            totals.rejected.load() == expected_rejected && (!reads || reads->errors() == 0);
  int64_t stored = -1;
  if (std::string url = absl::GetFlag(FLAGS_verify_database_url); !url.empty()) {
    auto conn = telemetry::pg::Connection::Open(url);
    if (!conn.ok()) {
      std::fprintf(stderr, "verify: %s\n", std::string(conn.status().message()).c_str());
      return 1;
    }
    // Sensor ids carry the run id, so other data in the table is ignored;
    // LIKE's wildcards in the id are escaped.
    std::string pattern;
    for (char c : run_id) {
      if (c == '%' || c == '_' || c == '\\') pattern += '\\';
      pattern += c;
    }
    // (sensor_id, timestamp) is the primary key, so no reading can be stored
    // twice: equal counts mean nothing lost and nothing extra.
    auto r = (*conn)->Query("SELECT count(*) FROM sensor_readings WHERE sensor_id LIKE $1",
                            {pattern + "-d%"});
    if (!r.ok()) {
      std::fprintf(stderr, "verify: %s\n", std::string(r.status().message()).c_str());
      return 1;
    }
    stored = r->GetInt(0, 0);
    bool exact = stored == static_cast<int64_t>(expected_accepted);
    std::printf("  verify    %lld rows stored for this run, %llu distinct valid readings "
                "sent: %s\n",
                static_cast<long long>(stored),
                static_cast<unsigned long long>(expected_accepted),
                exact ? "exact (no loss, no duplicates)" : "MISMATCH");
    ok = ok && exact;
  }
  if (absl::GetFlag(FLAGS_json)) {
    std::printf(
        "{\"run_id\":\"%s\",\"seconds\":%.3f,\"devices\":%d,\"sent_readings\":%llu,"
        "\"valid_readings\":%llu,\"batches\":%llu,\"resent_batches\":%llu,"
        "\"accepted\":%llu,\"duplicates\":%llu,\"rejected\":%llu,\"failed_batches\":%llu,"
        "\"client_errors\":%llu,\"rows_per_second\":%.0f,\"acks_per_second\":%.0f,"
        "\"ack_p50_ms\":%.3f,\"ack_p90_ms\":%.3f,\"ack_p99_ms\":%.3f,\"ack_max_ms\":%.3f,"
        "\"stored\":%lld%s,\"ok\":%s}\n",
        run_id.c_str(), seconds, devices,
        static_cast<unsigned long long>(totals.sent_readings.load()),
        static_cast<unsigned long long>(expected_accepted),
        static_cast<unsigned long long>(totals.batches.load()),
        static_cast<unsigned long long>(totals.resent_batches.load()),
        static_cast<unsigned long long>(totals.accepted.load()),
        static_cast<unsigned long long>(totals.duplicates.load()),
        static_cast<unsigned long long>(totals.rejected.load()),
        static_cast<unsigned long long>(totals.failed_batches.load()),
        static_cast<unsigned long long>(totals.client_errors.load()),
        totals.accepted.load() / seconds, totals.acks.load() / seconds, all.p50_ms,
        all.p90_ms, all.p99_ms, all.max_ms, static_cast<long long>(stored), read_json.c_str(),
        ok ? "true" : "false");
  }
  return ok ? 0 : 1;
}
