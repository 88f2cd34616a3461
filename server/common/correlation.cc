#include "server/common/correlation.h"

#include <random>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace telemetry {
namespace {

bool UsableClientId(absl::string_view id) {
  if (id.empty() || id.size() > 64) return false;
  for (char c : id) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '_' &&
        c != ':' && c != '-') {
      return false;
    }
  }
  return true;
}

std::string RandomId() {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  static constexpr char kHex[] = "0123456789abcdef";
  std::string id(16, '0');
  uint64_t v = rng();
  for (char& c : id) {
    c = kHex[v & 0xf];
    v >>= 4;
  }
  return id;
}

}  // namespace

std::string CallCorrelationId(const grpc::ServerContextBase& context) {
  const auto& metadata = context.client_metadata();
  auto it = metadata.find(kRequestIdHeader);
  if (it != metadata.end()) {
    absl::string_view v(it->second.data(), it->second.size());
    if (UsableClientId(v)) return std::string(v);
  }
  return RandomId();
}

std::string WithCorrelation(absl::string_view message, absl::string_view id) {
  return absl::StrCat(message, " [request_id=", id, "]");
}

}  // namespace telemetry
