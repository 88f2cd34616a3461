// The metrics port's HTTP server on loopback: /metrics is the exposition of
// every registered collectable, a page is served at its path only, "/"
// leads to the status page, anything else is 404, and a port in use is an
// error at start.
#include "server/common/metrics_http_server.h"

#include <gtest/gtest.h>
#include <prometheus/counter.h>
#include <prometheus/registry.h>

#include <atomic>

#include "absl/strings/match.h"
#include "storage/local/http_get.h"

namespace telemetry {
namespace {

using local::HttpFetch;

TEST(MetricsHttpServerTest, ServesTheCollectablesAndThePages) {
  auto registry = std::make_shared<prometheus::Registry>();
  prometheus::BuildCounter().Name("demo_total").Help("d").Register(*registry).Add({}).Increment(3);
  auto second = std::make_shared<prometheus::Registry>();
  prometheus::BuildCounter().Name("other_total").Help("o").Register(*second).Add({});
  std::atomic<int> renders{0};
  MetricsHttpOptions o;
  o.address = "127.0.0.1:0";
  o.collectables = {registry, second};
  o.pages.push_back({"/status", "text/html; charset=utf-8", [&renders] {
                       ++renders;
                       return std::string("<p>up</p>");
                     }});
  auto server = MetricsHttpServer::Start(o);
  ASSERT_TRUE(server.ok()) << server.status();
  const int port = (*server)->port();
  ASSERT_GT(port, 0);

  auto metrics = HttpFetch(port, "/metrics");
  ASSERT_TRUE(metrics.ok()) << metrics.status();
  EXPECT_EQ(metrics->status, 200);
  EXPECT_TRUE(absl::StrContains(metrics->headers, "Content-Type: text/plain; version=0.0.4"))
      << metrics->headers;
  EXPECT_TRUE(absl::StrContains(metrics->body, "demo_total 3")) << metrics->body;
  EXPECT_TRUE(absl::StrContains(metrics->body, "other_total 0")) << metrics->body;

  auto status = HttpFetch(port, "/status");
  ASSERT_TRUE(status.ok()) << status.status();
  EXPECT_EQ(status->status, 200);
  EXPECT_TRUE(absl::StrContains(status->headers, "Content-Type: text/html")) << status->headers;
  EXPECT_EQ(status->body, "<p>up</p>");
  EXPECT_EQ(renders.load(), 1);

  auto root = HttpFetch(port, "/");
  ASSERT_TRUE(root.ok()) << root.status();
  EXPECT_EQ(root->status, 302);
  EXPECT_TRUE(absl::StrContains(root->headers, "Location: /status")) << root->headers;

  for (const char* path : {"/nope", "/status/x", "/metricsx", "/metrics/"}) {
    auto missing = HttpFetch(port, path);
    ASSERT_TRUE(missing.ok()) << missing.status();
    EXPECT_EQ(missing->status, 404) << path;
  }
  EXPECT_EQ(renders.load(), 1);
}

TEST(MetricsHttpServerTest, ACollectableGoneIsLeftOutNotACrash) {
  auto registry = std::make_shared<prometheus::Registry>();
  prometheus::BuildCounter().Name("gone_total").Help("g").Register(*registry).Add({});
  MetricsHttpOptions o;
  o.address = "127.0.0.1:0";
  o.collectables = {registry};
  auto server = MetricsHttpServer::Start(o);
  ASSERT_TRUE(server.ok()) << server.status();
  registry.reset();
  auto metrics = HttpFetch((*server)->port(), "/metrics");
  ASSERT_TRUE(metrics.ok()) << metrics.status();
  EXPECT_EQ(metrics->status, 200);
  EXPECT_FALSE(absl::StrContains(metrics->body, "gone_total"));
}

TEST(MetricsHttpServerTest, APortInUseIsUnavailableAtStart) {
  MetricsHttpOptions o;
  o.address = "127.0.0.1:0";
  auto first = MetricsHttpServer::Start(o);
  ASSERT_TRUE(first.ok()) << first.status();
  o.address = "127.0.0.1:" + std::to_string((*first)->port());
  auto second = MetricsHttpServer::Start(o);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kUnavailable) << second.status();
  EXPECT_TRUE(absl::StrContains(second.status().message(), o.address)) << second.status();
}

}  // namespace
}  // namespace telemetry
