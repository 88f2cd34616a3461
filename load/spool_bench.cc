// What the edge spool costs and how a fleet's backlog drains (docs/spool.md),
// measured side by side in one run on private loopback servers:
//  1. the spool alone: Append of 500-reading batches, with a sender taking
//     them off as fast as they come (ReadNext + MarkDone), for each sync
//     policy: batches/s, readings/s, MB/s and the ratio to no sync;
//  2. end to end into the gateway (PostgreSQL + Redis dedupe), 4 devices:
//     BatchStream straight vs SpooledStream with each sync policy
//     (readings/s until every batch is acked, and the ratios);
//  3. replay after an outage: 100 devices that each spooled --outage of
//     readings at --device_rate while the gateway was away come back at
//     once (3 s start jitter): how long until every spool is empty, the
//     fleet's readings/s, unpaced and paced at --paced_rate per device.
// Every variant runs --reps times, interleaved; medians are printed. The
// stored rows are counted after each run: a bench that loses data dies.
//
//   build/load/spool_bench [--reps=3] [--dir=/var/tmp]
#include <grpcpp/grpcpp.h>

#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "client/csv_readings.h"
#include "client/spool.h"
#include "client/spooled_stream.h"
#include "client/telemetry_client.h"
#include "load/bench_util.h"
#include "server/ingest/ingest_server.h"
#include "storage/local/local_servers.h"
#include "storage/pg/connection.h"
#include "storage/util/mutex.h"

ABSL_FLAG(int, reps, 3, "Repetitions of each variant (the median is printed)");
ABSL_FLAG(std::string, dir, "/var/tmp",
          "Where the spools go: a real disk (fdatasync on tmpfs costs nothing)");
ABSL_FLAG(int, spool_batches, 2000, "Part 1: batches appended per run");
ABSL_FLAG(int, e2e_batches, 800, "Part 2: batches per run (over 4 devices)");
ABSL_FLAG(absl::Duration, outage, absl::Minutes(10), "Part 3: how long the gateway was away");
ABSL_FLAG(double, device_rate, 10, "Part 3: readings per second each device produces");
ABSL_FLAG(double, paced_rate, 500, "Part 3: readings per second per device when paced");
ABSL_FLAG(std::string, parts, "123", "Which parts to run");

namespace telemetry::load {
namespace {

using client::Spool;
using client::SpooledStream;
using client::SpoolOptions;

constexpr int kBatchReadings = 500;
constexpr int kSensorsPerDevice = 10;

// A device's `index`-th batch of readings, spread over its sensors one
// reading per `step` (readings of one batch are consecutive in time).
telemetry::v1::ReadingBatch DeviceBatch(const std::string& device, int64_t first_reading,
                                        int64_t base_us, int64_t step_us) {
  telemetry::v1::ReadingBatch batch;
  for (int i = 0; i < kBatchReadings; ++i) {
    const int64_t n = first_reading + i;
    telemetry::v1::Reading* r = batch.add_readings();
    r->set_sensor_id(absl::StrCat(device, "-s", n % kSensorsPerDevice));
    const int64_t us = base_us + n / kSensorsPerDevice * step_us;
    r->mutable_timestamp()->set_seconds(us / 1'000'000);
    r->mutable_timestamp()->set_nanos(static_cast<int32_t>(us % 1'000'000) * 1000);
    r->set_sensor_type("vibration");
    r->set_unit("mm/s");
    r->set_value(static_cast<double>(n % 1000) * 0.01);
    r->set_quality(0.98);
  }
  batch.set_idempotency_key(client::ContentKey(batch));
  return batch;
}

std::string FreshDir(const std::string& name) {
  const std::string dir = absl::StrCat(absl::GetFlag(FLAGS_dir), "/tg-spool-bench-", getpid(),
                                       "-", name);
  std::filesystem::remove_all(dir);
  return dir;
}

const char* SyncName(SpoolOptions::Sync sync) {
  switch (sync) {
    case SpoolOptions::Sync::kEveryBatch: return "every batch";
    case SpoolOptions::Sync::kInterval: return "every 100 ms";
    case SpoolOptions::Sync::kNone: return "none (OS)";
  }
  return "?";
}

// Part 1: seconds to append `batches` batches with a sender draining.
double SpoolAlone(SpoolOptions::Sync sync, const std::vector<telemetry::v1::ReadingBatch>& data) {
  SpoolOptions o;
  o.directory = FreshDir("alone");
  o.sync = sync;
  auto spool = Spool::Open(o);
  DieUnlessOk(spool.status(), "spool");
  std::thread sender([&] {
    for (size_t taken = 0; taken < data.size();) {
      auto entry = (*spool)->ReadNext(absl::Now() + absl::Seconds(30));
      if (!entry.ok()) break;
      (*spool)->MarkDone(entry->sequence);
      ++taken;
    }
  });
  const absl::Time start = absl::Now();
  for (const auto& batch : data) {
    DieUnlessOk((*spool)->Append(batch, "", absl::Now() + absl::Seconds(30)).status(), "append");
  }
  const double seconds = absl::ToDoubleSeconds(absl::Now() - start);
  sender.join();
  DieUnlessOk((*spool)->stats().appended_batches == data.size()
                  ? absl::OkStatus()
                  : absl::InternalError("not every batch was appended"),
              "append count");
  spool->reset();
  std::filesystem::remove_all(o.directory);
  return seconds;
}

// The servers, and what the parts do with them.
struct Fixture : BenchStack {

