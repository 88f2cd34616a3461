#include "server/common/credentials.h"
#include "storage/util/mutex.h"

#include <grpcpp/server_context.h>
#include <openssl/evp.h>
#include <sys/random.h>

#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/strip.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "server/common/transport_security.h"
#include "storage/pg/connection.h"

namespace telemetry {

std::string Sha256Hex(absl::string_view text) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_Digest(text.data(), text.size(), digest, &length, EVP_sha256(), nullptr);
  return absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(digest), length));
}

absl::StatusOr<std::string> NewBearerToken() {
  char bytes[32];
  size_t got = 0;
  while (got < sizeof(bytes)) {
    ssize_t n = getrandom(bytes + got, sizeof(bytes) - got, 0);
    if (n < 0) return absl::InternalError("getrandom failed");
    got += static_cast<size_t>(n);
  }
  std::string token;
  absl::WebSafeBase64Escape(absl::string_view(bytes, sizeof(bytes)), &token);
  return token;
}

std::string BearerTokenOf(const grpc::ServerContextBase& context) {
  const auto& metadata = context.client_metadata();
  auto it = metadata.find("authorization");
  if (it == metadata.end()) return "";
  absl::string_view value(it->second.data(), it->second.size());
  if (!absl::ConsumePrefix(&value, "Bearer ")) return "";
  return std::string(value);
}

bool DeviceIdentity::MayWrite(absl::string_view sensor_id) const {
  for (const std::string& p : sensor_patterns) {
    if (!p.empty() && p.back() == '*') {
      if (absl::StartsWith(sensor_id, absl::string_view(p).substr(0, p.size() - 1))) return true;
    } else if (p == sensor_id) {
      return true;
    }
  }
  return false;
}

namespace {

class DatabaseSource final : public CredentialSource {
 public:
  explicit DatabaseSource(std::string url) : url_(std::move(url)) {}

  absl::StatusOr<Snapshot> Load() override {
    if (conn_ == nullptr || !conn_->healthy()) {
      auto conn = pg::Connection::Open(url_);
      if (!conn.ok()) return conn.status();
      conn_ = *std::move(conn);
    }
    Snapshot snap;
    // One row per pattern (none: one row with NULL), so no array parsing.
    auto devices = conn_->Query(
        "SELECT d.device_id, coalesce(encode(d.token_sha256, 'hex'), ''), p "
        "FROM device_credentials d LEFT JOIN LATERAL unnest(d.sensor_patterns) p ON true "
        "WHERE d.revoked_at IS NULL ORDER BY d.device_id");
    if (devices.ok()) {
      std::shared_ptr<DeviceIdentity> current;
      std::string digest;
      auto publish = [&] {
        if (current == nullptr) return;
        if (!digest.empty()) snap.devices_by_token[digest] = current;
        snap.devices_by_id[current->device_id] = current;
      };
      for (int i = 0; i < devices->rows(); ++i) {
        if (current == nullptr || current->device_id != devices->Get(i, 0)) {
          publish();
          current = std::make_shared<DeviceIdentity>();
          current->device_id = std::string(devices->Get(i, 0));
          digest = std::string(devices->Get(i, 1));
        }
        if (!devices->IsNull(i, 2)) current->sensor_patterns.emplace_back(devices->Get(i, 2));
      }
      publish();
    } else if (pg::SqlStateOf(devices.status()) != "42501") {  // not "no privilege"
      return devices.status();
    }
    auto api = conn_->Query(
        "SELECT encode(token_sha256, 'hex'), name, scope FROM api_tokens "
        "WHERE revoked_at IS NULL");
    if (api.ok()) {
      for (int i = 0; i < api->rows(); ++i) {
        snap.api_by_token[std::string(api->Get(i, 0))] =
            ApiIdentity{std::string(api->Get(i, 1)),
                        api->Get(i, 2) == "admin" ? ApiScope::kAdmin : ApiScope::kRead};
      }
    } else if (pg::SqlStateOf(api.status()) != "42501") {
      return api.status();
    }
    return snap;
  }

 private:
  const std::string url_;
  std::unique_ptr<pg::Connection> conn_;  // used by one Load at a time
};

}  // namespace

