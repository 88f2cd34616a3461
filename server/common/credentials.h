// Who is calling: bearer tokens (stored as SHA-256 digests) and mutual-TLS
// identities, checked against the device_credentials and api_tokens tables.
//
// Each store keeps an in-memory snapshot of its table, reloaded every
// `refresh` and, at most once a second, when an unknown token shows up (so
// a newly issued credential works at once). Revocation takes effect within
// `refresh`. Lookups never touch the database on the hot path, and
// AuthenticateDeviceAsync (for gRPC reactions) never touches it at all.
#ifndef TELEMETRY_SERVER_COMMON_CREDENTIALS_H_
#define TELEMETRY_SERVER_COMMON_CREDENTIALS_H_

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "storage/util/mutex.h"

namespace grpc {
class ServerContextBase;
}

namespace telemetry {

// Lowercase hex SHA-256 of `text`.
std::string Sha256Hex(absl::string_view text);

// A new bearer token: 32 random bytes from the kernel, base64url.
absl::StatusOr<std::string> NewBearerToken();

// The token of an "authorization: Bearer <token>" header, or "". The
// scheme is case-insensitive (RFC 7235 section 2.1, as RFC 6750 uses it).
std::string BearerTokenOf(const grpc::ServerContextBase& context);
// The same for a header value alone.
absl::string_view BearerTokenFromHeader(absl::string_view value);

struct DeviceIdentity {
  std::string device_id;
  std::vector<std::string> sensor_patterns;  // exact ids, or prefixes ending in '*'

  // Whether the device may write readings of `sensor_id`.
  bool MayWrite(absl::string_view sensor_id) const;
};

enum class ApiScope { kRead = 0, kAdmin = 1 };

struct ApiIdentity {
  std::string name;
  ApiScope scope;
};

// Why an interface: the gateway and read service depend on "authenticate
// this call", the tests of their reactions on a fixed table.
class CredentialSource {
 public:
  struct Snapshot {
    // token digest (hex) -> identity; device_id -> identity (mTLS)
    absl::flat_hash_map<std::string, std::shared_ptr<const DeviceIdentity>> devices_by_token;
    absl::flat_hash_map<std::string, std::shared_ptr<const DeviceIdentity>> devices_by_id;
    absl::flat_hash_map<std::string, ApiIdentity> api_by_token;
  };
  virtual ~CredentialSource() = default;
  virtual absl::StatusOr<Snapshot> Load() = 0;
};

// Which credentials a service authenticates: the gateway devices, the read
// service API clients. Each login role may read only its own table, so a
// source reads only that one (reading the other would log "permission
// denied" in PostgreSQL on every refresh).
enum class CredentialTable { kDevices, kApiTokens };

// Loads `table` over its own connection (a missing privilege leaves the
// snapshot empty rather than failing).
std::unique_ptr<CredentialSource> DatabaseCredentialSource(std::string database_url,
                                                           CredentialTable table);

class CredentialStore {
 public:
  // `lookup_reload_gap`: how often an unknown credential may cause a reload.
  CredentialStore(std::unique_ptr<CredentialSource> source, absl::Duration refresh,
                  absl::Duration lookup_reload_gap = absl::Seconds(1));
  ~CredentialStore();  // Stop(), and joins the refresher

  // Answers every lookup still waiting for a load with Unavailable, and any
  // made from now on at once from the snapshot (a shutting-down server must
  // not wait for a load; the database may be away). Idempotent.
  void Stop();

  // Reloads every `refresh` on a thread of its own, so the snapshot stays
  // fresh with no call paying for the query, and open streams see a
  // revocation (StillValid) within one refresh interval. Idempotent and
  // thread-safe.
  void StartBackgroundRefresh();

  // The calling device: its verified client-certificate CN when it has one
  // (mutual TLS), else its bearer token. Unauthenticated when neither
  // matches a live credential; Unavailable when the table cannot be read.
  // For a gRPC reaction, which must not block: `done` runs before this
  // returns when the snapshot can answer, else (no snapshot yet, or a
  // credential the snapshot does not know, which may have been issued since
  // it was loaded: at most one such reload a second) on the background
  // refresher's thread after its next load. `context` is read only before
  // this returns. Starts the background refresh if nobody has.
  using DeviceResult = absl::StatusOr<std::shared_ptr<const DeviceIdentity>>;
  void AuthenticateDeviceAsync(const grpc::ServerContextBase& context,
                               absl::AnyInvocable<void(DeviceResult) &&> done);
  // The same for what a call presented (either may be empty).
  void AuthenticateDeviceAsync(std::string certificate_name, absl::string_view bearer_token,
                               absl::AnyInvocable<void(DeviceResult) &&> done);

  // Whether the credential `context` authenticated with still names a live
  // device, in the current snapshot; never queries the database (the
  // background refresh keeps the snapshot fresh), so a reaction may call
  // it. `generation` is the caller's: when no snapshot was loaded since it
  // last asked, the answer is OK without a lookup.
  absl::Status StillValid(const grpc::ServerContextBase& context, uint64_t* generation);

  // The calling API client, by bearer token; PermissionDenied when its
  // scope is below `needed`.
  absl::StatusOr<ApiIdentity> AuthorizeApi(const grpc::ServerContextBase& context,
                                           ApiScope needed);

  // The current snapshot, reloaded when stale or (rate-limited) when
  // `force_if_allowed`. One caller loads; the others meanwhile get the
  // previous snapshot (they wait only for the very first load).
  absl::StatusOr<std::shared_ptr<const CredentialSource::Snapshot>> Current(
      bool force_if_allowed);

 private:
  // What a call presented: its certificate CN and its token's digest.
  struct Presented {
    std::string cn;
    std::string digest;
  };
  struct DeferredLookup {
    uint64_t seq;  // answered by the first load that starts after it
    Presented presented;
    absl::AnyInvocable<void(DeviceResult) &&> done;
  };
  // Takes the deferred lookups with seq < `before` (all: max).
  std::vector<DeferredLookup> TakeDeferred(uint64_t before) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  static DeviceResult FindDevice(const CredentialSource::Snapshot& snap, const Presented& p);
  // Loads and installs a snapshot. REQUIRES: the caller set loading_.
  absl::StatusOr<std::shared_ptr<const CredentialSource::Snapshot>> LoadAndInstall(
      absl::Time now);
  void RefreshLoop();

  const std::unique_ptr<CredentialSource> source_;
  const absl::Duration refresh_;
  const absl::Duration lookup_reload_gap_;
  Mutex mu_;
  std::shared_ptr<const CredentialSource::Snapshot> snapshot_ ABSL_GUARDED_BY(mu_);
  absl::Duration stale_after_ ABSL_GUARDED_BY(mu_);  // refresh_, 2x with the refresher
  absl::Time loaded_at_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  absl::Time last_forced_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  bool loading_ ABSL_GUARDED_BY(mu_) = false;  // one caller is querying the source
  uint64_t generation_ ABSL_GUARDED_BY(mu_) = 0;  // snapshots loaded so far
  // Lookups waiting for the refresher's next load, and when the last load
  // made for such lookups started (they reload at most once a second).
  std::vector<DeferredLookup> deferred_ ABSL_GUARDED_BY(mu_);
  uint64_t next_seq_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Time last_lookup_load_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool refreshing_ ABSL_GUARDED_BY(mu_) = false;  // the refresher runs
  std::thread refresher_;
};

}  // namespace telemetry

#endif  // TELEMETRY_SERVER_COMMON_CREDENTIALS_H_