  std::unique_ptr<ingest::IngestServer> StartGateway() const {
    ingest::IngestServerOptions o;
    o.transport.plaintext = true;  // loopback
    o.require_device_auth = false;
    o.listen_address = "127.0.0.1:0";
    o.metrics_address = "";
    o.database_url = conninfo;
    o.redis_url = redis->Url();
    auto server = ingest::IngestServer::Start(o);
    DieUnlessOk(server.status(), "gateway");
    return *std::move(server);
  }
  int64_t Stored(const std::string& prefix) const {
    auto r = conn->Query("SELECT count(*) FROM sensor_readings WHERE sensor_id LIKE $1",
                         {prefix + "%"});
    DieUnlessOk(r.status(), "count");
    return r->GetInt(0, 0);
  }
  void ExpectStored(const std::string& prefix, int64_t expected) const {
    const int64_t n = Stored(prefix);
    if (n != expected) {
      std::fprintf(stderr, "%s: stored %lld readings, expected %lld\n", prefix.c_str(),
                   static_cast<long long>(n), static_cast<long long>(expected));
      std::exit(1);
    }
  }
};

// A channel of its own (a device is its own connection).
std::shared_ptr<grpc::Channel> DeviceChannel(int port, int device) {
  grpc::ChannelArguments args;
  args.SetInt("telemetry.bench.device", device);  // no subchannel sharing
  return grpc::CreateCustomChannel(absl::StrCat("127.0.0.1:", port),
                                   grpc::InsecureChannelCredentials(), args);
}

enum class Path { kDirect, kSpoolEveryBatch, kSpoolInterval };

// Part 2: seconds until 4 devices have every batch acked.
double EndToEnd(const Fixture& f, Path path, int batches, const std::string& prefix) {
  constexpr int kDevices = 4;
  auto gateway = f.StartGateway();
  const int64_t base_us = absl::ToUnixMicros(absl::Now() - absl::Hours(2));
  std::vector<std::vector<telemetry::v1::ReadingBatch>> data(kDevices);
  for (int d = 0; d < kDevices; ++d) {
    for (int b = d; b < batches; b += kDevices) {
      data[d].push_back(DeviceBatch(absl::StrCat(prefix, d), int64_t{b / kDevices} * kBatchReadings,
                                    base_us, 1000));
    }
  }
  const absl::Time start = absl::Now();
  std::vector<std::thread> devices;
  for (int d = 0; d < kDevices; ++d) {
    devices.emplace_back([&, d] {
      auto channel = DeviceChannel(gateway->port(), d);
      if (path == Path::kDirect) {
        client::BatchStream stream(channel, {});
        for (auto& batch : data[d]) DieUnlessOk(stream.Send(batch), "send");
        DieUnlessOk(stream.Close(absl::Minutes(5)).status(), "close");
        return;
      }
      SpoolOptions o;
      o.directory = FreshDir(absl::StrCat("e2e-", d));
      o.sync = path == Path::kSpoolEveryBatch ? SpoolOptions::Sync::kEveryBatch
                                              : SpoolOptions::Sync::kInterval;
      auto spool = Spool::Open(o);
      DieUnlessOk(spool.status(), "spool");
      {
        SpooledStream stream(channel, spool->get(), {});
        for (auto& batch : data[d]) {
          DieUnlessOk(stream.Send(batch, "", absl::Now() + absl::Minutes(1)).status(), "spool");
        }
        DieUnlessOk(stream.Close(absl::Minutes(5)).status(), "close");
      }
      spool->reset();
      std::filesystem::remove_all(o.directory);
    });
  }
  for (auto& t : devices) t.join();
  const double seconds = absl::ToDoubleSeconds(absl::Now() - start);
  gateway->Shutdown(absl::Seconds(5));
  f.ExpectStored(prefix, int64_t{batches} * kBatchReadings);
  return seconds;
}

// Part 3: 100 devices' spools filled as during the outage, then the
// gateway comes back. Returns seconds from the gateway's start until
// every spool is empty.
double Replay(const Fixture& f, double paced_rate, const std::string& prefix,
              int64_t* readings, uint64_t* resends) {
  constexpr int kDevices = 100;
  const double outage_s = absl::ToDoubleSeconds(absl::GetFlag(FLAGS_outage));
  const double rate = absl::GetFlag(FLAGS_device_rate);
  const int per_device = static_cast<int>(outage_s * rate) / kBatchReadings;  // whole batches
  const int64_t step_us = static_cast<int64_t>(1e6 / rate * kSensorsPerDevice);
  const int64_t base_us = absl::ToUnixMicros(absl::Now() - absl::GetFlag(FLAGS_outage));
  std::vector<std::unique_ptr<Spool>> spools;
  std::vector<std::string> dirs;
  for (int d = 0; d < kDevices; ++d) {
    SpoolOptions o;
    o.directory = FreshDir(absl::StrCat("fleet-", d));
    o.sync = SpoolOptions::Sync::kInterval;
    dirs.push_back(o.directory);
    auto spool = Spool::Open(o);
    DieUnlessOk(spool.status(), "spool");
    for (int b = 0; b < per_device; ++b) {
      auto batch = DeviceBatch(absl::StrCat(prefix, d), int64_t{b} * kBatchReadings, base_us,
                               step_us);
      DieUnlessOk((*spool)->Append(batch, "", absl::Now() + absl::Minutes(1)).status(), "fill");
    }
    spools.push_back(*std::move(spool));
  }
  *readings = int64_t{kDevices} * per_device * kBatchReadings;

  auto gateway = f.StartGateway();
  const absl::Time start = absl::Now();
  std::vector<std::unique_ptr<SpooledStream>> streams;
  for (int d = 0; d < kDevices; ++d) {
    client::SpooledStreamOptions o;
    o.start_jitter = absl::Seconds(3);
    o.max_readings_per_second = paced_rate;
    streams.push_back(std::make_unique<SpooledStream>(DeviceChannel(gateway->port(), d),
                                                      spools[d].get(), o));
  }
  // Drained when every spool is empty (polled; the streams' Close, one by
  // one, would add each stream's ending to the figure).
  const absl::Time give_up = start + absl::Minutes(10);
  auto pending = [&] {
    uint64_t n = 0;
    for (const auto& spool : spools) n += spool->stats().pending_batches;
    return n;
  };
  while (pending() > 0 && absl::Now() < give_up) absl::SleepFor(absl::Milliseconds(10));
  const double seconds = absl::ToDoubleSeconds(absl::Now() - start);
  const absl::Time closing = absl::Now();
  for (auto& s : streams) {
    auto stats = s->Close(absl::Minutes(1));
    DieUnlessOk(stats.status(), "drain");
    *resends += stats->resends;
  }
  std::fprintf(stderr, "closing %d streams one by one: %.2f s\n", kDevices,
               absl::ToDoubleSeconds(absl::Now() - closing));
  streams.clear();
  spools.clear();
  for (const auto& d : dirs) std::filesystem::remove_all(d);
  gateway->Shutdown(absl::Seconds(5));
  f.ExpectStored(prefix, *readings);
  return seconds;
}

void SpoolAlonePart(int reps) {
  std::vector<telemetry::v1::ReadingBatch> data;
  const int64_t base_us = absl::ToUnixMicros(absl::Now());
  for (int b = 0; b < absl::GetFlag(FLAGS_spool_batches); ++b) {
    data.push_back(DeviceBatch("alone", int64_t{b} * kBatchReadings, base_us, 1000));
  }
  const double batch_mb = static_cast<double>(data[0].ByteSizeLong()) / 1e6;
  const SpoolOptions::Sync policies[] = {SpoolOptions::Sync::kEveryBatch,
                                         SpoolOptions::Sync::kInterval,
                                         SpoolOptions::Sync::kNone};
  std::vector<double> alone[3];
  for (int r = 0; r < reps; ++r) {
    for (int p = 0; p < 3; ++p) {
      alone[p].push_back(SpoolAlone(policies[p], data));
    }
  }
  std::printf("1. Spool alone: %zu batches of %d readings (%.1f KB each) under %s, median of "
              "%d\n",
              data.size(), kBatchReadings, batch_mb * 1000, absl::GetFlag(FLAGS_dir).c_str(),
              reps);
  std::printf("  %-14s %12s %14s %10s %10s\n", "sync", "batches/s", "readings/s", "MB/s",
              "vs none");
  const double none_rate = data.size() / Median(alone[2]);
  for (int p = 0; p < 3; ++p) {
    const double per_s = data.size() / Median(alone[p]);
    std::printf("  %-14s %12.0f %14.0f %10.1f %10.2f\n", SyncName(policies[p]), per_s,
                per_s * kBatchReadings, per_s * batch_mb, per_s / none_rate);
  }
}

void EndToEndPart(const Fixture& f, int reps) {
  const int batches = absl::GetFlag(FLAGS_e2e_batches);
  const Path paths[] = {Path::kDirect, Path::kSpoolEveryBatch, Path::kSpoolInterval};
  const char* path_names[] = {"BatchStream, no spool", "spool, sync every batch",
                              "spool, sync every 100 ms"};
  std::vector<double> e2e[3];
  for (int r = 0; r < reps; ++r) {
    for (int p = 0; p < 3; ++p) {
      e2e[p].push_back(EndToEnd(f, paths[p], batches, absl::StrCat("e2e-", r, "-", p, "-d")));
    }
  }
  std::printf("\n2. End to end, 4 devices, %d batches of %d readings into the gateway "
              "(dedupe on), median of %d\n",
              batches, kBatchReadings, reps);
  // The ratio is the median of each round's own ratio: a round's variants
  // ran back to back, so they share that moment's noise.
  std::printf("  %-26s %14s %10s\n", "path", "readings/s", "vs direct");
  for (int p = 0; p < 3; ++p) {
    std::vector<double> ratios;
    for (int r = 0; r < reps; ++r) ratios.push_back(e2e[0][r] / e2e[p][r]);
    std::printf("  %-26s %14.0f %10.2f\n", path_names[p],
                batches * kBatchReadings / Median(e2e[p]), Median(ratios));
  }
}

void ReplayPart(const Fixture& f, int reps) {
  const double paced = absl::GetFlag(FLAGS_paced_rate);
  std::vector<double> unpaced_s, paced_s;
  int64_t readings = 0;
  uint64_t unpaced_resends = 0, paced_resends = 0;
  for (int r = 0; r < reps; ++r) {
    unpaced_s.push_back(
        Replay(f, 0, absl::StrCat("fleet-", r, "-u-d"), &readings, &unpaced_resends));
    paced_s.push_back(
        Replay(f, paced, absl::StrCat("fleet-", r, "-p-d"), &readings, &paced_resends));
  }
  std::printf("\n3. Replay: 100 devices back after %s away (%.0f readings/s each: %lld "
              "readings spooled), start jitter 3 s, median of %d\n",
              absl::FormatDuration(absl::GetFlag(FLAGS_outage)).c_str(),
              absl::GetFlag(FLAGS_device_rate), static_cast<long long>(readings), reps);
  std::printf("  %-32s %10s %14s %16s\n", "sender", "drain s", "readings/s",
              "resent/run");
  std::printf("  %-32s %10.1f %14.0f %16.0f\n", "unpaced", Median(unpaced_s),
              readings / Median(unpaced_s), static_cast<double>(unpaced_resends) / reps);
  std::printf("  %-32s %10.1f %14.0f %16.0f\n",
              absl::StrCat("paced, ", paced, " readings/s/device").c_str(), Median(paced_s),
              readings / Median(paced_s), static_cast<double>(paced_resends) / reps);
  std::printf("  (the outage itself lasted %.0f s: the backlog drains %.0fx faster than it "
              "built up, unpaced)\n",
              absl::ToDoubleSeconds(absl::GetFlag(FLAGS_outage)),
              absl::ToDoubleSeconds(absl::GetFlag(FLAGS_outage)) / Median(unpaced_s));
}

int Run() {
  const int reps = absl::GetFlag(FLAGS_reps);
  const std::string parts = absl::GetFlag(FLAGS_parts);
  if (absl::StrContains(parts, '1')) SpoolAlonePart(reps);
  if (!absl::StrContains(parts, '2') && !absl::StrContains(parts, '3')) return 0;
  std::fprintf(stderr, "starting private PostgreSQL and Redis on loopback...\n");
  Fixture f;
  static_cast<BenchStack&>(f) = StartBenchStack({});
  if (absl::StrContains(parts, '2')) EndToEndPart(f, reps);
  if (absl::StrContains(parts, '3')) ReplayPart(f, reps);
  return 0;
}

}  // namespace
}  // namespace telemetry::load

int main(int argc, char** argv) {
  telemetry::DisableMutexDeadlockDetection();  // measure what production runs
  absl::ParseCommandLine(argc, argv);
  return telemetry::load::Run();
}