std::unique_ptr<CredentialSource> DatabaseCredentialSource(std::string database_url) {
  return std::make_unique<DatabaseSource>(std::move(database_url));
}

CredentialStore::CredentialStore(std::unique_ptr<CredentialSource> source,
                                 absl::Duration refresh)
    : source_(std::move(source)), refresh_(refresh) {}

absl::StatusOr<std::shared_ptr<const CredentialSource::Snapshot>> CredentialStore::Current(
    bool force_if_allowed) {
  const absl::Time now = absl::Now();
  {
    MutexLock lock(&mu_);
    bool reload = snapshot_ == nullptr || now - loaded_at_ >= refresh_;
    if (!reload && force_if_allowed && now - last_forced_ >= absl::Seconds(1)) {
      last_forced_ = now;
      reload = true;
    }
    if (!reload) return snapshot_;
    if (loading_) {
      // Another call is querying the database. Serve the last snapshot
      // rather than queue every call behind that query (which, with the
      // database away, can take its whole connect timeout); only the very
      // first load is waited for.
      if (snapshot_ != nullptr) return snapshot_;
      auto done = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return !loading_; };
      mu_.Await(absl::Condition(&done));
      if (snapshot_ != nullptr) return snapshot_;
      return absl::UnavailableError("credentials cannot be loaded");
    }
    loading_ = true;
  }
  auto snap = source_->Load();  // outside the lock
  MutexLock lock(&mu_);
  loading_ = false;
  if (snap.ok()) {
    snapshot_ = std::make_shared<const CredentialSource::Snapshot>(*std::move(snap));
    loaded_at_ = now;
  } else {
    // Keep serving the last good snapshot while the database is away, and
    // try again in a second, not on every call.
    loaded_at_ = now - refresh_ + absl::Seconds(1);
    if (snapshot_ == nullptr) {
      return absl::UnavailableError(
          absl::StrCat("credentials cannot be loaded: ", snap.status().message()));
    }
  }
  return snapshot_;
}

absl::StatusOr<std::shared_ptr<const DeviceIdentity>> CredentialStore::AuthenticateDevice(
    const grpc::ServerContextBase& context) {
  const std::string cn = PeerCertificateName(context);
  const std::string token = BearerTokenOf(context);
  if (cn.empty() && token.empty()) {
    return absl::UnauthenticatedError(
        "no credentials: send \"authorization: Bearer <device token>\" or a client certificate");
  }
  const std::string digest = token.empty() ? "" : Sha256Hex(token);
  for (bool force : {false, true}) {
    auto snap = Current(force);
    if (!snap.ok()) return snap.status();
    if (!cn.empty()) {
      auto it = (*snap)->devices_by_id.find(cn);
      if (it != (*snap)->devices_by_id.end()) return it->second;
    }
    if (!digest.empty()) {
      auto it = (*snap)->devices_by_token.find(digest);
      if (it != (*snap)->devices_by_token.end()) return it->second;
    }
  }
  return absl::UnauthenticatedError(
      !cn.empty() ? absl::StrCat("client certificate '", cn, "' is not a registered device")
                  : "unknown or revoked device token");
}

absl::StatusOr<ApiIdentity> CredentialStore::AuthorizeApi(
    const grpc::ServerContextBase& context, ApiScope needed) {
  const std::string token = BearerTokenOf(context);
  if (token.empty()) {
    return absl::UnauthenticatedError(
        "no credentials: send \"authorization: Bearer <API token>\"");
  }
  const std::string digest = Sha256Hex(token);
  for (bool force : {false, true}) {
    auto snap = Current(force);
    if (!snap.ok()) return snap.status();
    auto it = (*snap)->api_by_token.find(digest);
    if (it == (*snap)->api_by_token.end()) continue;
    if (it->second.scope < needed) {
      return absl::PermissionDeniedError(absl::StrCat(
          "token '", it->second.name, "' has scope read; this call needs scope admin"));
    }
    return it->second;
  }
  return absl::UnauthenticatedError("unknown or revoked API token");
}

}  // namespace telemetry
