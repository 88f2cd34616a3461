#include "client/progress.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"

namespace telemetry::client {

std::string GroupDigits(uint64_t n) {
  std::string digits = absl::StrCat(n);
  std::string out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

bool ProgressLine::StderrIsTerminal() {
  const char* term = std::getenv("TERM");
  return isatty(STDERR_FILENO) == 1 && (term == nullptr || std::strcmp(term, "dumb") != 0);
}

ProgressLine::ProgressLine(std::string what, std::string secondary, bool enabled)
    : what_(std::move(what)), start_(absl::Now()), secondary_label_(std::move(secondary)) {
  if (!enabled) {
    stop_.Notify();
    return;
  }
  thread_ = std::thread([this] {
    do {
      Draw();  // at once, then every 250 ms
    } while (!stop_.WaitForNotificationWithTimeout(absl::Milliseconds(250)));
  });
}

ProgressLine::~ProgressLine() { Stop(); }

void ProgressLine::Stop() {
  if (!thread_.joinable()) return;
  stop_.Notify();
  thread_.join();
  Draw();  // the final figures stay on screen, above the summary
  std::fputs("\n", stderr);
  std::fflush(stderr);
}

void ProgressLine::Draw() {
  const double elapsed = absl::ToDoubleSeconds(absl::Now() - start_);
  const uint64_t rows = rows_.load(std::memory_order_relaxed);
  std::string line = absl::StrFormat("%s %s", what_, GroupDigits(rows));
  if (!secondary_label_.empty()) {
    absl::StrAppend(&line, ", ", secondary_label_, " ",
                    GroupDigits(secondary_.load(std::memory_order_relaxed)));
  }
  if (elapsed > 0) {
    absl::StrAppend(&line, "  ", GroupDigits(static_cast<uint64_t>(rows / elapsed)), " rows/s");
  }
  absl::StrAppend(&line, absl::StrFormat("  %.1f s", elapsed));
  const double fraction = fraction_.load(std::memory_order_relaxed);
  if (fraction >= 0) {
    absl::StrAppend(&line, absl::StrFormat("  %.0f%%", fraction * 100));
    if (fraction > 0.01 && fraction < 1) {
      absl::StrAppend(&line, absl::StrFormat("  ETA %.0f s", elapsed * (1 - fraction) / fraction));
    }
  }
  std::fprintf(stderr, "\r\033[K%s", line.c_str());
  std::fflush(stderr);
}

}  // namespace telemetry::client
