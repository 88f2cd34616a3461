#include "server/common/metrics_http_server.h"

#include <CivetServer.h>
#include <prometheus/collectable.h>
#include <prometheus/text_serializer.h>

#include <exception>
#include <utility>

#include "absl/strings/str_cat.h"

namespace telemetry {
namespace {

void Send(mg_connection* conn, const std::string& content_type, const std::string& body) {
  mg_send_http_ok(conn, content_type.c_str(), static_cast<long long>(body.size()));
  mg_write(conn, body.data(), body.size());
}

// The request's path exactly (civetweb also routes "/status/x" to the
// handler of "/status", and everything unmatched to "/").
bool PathIs(mg_connection* conn, const std::string& path) {
  const mg_request_info* info = mg_get_request_info(conn);
  return info != nullptr && info->local_uri != nullptr && path == info->local_uri;
}

bool NotFound(mg_connection* conn) {
  mg_send_http_error(conn, 404, "%s", "Not found: see /status and /metrics\n");
  return true;
}

class MetricsHandler : public CivetHandler {
 public:
  explicit MetricsHandler(const std::vector<std::weak_ptr<prometheus::Collectable>>* collectables)
      : collectables_(*collectables) {}

  bool handleGet(CivetServer*, mg_connection* conn) override {
    if (!PathIs(conn, "/metrics")) return NotFound(conn);
    std::vector<prometheus::MetricFamily> families;
    for (const auto& weak : collectables_) {
      if (auto c = weak.lock()) {
        std::vector<prometheus::MetricFamily> more = c->Collect();
        families.insert(families.end(), std::make_move_iterator(more.begin()),
                        std::make_move_iterator(more.end()));
      }
    }
    Send(conn, "text/plain; version=0.0.4; charset=utf-8",
         prometheus::TextSerializer().Serialize(families));
    return true;
  }

 private:
  const std::vector<std::weak_ptr<prometheus::Collectable>>& collectables_;
};

class PageHandler : public CivetHandler {
 public:
  explicit PageHandler(const HttpPage* page) : page_(*page) {}

  bool handleGet(CivetServer*, mg_connection* conn) override {
    if (!PathIs(conn, page_.path)) return NotFound(conn);
    std::string body;
    try {
      body = page_.render();
    } catch (const std::exception&) {
      mg_send_http_error(conn, 500, "%s", "the page could not be rendered\n");
      return true;
    }
    Send(conn, page_.content_type, body);
    return true;
  }

 private:
  const HttpPage& page_;
};

// "/": redirects to the first page; any other unmatched path is 404.
class RootHandler : public CivetHandler {
 public:
  explicit RootHandler(std::string home) : home_(std::move(home)) {}

  bool handleGet(CivetServer*, mg_connection* conn) override {
    if (!PathIs(conn, "/")) return NotFound(conn);
    mg_send_http_redirect(conn, home_.c_str(), 302);
    return true;
  }

 private:
  const std::string home_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<MetricsHttpServer>> MetricsHttpServer::Start(
    MetricsHttpOptions options) {
  std::unique_ptr<MetricsHttpServer> s(new MetricsHttpServer());
  s->options_ = std::move(options);
  // Handlers first: they refer into options_, which no longer moves.
  s->handlers_.push_back(std::make_unique<MetricsHandler>(&s->options_.collectables));
  for (const HttpPage& page : s->options_.pages) {
    s->handlers_.push_back(std::make_unique<PageHandler>(&page));
  }
  s->handlers_.push_back(std::make_unique<RootHandler>(
      s->options_.pages.empty() ? "/metrics" : s->options_.pages.front().path));
  const std::vector<std::string> civet_options = {
      "listening_ports", s->options_.address,
      // Scrapes and a status page now and then; a slow client cannot hold
      // a thread for longer than the timeout.
      "num_threads", "2", "request_timeout_ms", "10000",
      "enable_keep_alive", "no"};
  try {
    s->server_ = std::make_unique<CivetServer>(civet_options);
  } catch (const std::exception& e) {
    return absl::UnavailableError(
        absl::StrCat("cannot serve metrics on ", s->options_.address, ": ", e.what()));
  }
  size_t next = 0;
  s->server_->addHandler("/metrics", s->handlers_[next++].get());
  for (const HttpPage& page : s->options_.pages) {
    s->server_->addHandler(page.path, s->handlers_[next++].get());
  }
  s->server_->addHandler("/", s->handlers_[next].get());
  std::vector<int> ports = s->server_->getListeningPorts();
  s->port_ = ports.empty() ? 0 : ports.front();
  return s;
}

MetricsHttpServer::~MetricsHttpServer() {
  if (server_) server_->close();  // joins civetweb's threads
}

}  // namespace telemetry
