#include "server/common/credentials.h"

#include <grpcpp/server_context.h>
#include <openssl/evp.h>
#include <sys/random.h>

#include <algorithm>
#include <iterator>
#include <limits>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/strip.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "server/common/log.h"
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

absl::string_view BearerTokenFromHeader(absl::string_view value) {
  constexpr absl::string_view kScheme = "bearer";
  if (value.size() <= kScheme.size() ||
      !absl::EqualsIgnoreCase(value.substr(0, kScheme.size()), kScheme) ||
      value[kScheme.size()] != ' ') {
    return "";
  }
  value.remove_prefix(kScheme.size());
  while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
  return value;
}

std::string BearerTokenOf(const grpc::ServerContextBase& context) {
  const auto& metadata = context.client_metadata();
  auto it = metadata.find("authorization");
  if (it == metadata.end()) return "";
  return std::string(BearerTokenFromHeader(absl::string_view(it->second.data(), it->second.size())));
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
  DatabaseSource(std::string url, CredentialTable table) : url_(std::move(url)), table_(table) {}

  absl::StatusOr<Snapshot> Load() override {
    if (conn_ == nullptr || !conn_->healthy()) {
      auto conn = pg::Connection::Open(url_);
      if (!conn.ok()) return conn.status();
      conn_ = *std::move(conn);
    }
    Snapshot snap;
    if (table_ == CredentialTable::kDevices) {
      if (absl::Status s = LoadDevices(&snap); !s.ok()) return s;
    } else if (absl::Status s = LoadApiTokens(&snap); !s.ok()) {
      return s;
    }
    return snap;
  }

 private:
  // A missing privilege ("42501") leaves the table's part empty.
  absl::Status LoadDevices(Snapshot* out) {
    Snapshot& snap = *out;
    // One row per credential and pattern (none: one row with NULL), so no
    // array parsing; a device with two live tokens is two identities.
    auto devices = conn_->Query(
        "SELECT d.device_id, coalesce(encode(d.token_sha256, 'hex'), ''), p "
        "FROM device_credentials d LEFT JOIN LATERAL unnest(d.sensor_patterns) p ON true "
        "WHERE d.revoked_at IS NULL ORDER BY d.device_id, d.token_sha256");
    if (devices.ok()) {
      std::shared_ptr<DeviceIdentity> current;
      std::string digest;
      auto publish = [&] {
        if (current == nullptr) return;
        if (!digest.empty()) snap.devices_by_token[digest] = current;
        snap.devices_by_id[current->device_id] = current;
      };
      for (int i = 0; i < devices->rows(); ++i) {
        if (current == nullptr || current->device_id != devices->Get(i, 0) ||
            digest != devices->Get(i, 1)) {
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
    return absl::OkStatus();
  }

  absl::Status LoadApiTokens(Snapshot* snap) {
    auto api = conn_->Query(
        "SELECT encode(token_sha256, 'hex'), name, scope FROM api_tokens "
        "WHERE revoked_at IS NULL");
    if (api.ok()) {
      for (int i = 0; i < api->rows(); ++i) {
        snap->api_by_token[std::string(api->Get(i, 0))] =
            ApiIdentity{std::string(api->Get(i, 1)),
                        api->Get(i, 2) == "admin" ? ApiScope::kAdmin : ApiScope::kRead};
      }
    } else if (pg::SqlStateOf(api.status()) != "42501") {
      return api.status();
    }
    return absl::OkStatus();
  }

  const std::string url_;
  const CredentialTable table_;
  std::unique_ptr<pg::Connection> conn_;  // used by one Load at a time
};

}  // namespace

std::unique_ptr<CredentialSource> DatabaseCredentialSource(std::string database_url,
                                                           CredentialTable table) {
  return std::make_unique<DatabaseSource>(std::move(database_url), table);
}

CredentialStore::CredentialStore(std::unique_ptr<CredentialSource> source,
                                 absl::Duration refresh, absl::Duration lookup_reload_gap)
    : source_(std::move(source)),
      refresh_(refresh),
      lookup_reload_gap_(lookup_reload_gap),
      stale_after_(refresh) {}

namespace {
// Beyond this many lookups waiting for a load, an unknown credential is
// refused at once (a flood of bad tokens must not grow memory).
constexpr size_t kMaxDeferredLookups = 4096;
}  // namespace

CredentialStore::~CredentialStore() {
  Stop();
  if (refresher_.joinable()) refresher_.join();
}

void CredentialStore::Stop() {
  std::vector<DeferredLookup> pending;
  {
    MutexLock lock(&mu_);
    stopping_ = true;
    pending = TakeDeferred(std::numeric_limits<uint64_t>::max());
  }
  for (DeferredLookup& l : pending) {
    std::move(l.done)(absl::UnavailableError("the gateway is shutting down"));
  }
}

std::vector<CredentialStore::DeferredLookup> CredentialStore::TakeDeferred(uint64_t before) {
  std::vector<DeferredLookup> taken;
  auto first_kept = std::stable_partition(deferred_.begin(), deferred_.end(),
                                          [before](const DeferredLookup& l) { return l.seq < before; });
  std::move(deferred_.begin(), first_kept, std::back_inserter(taken));
  deferred_.erase(deferred_.begin(), first_kept);
  return taken;
}

void CredentialStore::StartBackgroundRefresh() {
  MutexLock lock(&mu_);
  if (refreshing_ || stopping_) return;
  // The refresher reloads every refresh/2; a synchronous call reloads
  // itself only if the refresher is far behind (the database slow or
  // away), so calls normally never query the database.
  // Started under the lock, so that two first callers cannot both start
  // it (the thread takes the lock itself before it reads anything); the
  // flags are set only once it exists.
  refresher_ = std::thread([this] { RefreshLoop(); });
  refreshing_ = true;
  stale_after_ = 2 * refresh_;
}

void CredentialStore::RefreshLoop() {
  // Half the interval, so a call never finds the snapshot stale; not more
  // than once a second however short the interval.
  const absl::Duration every = std::max(refresh_ / 2, absl::Seconds(1));
  absl::Time next_periodic = absl::Now() + every;
  while (true) {
    uint64_t answers_before;
    absl::Time started;
    {
      MutexLock lock(&mu_);
      while (true) {
        if (stopping_) return;  // Stop() answered the deferred lookups
        absl::Time due = next_periodic;
        if (!deferred_.empty()) due = std::min(due, last_lookup_load_ + lookup_reload_gap_);
        if (absl::Now() >= due) break;
        // Wake early when a lookup is deferred (it may make a load due).
        const size_t seen = deferred_.size();
        auto changed = [this, seen]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
          return stopping_ || deferred_.size() != seen;
        };
        mu_.AwaitWithDeadline(absl::Condition(&changed), due);
      }
      // This load answers the lookups deferred before it starts; they stay
      // in deferred_ meanwhile, so that Stop() can answer them if the load
      // hangs.
      answers_before = next_seq_;
      started = absl::Now();
      if (!deferred_.empty()) last_lookup_load_ = started;
      next_periodic = started + every;
      // One load at a time (a synchronous caller may be loading).
      auto idle = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return !loading_ || stopping_; };
      mu_.Await(absl::Condition(&idle));
      if (stopping_) return;
      loading_ = true;
    }
    auto snap = LoadAndInstall(started);
    std::vector<DeferredLookup> answered;
    {
      MutexLock lock(&mu_);
      answered = TakeDeferred(answers_before);
    }
    for (DeferredLookup& l : answered) {
      std::move(l.done)(snap.ok() ? FindDevice(**snap, l.presented) : snap.status());
    }
  }
}

