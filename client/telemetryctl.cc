// telemetryctl: the operator's command line.
//
//   telemetryctl migrate apply|status|down [--to=N]   (DATABASE_URL)
//   telemetryctl send [--file=readings.csv|-]        (INGEST_ADDRESS)
//   telemetryctl latest|range|summary|drift|jobs|chunks|refresh   (READ_ADDRESS)
#include <grpcpp/grpcpp.h>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>

#include "absl/flags/declare.h"
#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "client/channel_flags.h"
#include "client/csv_readings.h"
#include "client/read_commands.h"
#include "client/telemetry_client.h"
#include "server/admin/credential_commands.h"
#include "server/admin/migrate_command.h"
#include "server/common/flags_env.h"
#include "storage/util/mutex.h"

ABSL_FLAG(std::string, database_url, "",
          "migrate, device, token: PostgreSQL conninfo or URI (env DATABASE_URL)");
ABSL_FLAG(std::string, storage_mode, "auto",
          "migrate apply on a fresh database: native, timescale or auto");
ABSL_FLAG(std::string, chunk_interval, "1 day", "timescale: chunk interval");
ABSL_FLAG(std::string, compress_after, "7 days",
          "timescale: compress chunks older than this");
ABSL_FLAG(std::string, retention, "180 days",
          "timescale: drop chunks older than this");
ABSL_FLAG(int, to, 0, "migrate down: the version to go back to");
ABSL_FLAG(bool, mtls, false, "device add: no token; the device authenticates by certificate");
ABSL_FLAG(std::string, scope, "read", "token add: read or admin");
ABSL_DECLARE_FLAG(std::string, sensors);  // read_commands.cc; device add uses it too
ABSL_FLAG(std::string, target, "",
          "gateway address (env INGEST_ADDRESS; default 127.0.0.1:50051)");
ABSL_FLAG(std::string, file, "-", "send: CSV file to read, - for stdin");
ABSL_FLAG(int, batch_size, 1000, "send: readings per batch");
ABSL_FLAG(absl::Duration, timeout, absl::Minutes(5),
          "send: give up on unacknowledged batches after this long");

namespace {

using telemetry::FlagOrEnv;

constexpr const char* kUsage = R"(telemetryctl: operate telemetry-gateway.

Commands:
  send [--file=F]    stream CSV readings (header: sensor_id,timestamp,value
                     [,sensor_type,unit,quality,metadata]) to the gateway

Connection settings come from flags or DATABASE_URL / INGEST_ADDRESS.)";

int Fail(const absl::Status& s) {
  std::cerr << "telemetryctl: " << s.message() << "\n";
  return 1;
}

