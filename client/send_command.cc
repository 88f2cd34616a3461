#include "client/send_command.h"

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "client/channel_flags.h"
#include "client/connect_check.h"
#include "client/csv_readings.h"
#include "client/edge_agent.h"
#include "client/progress.h"
#include "client/telemetry_client.h"
#include "storage/util/mutex.h"

namespace telemetry::client {
namespace {

int Fail(absl::string_view message, int code = 1) {
  std::cerr << "telemetryctl: " << message << "\n";
  return code;
}

// Which CSV line each reading of a batch came from, so that the gateway's
// per-reading rejections (batch key + index) are reported by line.
// Thread-safe: acks arrive on gRPC's threads.
class LineMap {
 public:
  void Remember(const std::string& key, std::vector<uint64_t> lines) {
    MutexLock lock(&mu_);
    lines_.try_emplace(key, std::move(lines));  // an identical batch maps the same
  }
  void Reject(const std::string& key, uint32_t index, const std::string& reason) {
    MutexLock lock(&mu_);
    auto it = lines_.find(key);
    uint64_t line = it != lines_.end() && index < it->second.size() ? it->second[index] : 0;
    rejections_.emplace_back(line, reason);
  }
  void Forget(const std::string& key) {
    MutexLock lock(&mu_);
    lines_.erase(key);
  }
  std::vector<std::pair<uint64_t, std::string>> TakeRejections() {
    MutexLock lock(&mu_);
    return std::move(rejections_);
  }

