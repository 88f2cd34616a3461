#include "server/common/readiness.h"

#include <memory>
#include <optional>
#include <utility>

#include "server/common/log.h"
#include "storage/pg/connection.h"

namespace telemetry {

DatabaseReadiness::DatabaseReadiness(std::string conninfo, absl::Duration interval,
                                     OnChange on_change)
    : conninfo_(std::move(conninfo)), interval_(interval), on_change_(std::move(on_change)) {
  thread_ = std::thread([this] { Loop(); });
}

DatabaseReadiness::~DatabaseReadiness() {
  stop_.Notify();
  if (thread_.joinable()) thread_.join();
}

void DatabaseReadiness::Loop() {
  std::unique_ptr<pg::Connection> conn;
  std::optional<bool> last;
  do {
    absl::Status probe = absl::OkStatus();
    if (conn == nullptr || !conn->healthy()) {
      auto opened = pg::Connection::Open(conninfo_);
      if (opened.ok()) {
        conn = *std::move(opened);
        (void)conn->Exec("SET statement_timeout = '5s'");
      } else {
        conn.reset();
        probe = opened.status();
      }
    }
    if (conn != nullptr) {
      auto r = conn->Query("SELECT 1");
      if (!r.ok()) {
        probe = r.status();
        conn.reset();  // reconnect next time
      }
    }
    const bool ready = probe.ok();
    if (!last || *last != ready) {
      if (last) {
        Log(ready ? LogLevel::kInfo : LogLevel::kWarning,
            ready ? "database answers again: ready" : "database does not answer: not ready",
            {{"error", std::string(probe.message())}});
      }
      last = ready;
      on_change_(ready);
    }
  } while (!stop_.WaitForNotificationWithTimeout(interval_));
}

}  // namespace telemetry