int Send() {
  std::string target =
      FlagOrEnv(FLAGS_target, "INGEST_ADDRESS", "127.0.0.1:50051");
  std::string file = absl::GetFlag(FLAGS_file);
  std::ifstream file_stream;
  std::istream* in = &std::cin;
  if (file != "-") {
    file_stream.open(file);
    if (!file_stream) {
      return Fail(absl::NotFoundError(absl::StrCat("cannot open ", file)));
    }
    in = &file_stream;
  }
  std::vector<std::string> cells;
  if (!telemetry::client::ReadCsvRecord(*in, &cells)) {
    return Fail(absl::InvalidArgumentError("the CSV input is empty"));
  }
  auto parser = telemetry::client::CsvReadingParser::Create(cells);
  if (!parser.ok()) return Fail(parser.status());

  auto channel = telemetry::client::OpenChannelFromFlags(target);
  if (!channel.ok()) return Fail(channel.status());
  int shown = 0;
  telemetry::client::BatchStream stream(
      *channel, {},
      [&shown](const telemetry::v1::BatchAck& ack) {
        for (const auto& r : ack.rejections()) {
          if (shown++ < 20) {
            std::cerr << "rejected: batch " << ack.idempotency_key()
                      << " reading " << r.index() << ": " << r.reason() << "\n";
          }
        }
      });
  const size_t batch_size = static_cast<size_t>(std::max(1, absl::GetFlag(FLAGS_batch_size)));
  telemetry::v1::ReadingBatch batch;
  uint64_t line = 1, parse_errors = 0, sent = 0;
  auto flush = [&]() -> absl::Status {
    if (batch.readings_size() == 0) return absl::OkStatus();
    // A key derived from the content makes re-sending the same file a no-op.
    batch.set_idempotency_key(telemetry::client::ContentKey(batch));
    sent += static_cast<uint64_t>(batch.readings_size());
    absl::Status s = stream.Send(std::move(batch));
    batch = telemetry::v1::ReadingBatch();
    return s;
  };
  while (telemetry::client::ReadCsvRecord(*in, &cells)) {
    ++line;
    if (cells.size() == 1 && cells[0].empty()) continue;  // blank line
    auto reading = parser->Parse(cells);
    if (!reading.ok()) {
      ++parse_errors;
      std::cerr << "line " << line << ": " << reading.status().message() << "\n";
      continue;
    }
    *batch.add_readings() = *std::move(reading);
    if (static_cast<size_t>(batch.readings_size()) >= batch_size) {
      if (absl::Status s = flush(); !s.ok()) return Fail(s);
    }
  }
  if (absl::Status s = flush(); !s.ok()) return Fail(s);
  auto stats = stream.Close(absl::GetFlag(FLAGS_timeout));
  if (!stats.ok()) return Fail(stats.status());
  std::cout << "sent " << sent << " readings: " << stats->accepted
            << " accepted, " << stats->duplicates << " duplicates, "
            << stats->rejected << " rejected, " << parse_errors
            << " unparsable lines\n";
  for (const auto& f : stats->failed) {
    std::cerr << "batch " << f.idempotency_key() << " failed: " << f.status_message()
              << " [request_id=" << f.correlation_id() << "]\n";
  }
  return (stats->failed.empty() && parse_errors == 0 && stats->rejected == 0) ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  telemetry::DisableMutexDeadlockDetection();
  const std::string usage =
      std::string(kUsage) + "\n" + telemetry::client::kReadCommandsUsage + "\n" +
      telemetry::admin::kMigrateCommandsUsage + "\n" + telemetry::admin::kCredentialCommandsUsage;
  absl::SetProgramUsageMessage(usage);
  std::vector<char*> args = absl::ParseCommandLine(argc, argv);
  if (args.size() >= 3 && std::string(args[1]) == "migrate") {
    telemetry::admin::MigrateCommandOptions o;
    o.database_url = FlagOrEnv(FLAGS_database_url, "DATABASE_URL");
    o.storage_mode = absl::GetFlag(FLAGS_storage_mode);
    o.chunk_interval = absl::GetFlag(FLAGS_chunk_interval);
    o.compress_after = absl::GetFlag(FLAGS_compress_after);
    o.retention = absl::GetFlag(FLAGS_retention);
    o.down_to = absl::GetFlag(FLAGS_to);
    return telemetry::admin::RunMigrateCommand(args[2], o);
  }
  if (args.size() >= 2 && std::string(args[1]) == "send") return Send();
  if (args.size() >= 3) {
    telemetry::admin::CredentialCommandOptions o;
    o.database_url = FlagOrEnv(FLAGS_database_url, "DATABASE_URL");
    o.sensors = absl::GetFlag(FLAGS_sensors);
    o.mtls = absl::GetFlag(FLAGS_mtls);
    o.scope = absl::GetFlag(FLAGS_scope);
    int rc = telemetry::admin::RunCredentialCommand(
        std::vector<std::string>(args.begin() + 1, args.end()), o);
    if (rc >= 0) return rc;
  }
  if (args.size() >= 2) {
    int rc = telemetry::client::RunReadCommand(args[1]);
    if (rc >= 0) return rc;
  }
  std::cerr << usage << "\n";
  return 2;
}