 private:
  Mutex mu_;
  std::map<std::string, std::vector<uint64_t>> lines_ ABSL_GUARDED_BY(mu_);
  std::vector<std::pair<uint64_t, std::string>> rejections_ ABSL_GUARDED_BY(mu_);
};

void Report(const char* what, std::vector<std::pair<uint64_t, std::string>> items,
            size_t max_reported) {
  std::sort(items.begin(), items.end());
  for (size_t i = 0; i < items.size() && i < max_reported; ++i) {
    std::cerr << "line " << items[i].first << ": " << what << ": " << items[i].second << "\n";
  }
  if (items.size() > max_reported) {
    std::cerr << "... and " << items.size() - max_reported << " more " << what
              << " lines not listed\n";
  }
}

}  // namespace

int RunSend(const SendOptions& options) {
  std::ifstream file_stream;
  std::istream* in = &std::cin;
  uint64_t file_size = 0;
  if (options.file != "-") {
    file_stream.open(options.file, std::ios::binary);
    if (!file_stream) return Fail(absl::StrCat("cannot open ", options.file), 2);
    std::error_code ec;
    file_size = std::filesystem::file_size(options.file, ec);
    if (ec) file_size = 0;
    in = &file_stream;
  }
  std::vector<std::string> cells;
  if (!ReadCsvRecord(*in, &cells)) return Fail("the CSV input is empty", 2);
  auto parser = CsvReadingParser::Create(cells);
  if (!parser.ok()) return Fail(absl::StrCat("line 1: ", parser.status().message()), 2);

  auto channel = OpenChannelFromFlags(options.target);
  if (!channel.ok()) return Fail(channel.status().message(), 2);
  // Fail fast on a wrong address, a stopped gateway or a TLS mismatch; once
  // connected, the stream retries through outages as a device does.
  if (absl::Status s = CheckReachable(*channel, options.target, options.connect_timeout);
      !s.ok()) {
    return Fail(s.message());
  }

  // Declared before the stream, which calls into them until it is destroyed.
  LineMap lines;
  std::atomic<uint64_t> stored{0};
  ProgressLine progress("sent", "stored", options.progress);
  BatchStream stream(*channel, {}, [&](const telemetry::v1::BatchAck& ack) {
    for (const auto& r : ack.rejections()) {
      lines.Reject(ack.idempotency_key(), r.index(), r.reason());
    }
    lines.Forget(ack.idempotency_key());
    const uint64_t n = uint64_t{ack.accepted()} + ack.duplicates();
    progress.SetSecondary(stored.fetch_add(n, std::memory_order_relaxed) + n);
  });

  telemetry::v1::ReadingBatch batch;
  std::vector<uint64_t> batch_lines;
  std::vector<std::pair<uint64_t, std::string>> unparsable;
  uint64_t line = 1, sent = 0;
  auto flush = [&]() -> absl::Status {
    if (batch.readings_size() == 0) return absl::OkStatus();
    // A key derived from the content makes re-sending the same file a no-op.
    batch.set_idempotency_key(ContentKey(batch));
    lines.Remember(batch.idempotency_key(), std::move(batch_lines));
    batch_lines.clear();
    sent += static_cast<uint64_t>(batch.readings_size());
    progress.Add(static_cast<uint64_t>(batch.readings_size()));
    if (file_size > 0) {
      const auto pos = file_stream.tellg();
      if (pos >= 0) progress.SetFraction(static_cast<double>(pos) / static_cast<double>(file_size));
    }
    absl::Status s = stream.Send(std::move(batch));
    batch = telemetry::v1::ReadingBatch();
    return s;
  };
  while (ReadCsvRecord(*in, &cells)) {
    ++line;
    const uint64_t first_line = line;
    for (const std::string& c : cells) line += static_cast<uint64_t>(std::count(c.begin(), c.end(), '\n'));
    if (cells.size() == 1 && cells[0].empty()) continue;  // blank line
    auto reading = parser->Parse(cells);
    if (!reading.ok()) {
      unparsable.emplace_back(first_line, std::string(reading.status().message()));
      continue;
    }
    *batch.add_readings() = *std::move(reading);
    batch_lines.push_back(first_line);
    if (static_cast<size_t>(batch.readings_size()) >= options.batch_size) {
      if (absl::Status s = flush(); !s.ok()) {
        progress.Stop();
        return Fail(absl::StrCat("the gateway refused the stream: ", s.ToString()));
      }
    }
  }
  if (file_size > 0) progress.SetFraction(1);  // tellg() fails once at the end
  absl::Status last = flush();
  auto stats = last.ok() ? stream.Close(options.timeout) : absl::StatusOr<StreamStats>(last);
  progress.Stop();
  const size_t unparsable_count = unparsable.size();
  Report("unparsable", std::move(unparsable), options.max_reported);
  Report("rejected", lines.TakeRejections(), options.max_reported);
  if (!stats.ok()) {
    return Fail(stats.status().code() == absl::StatusCode::kDeadlineExceeded
                    ? absl::StrCat("not every batch was acknowledged within --timeout=",
                                   absl::FormatDuration(options.timeout), " (", sent,
                                   " readings sent); send the file again: what was stored "
                                   "is answered as duplicates")
                    : absl::StrCat("the gateway refused the stream: ", stats.status().ToString()));
  }
  std::cout << "sent " << sent << " readings: " << stats->accepted << " accepted, "
            << stats->duplicates << " duplicates, " << stats->rejected << " rejected, "
            << unparsable_count << " unparsable lines\n";
  for (const auto& f : stats->failed) {
    std::cerr << "batch " << f.idempotency_key() << " failed: "
              << StatusCodeName(static_cast<grpc::StatusCode>(f.status_code())) << ": "
              << f.status_message() << " [request_id=" << f.correlation_id() << "]\n";
  }
  return (stats->failed.empty() && unparsable_count == 0 && stats->rejected == 0) ? 0 : 1;
}

int RunSpooledSend(const SendOptions& options, const std::string& spool_directory) {
  EdgeAgentOptions agent;
  agent.program_name = "telemetryctl send";
  agent.target = options.target;
  agent.input = options.file;
  agent.batch_size = options.batch_size;
  agent.spool.directory = spool_directory;
  // One operator's run, not a fleet coming back at once: no start jitter.
  agent.stream.start_jitter = absl::ZeroDuration();
  agent.drain_timeout = options.timeout;
  agent.progress_interval = options.progress ? absl::Seconds(2) : absl::ZeroDuration();
  return RunEdgeAgent(agent);
}

}  // namespace telemetry::client