absl::Status CredentialStore::StillValid(const grpc::ServerContextBase& context,
                                         uint64_t* generation) {
  std::shared_ptr<const CredentialSource::Snapshot> snap;
  {
    MutexLock lock(&mu_);
    if (*generation == generation_ || snapshot_ == nullptr) return absl::OkStatus();
    *generation = generation_;
    snap = snapshot_;
  }
  const std::string cn = PeerCertificateName(context);
  if (!cn.empty() && snap->devices_by_id.contains(cn)) return absl::OkStatus();
  const std::string token = BearerTokenOf(context);
  if (!token.empty() && snap->devices_by_token.contains(Sha256Hex(token))) {
    return absl::OkStatus();
  }
  return absl::UnauthenticatedError(
      "this device's credential was revoked; the stream ends here (batches acknowledged "
      "before this one were stored)");
}

absl::StatusOr<std::shared_ptr<const CredentialSource::Snapshot>> CredentialStore::Current(
    bool force_if_allowed) {
  const absl::Time now = absl::Now();
  {
    MutexLock lock(&mu_);
    bool reload = snapshot_ == nullptr || now - loaded_at_ >= stale_after_;
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
  return LoadAndInstall(now);
}

absl::StatusOr<std::shared_ptr<const CredentialSource::Snapshot>>
CredentialStore::LoadAndInstall(absl::Time now) {
  auto snap = source_->Load();  // outside the lock
  MutexLock lock(&mu_);
  loading_ = false;
  if (snap.ok()) {
    snapshot_ = std::make_shared<const CredentialSource::Snapshot>(*std::move(snap));
    loaded_at_ = now;
    ++generation_;
  } else {
    // Keep serving the last good snapshot while the database is away, and
    // try again in a second, not on every call.
    loaded_at_ = now - stale_after_ + absl::Seconds(1);
    static LogRateLimiter limit(1, absl::Seconds(10));
    int64_t left_out = 0;
    if (limit.Allow(&left_out)) {
      Log(LogLevel::kWarning, "credentials cannot be loaded",
          {{"error", std::string(snap.status().message())},
           {"serving", snapshot_ != nullptr ? "the previous snapshot" : "nothing"},
           {"similar_lines_left_out", absl::StrCat(left_out)}});
    }
    if (snapshot_ == nullptr) {
      // The detail (it names the database) is in the log, not the reply.
      return absl::UnavailableError("credentials cannot be loaded; retry later");
    }
  }
  return snapshot_;
}

CredentialStore::DeviceResult CredentialStore::FindDevice(
    const CredentialSource::Snapshot& snap, const Presented& p) {
  if (!p.cn.empty()) {
    auto it = snap.devices_by_id.find(p.cn);
    if (it != snap.devices_by_id.end()) return it->second;
  }
  if (!p.digest.empty()) {
    auto it = snap.devices_by_token.find(p.digest);
    if (it != snap.devices_by_token.end()) return it->second;
  }
  return absl::UnauthenticatedError(
      !p.cn.empty() ? absl::StrCat("client certificate '", p.cn, "' is not a registered device")
                    : "unknown or revoked device token");
}

void CredentialStore::AuthenticateDeviceAsync(const grpc::ServerContextBase& context,
                                              absl::AnyInvocable<void(DeviceResult) &&> done) {
  AuthenticateDeviceAsync(PeerCertificateName(context), BearerTokenOf(context), std::move(done));
}

void CredentialStore::AuthenticateDeviceAsync(std::string certificate_name,
                                              absl::string_view token,
                                              absl::AnyInvocable<void(DeviceResult) &&> done) {
  Presented p;
  p.cn = std::move(certificate_name);
  if (p.cn.empty() && token.empty()) {
    std::move(done)(absl::UnauthenticatedError(
        "no credentials: send \"authorization: Bearer <device token>\" or a client certificate"));
    return;
  }
  if (!token.empty()) p.digest = Sha256Hex(token);
  // Never loads here: the refresher does (started now if nobody has).
  StartBackgroundRefresh();
  DeviceResult answer = absl::UnavailableError("credentials cannot be loaded; retry later");
  {
    MutexLock lock(&mu_);
    if (snapshot_ != nullptr) answer = FindDevice(*snapshot_, p);
    // Wait for a load when there is no snapshot yet, or when the credential
    // is unknown and a reload for it is allowed (one is already scheduled,
    // or none started within the gap).
    const bool reload_allowed =
        !deferred_.empty() || absl::Now() - last_lookup_load_ >= lookup_reload_gap_;
    const bool wait = snapshot_ == nullptr ||
                      (absl::IsUnauthenticated(answer.status()) && reload_allowed);
    if (wait && !stopping_ && deferred_.size() < kMaxDeferredLookups) {
      deferred_.push_back(DeferredLookup{next_seq_++, std::move(p), std::move(done)});
      return;
    }
  }
  std::move(done)(std::move(answer));
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
