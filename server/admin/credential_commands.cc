#include "server/admin/credential_commands.h"

#include <iostream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "client/output_format.h"
#include "server/common/credentials.h"
#include "storage/pg/connection.h"

namespace telemetry::admin {
namespace {

int Fail(const absl::Status& s) {
  std::cerr << "telemetryctl: " << s.message() << "\n";
  return 1;
}

// A database error as an operator message. Only the server's primary
// message is shown, never its detail: a constraint's detail quotes the
// failing row, which holds the token's digest.
int DatabaseFail(const absl::Status& s, const std::string& what) {
  const std::string sqlstate = pg::SqlStateOf(s);
  std::string message;
  if (sqlstate == "23505") {
    message = absl::StrCat(what, " already exists");
  } else if (sqlstate == "42501") {
    message = absl::StrCat("the database role may not change ", what,
                           "; use the role that owns the credential tables (DATABASE_URL)");
  } else if (sqlstate.rfind("08", 0) == 0 || sqlstate.empty()) {
    message = absl::StrCat("cannot reach the database: ", s.message());
  } else {
    auto primary = s.GetPayload(pg::kServerMessagePayload);
    message = absl::StrCat("the database refused the change to ", what, ": ",
                           primary ? std::string(*primary) : std::string("error"),
                           " (SQLSTATE ", sqlstate, ")");
  }
  std::cerr << "telemetryctl: " << message << "\n";
  return 1;
}

using client::Cell;
using client::Column;
using client::RowWriter;

Cell Optional(const pg::Result& r, int row, int column) {
  return r.IsNull(row, column) ? Cell() : Cell(std::string(r.Get(row, column)));
}

// Text-array literal for a parameter: {"a","b"} with quotes escaped.
std::string TextArray(const std::vector<std::string>& items) {
  std::string out = "{";
  for (size_t i = 0; i < items.size(); ++i) {
    if (i > 0) out += ",";
    out += "\"";
    for (char c : items[i]) {
      if (c == '"' || c == '\\') out += '\\';
      out += c;
    }
    out += "\"";
  }
  return out + "}";
}

void PrintToken(const std::string& token, const std::string& whom) {
  std::cout << token << "\n";
  std::cerr << "The line above is " << whom
            << "'s bearer token. It is shown only now (only its SHA-256 is stored):\n"
               "hand it over through a secret store; clients read it from "
               "TELEMETRY_TOKEN_FILE or TELEMETRY_TOKEN.\n";
}

int Device(pg::Connection& db, const std::string& verb, const std::string& id,
           const CredentialCommandOptions& options) {
  if (verb == "list") {
    auto r = db.Query(
        "SELECT device_id, array_to_string(sensor_patterns, ','), "
        "CASE WHEN token_sha256 IS NULL THEN 'mtls' ELSE 'token' END, "
        "to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), "
        "to_char(revoked_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') "
        "FROM device_credentials ORDER BY device_id");
    if (!r.ok()) return DatabaseFail(r.status(), "devices");
    auto out = RowWriter::Create(options.format,
                                 {{"device_id"}, {"sensors"}, {"credential"}, {"created_at"},
                                  {"revoked_at"}},
                                 &std::cout);
    for (int i = 0; i < r->rows(); ++i) {
      out->Row({std::string(r->Get(i, 0)), std::string(r->Get(i, 1)), std::string(r->Get(i, 2)), std::string(r->Get(i, 3)), Optional(*r, i, 4)});
    }
    out->Finish();
    return 0;
  }
  if (id.empty()) return Fail(absl::InvalidArgumentError("name the device"));
  if (verb == "add") {
    std::vector<std::string> patterns =
        absl::StrSplit(options.sensors, ',', absl::SkipWhitespace());
    if (patterns.empty()) {
      return Fail(absl::InvalidArgumentError(
          "--sensors is required: the sensors this device may write ('*' for all)"));
    }
    std::optional<std::string> token;
    pg::Param digest;
    if (!options.mtls) {
      auto t = NewBearerToken();
      if (!t.ok()) return Fail(t.status());
      token = *t;
      digest = Sha256Hex(*t);
    }
    auto r = db.Query(
        "INSERT INTO device_credentials (device_id, token_sha256, sensor_patterns) "
        "VALUES ($1, decode($2, 'hex'), $3::text[])",
        {id, digest, TextArray(patterns)});
    if (!r.ok()) {
      if (pg::SqlStateOf(r.status()) == "23505") {
        return Fail(absl::AlreadyExistsError(absl::StrCat(
            "device ", id, " already exists; `telemetryctl device rotate ", id,
            "` issues it a new token")));
      }
      return DatabaseFail(r.status(), "device " + id);
    }
    if (token) PrintToken(*token, "device " + id);
    else std::cerr << "device " << id << " registered for mutual TLS (certificate CN = " << id << ")\n";
    return 0;
  }
  if (verb == "rotate") {
    auto t = NewBearerToken();
    if (!t.ok()) return Fail(t.status());
    auto r = db.Query(
        "UPDATE device_credentials SET token_sha256 = decode($2, 'hex'), revoked_at = NULL "
        "WHERE device_id = $1 RETURNING 1",
        {id, Sha256Hex(*t)});
    if (!r.ok()) return DatabaseFail(r.status(), "device " + id);
    if (r->rows() == 0) return Fail(absl::NotFoundError("no such device"));
    PrintToken(*t, "device " + id);
    return 0;
  }
  if (verb == "revoke") {
    auto r = db.Query(
        "UPDATE device_credentials SET revoked_at = now() WHERE device_id = $1 RETURNING 1",
        {id});
    if (!r.ok()) return DatabaseFail(r.status(), "device " + id);
    if (r->rows() == 0) return Fail(absl::NotFoundError("no such device"));
    std::cerr << "device " << id << " revoked (gateways notice within their refresh interval)\n";
    return 0;
  }
  return -1;
}

int Token(pg::Connection& db, const std::string& verb, const std::string& name,
          const CredentialCommandOptions& options) {
  if (verb == "list") {
    auto r = db.Query(
        "SELECT name, scope, "
        "to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), "
        "to_char(revoked_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') "
        "FROM api_tokens ORDER BY name");
    if (!r.ok()) return DatabaseFail(r.status(), "API tokens");
    auto out = RowWriter::Create(options.format,
                                 {{"name"}, {"scope"}, {"created_at"}, {"revoked_at"}},
                                 &std::cout);
    for (int i = 0; i < r->rows(); ++i) {
      out->Row({std::string(r->Get(i, 0)), std::string(r->Get(i, 1)), std::string(r->Get(i, 2)), Optional(*r, i, 3)});
    }
    out->Finish();
    return 0;
  }
  if (name.empty()) return Fail(absl::InvalidArgumentError("name the token"));
  if (verb == "add") {
    auto t = NewBearerToken();
    if (!t.ok()) return Fail(t.status());
    auto r = db.Query(
        "INSERT INTO api_tokens (name, token_sha256, scope) VALUES ($1, decode($2, 'hex'), $3)",
        {name, Sha256Hex(*t), options.scope});
    if (!r.ok()) {
      if (pg::SqlStateOf(r.status()) == "23505") {
        return Fail(absl::AlreadyExistsError(absl::StrCat(
            "API token ", name, " already exists; revoke it and add a new name, or pick "
            "another name")));
      }
      return DatabaseFail(r.status(), "API token " + name);
    }
    PrintToken(*t, "API token " + name);
    return 0;
  }
  if (verb == "revoke") {
    auto r = db.Query("UPDATE api_tokens SET revoked_at = now() WHERE name = $1 RETURNING 1",
                      {name});
    if (!r.ok()) return DatabaseFail(r.status(), "API token " + name);
    if (r->rows() == 0) return Fail(absl::NotFoundError("no such token"));
    std::cerr << "API token " << name << " revoked\n";
    return 0;
  }
  return -1;
}

}  // namespace

int RunCredentialCommand(const std::vector<std::string>& args,
                         const CredentialCommandOptions& options) {
  if (args.size() < 2 || (args[0] != "device" && args[0] != "token")) return -1;
  if (options.database_url.empty()) {
    return Fail(absl::InvalidArgumentError("set DATABASE_URL or --database_url"));
  }
  if (args[0] == "token" && args[1] == "add" && options.scope != "read" &&
      options.scope != "admin") {  // misuse: before the database is asked
    Fail(absl::InvalidArgumentError(
        absl::StrCat("--scope must be read or admin, not '", options.scope, "'")));
    return 2;
  }
  auto db = pg::Connection::Open(options.database_url);
  if (!db.ok()) return Fail(absl::UnavailableError(
      absl::StrCat("cannot connect to the database: ", db.status().message())));
  const std::string id = args.size() >= 3 ? args[2] : "";
  return args[0] == "device" ? Device(**db, args[1], id, options)
                            : Token(**db, args[1], id, options);
}

}  // namespace telemetry::admin
