// The HTTP side of a service's metrics port: /metrics (the Prometheus text
// exposition of the registered collectables) and the pages a service adds
// (its /status page). prometheus-cpp's Exposer serves only collectables, so
// this is the same embedded civetweb with a handler per page.
//
// The port should stay private (cluster network, loopback): the status page
// names devices. Requests are answered on civetweb's own threads, never on
// a gRPC thread; page renderers must be thread-safe and quick (they read
// state the service keeps, they do not query the database).
#ifndef TELEMETRY_SERVER_COMMON_METRICS_HTTP_SERVER_H_
#define TELEMETRY_SERVER_COMMON_METRICS_HTTP_SERVER_H_

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

class CivetServer;
class CivetHandler;

namespace prometheus {
class Collectable;
}

namespace telemetry {

struct HttpPage {
  std::string path;  // exact, e.g. "/status"
  std::string content_type = "text/html; charset=utf-8";
  std::function<std::string()> render;
};

struct MetricsHttpOptions {
  // host:port (port 0: a free one; see port()). IPv6 as "[::1]:9464".
  std::string address;
  // Served at /metrics in this order. Held weakly, as the Exposer did: the
  // owner keeps them alive at least as long as this server.
  std::vector<std::weak_ptr<prometheus::Collectable>> collectables;
  // "/" redirects to the first page.
  std::vector<HttpPage> pages;
};

// Thread-safe; serves from construction until destruction.
class MetricsHttpServer {
 public:
  // Binds and serves; Unavailable when the address cannot be bound.
  static absl::StatusOr<std::unique_ptr<MetricsHttpServer>> Start(MetricsHttpOptions options);
  ~MetricsHttpServer();  // stops serving; no renderer runs after it returns

  MetricsHttpServer(const MetricsHttpServer&) = delete;
  MetricsHttpServer& operator=(const MetricsHttpServer&) = delete;

  int port() const { return port_; }

 private:
  MetricsHttpServer() = default;

  MetricsHttpOptions options_;
  std::vector<std::unique_ptr<CivetHandler>> handlers_;
  std::unique_ptr<CivetServer> server_;  // destroyed first: stops the threads
  int port_ = 0;
};

}  // namespace telemetry

#endif  // TELEMETRY_SERVER_COMMON_METRICS_HTTP_SERVER_H_
