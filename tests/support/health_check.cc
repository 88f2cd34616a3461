#include "tests/support/health_check.h"

#include <grpcpp/generic/generic_stub.h>

#include <vector>

namespace telemetry::testing {

// Request {service}, response {status}, as protobuf bytes.
int HealthStatus(const std::shared_ptr<grpc::Channel>& channel, const std::string& service) {
  grpc::GenericStub stub(channel);
  grpc::CompletionQueue cq;
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  std::string req = std::string(1, '\x0a') +
                    std::string(1, static_cast<char>(service.size())) + service;
  grpc::Slice slice(req);
  grpc::ByteBuffer request(&slice, 1);
  auto call = stub.PrepareUnaryCall(&ctx, "/grpc.health.v1.Health/Check",
                                    request, &cq);
  call->StartCall();
  grpc::ByteBuffer response;
  grpc::Status status;
  call->Finish(&response, &status, reinterpret_cast<void*>(1));
  void* tag;
  bool ok;
  if (!cq.Next(&tag, &ok) || !ok || !status.ok()) return -1;
  std::vector<grpc::Slice> slices;
  (void)response.Dump(&slices);
  std::string bytes;
  for (const auto& s : slices) bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
  cq.Shutdown();
  while (cq.Next(&tag, &ok)) {
  }
  if (bytes.empty()) return 0;  // default value UNKNOWN
  return bytes.size() == 2 && bytes[0] == 0x08 ? bytes[1] : -2;
}

}  // namespace telemetry::testing
