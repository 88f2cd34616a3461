// A one-line progress report for long commands (send, range), redrawn in
// place on a terminal every 250 ms: rows, rate, elapsed and, when the total
// is known, the fraction done and an ETA. Silent when stderr is not a
// terminal, so scripts and pipes see only the final summary.
//
// Thread-safe: Add and SetFraction are called by the command's thread, the
// line is drawn by a thread of the reporter's own.
#ifndef TELEMETRY_CLIENT_PROGRESS_H_
#define TELEMETRY_CLIENT_PROGRESS_H_

#include <atomic>
#include <cstdint>
#include <string>
#include <thread>

#include "absl/synchronization/notification.h"
#include "absl/time/time.h"

namespace telemetry::client {

class ProgressLine {
 public:
  // `enabled` false (not a terminal): nothing is drawn. `what` names the
  // rows ("sent", "exported"); `secondary`, when not empty, names a second
  // count shown after them ("acked").
  ProgressLine(std::string what, std::string secondary, bool enabled);
  ~ProgressLine();  // Stop()

  void Add(uint64_t rows) { rows_.fetch_add(rows, std::memory_order_relaxed); }
  // Of the input consumed, in [0, 1]; negative: unknown (no ETA).
  void SetFraction(double fraction) { fraction_.store(fraction, std::memory_order_relaxed); }
  void SetSecondary(uint64_t value) { secondary_.store(value, std::memory_order_relaxed); }
  // Draws the final figures and ends the line; idempotent.
  void Stop();

  // stderr is a terminal and TERM is not "dumb".
  static bool StderrIsTerminal();

 private:
  void Draw();

  const std::string what_;
  const absl::Time start_;
  std::atomic<uint64_t> rows_{0};
  std::atomic<double> fraction_{-1};
  std::atomic<uint64_t> secondary_{0};
  const std::string secondary_label_;
  absl::Notification stop_;
  std::thread thread_;
};

// 1234567 -> "1,234,567".
std::string GroupDigits(uint64_t n);

}  // namespace telemetry::client

#endif  // TELEMETRY_CLIENT_PROGRESS_H_
