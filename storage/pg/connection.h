// Thin, status-returning wrapper around one libpq connection.
//
// Every query goes through the extended protocol with out-of-line parameters
// (ExecParams); only fixed, trusted SQL (migrations, DDL with no user input)
// may use Exec's simple protocol. A Connection is NOT thread-safe: one thread
// uses it at a time (the pool hands it out exclusively).
#ifndef TELEMETRY_STORAGE_PG_CONNECTION_H_
#define TELEMETRY_STORAGE_PG_CONNECTION_H_

#include <libpq-fe.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace telemetry::pg {

// Owns a PGresult. Accessors take (row, column) and return text-format values.
class Result {
 public:
  Result() = default;
  explicit Result(PGresult* res) : res_(res) {}
  Result(Result&& other) noexcept : res_(other.res_) { other.res_ = nullptr; }
  Result& operator=(Result&& other) noexcept;
  Result(const Result&) = delete;
  Result& operator=(const Result&) = delete;
  ~Result();

  int rows() const { return res_ ? PQntuples(res_) : 0; }
  int columns() const { return res_ ? PQnfields(res_) : 0; }
  bool IsNull(int row, int col) const { return PQgetisnull(res_, row, col); }
  absl::string_view Get(int row, int col) const;
  std::optional<std::string> GetOptional(int row, int col) const;
  // Integer and float columns in either result format (binary columns are
  // decoded from network order by their size).
  int64_t GetInt(int row, int col) const;
  double GetDouble(int row, int col) const;
  // A timestamptz column of a binary-format result, as microseconds since
  // the Unix epoch. REQUIRES: the result was fetched with QueryBinary.
  int64_t GetTimestampMicros(int row, int col) const;
  // The JSON text of a json/jsonb column in either format (binary jsonb
  // carries a leading version byte).
  absl::string_view GetJsonText(int row, int col) const;
  bool GetBool(int row, int col) const { return Get(row, col) == "t"; }
  // Number of rows affected by INSERT/UPDATE/DELETE/COPY.
  int64_t AffectedRows() const;
  PGresult* raw() const { return res_; }

 private:
  PGresult* res_ = nullptr;
};

// A query parameter in text format; std::nullopt is SQL NULL.
using Param = std::optional<std::string>;

class Connection {
 public:
  // Connects with a libpq conninfo string or URI. The error never contains the
  // password (libpq does not echo it; we never append the conninfo).
  static absl::StatusOr<std::unique_ptr<Connection>> Open(
      const std::string& conninfo);

  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Simple-protocol execution of trusted SQL; may hold several statements.
  absl::Status Exec(absl::string_view sql);

  // Extended-protocol execution with text parameters ($1, $2, ...).
  absl::StatusOr<Result> Query(const std::string& sql,
                               const std::vector<Param>& params = {});

  // Like Query, but results come in PostgreSQL's binary format: no text
  // formatting on the server, no parsing here (and exact timestamps without
  // numeric arithmetic). Use the typed Result accessors.
  absl::StatusOr<Result> QueryBinary(const std::string& sql,
                                     const std::vector<Param>& params = {});

  // Like QueryBinary, for a hot statement with a fixed text: it is parsed
  // and planned once per connection (PQprepare, named after its position in
  // this connection's cache) and then only bound and executed; PostgreSQL
  // still re-plans it when the schema changes, and chooses between generic
  // and custom plans as it does for any prepared statement. At most
  // kMaxPrepared texts per connection: a new one then replaces the least
  // recently used (DEALLOCATE), which is prepared again if it comes back.
  // Not for use behind a transaction-pooling proxy.
  absl::StatusOr<Result> QueryPrepared(const std::string& sql,
                                       const std::vector<Param>& params = {});
  static constexpr size_t kMaxPrepared = 64;

  // Runs `copy_sql` (a COPY ... FROM STDIN statement) and streams `data` to
  // it. Returns the number of rows copied. The caller owns the transaction.
  absl::StatusOr<int64_t> CopyIn(const std::string& copy_sql,
                                 absl::string_view data);

  // False once the server connection is known to be lost; such a connection
  // is discarded by the pool rather than reused.
  bool healthy() const;

  // True while inside a transaction block (BEGIN issued, not yet ended).
  bool InTransaction() const;

  PGconn* raw() { return conn_; }

 private:
  explicit Connection(PGconn* conn) : conn_(conn) {}
  absl::StatusOr<Result> Run(const std::string& sql, const std::vector<Param>& params,
                             int result_format);
  absl::Status StatusFromResult(const PGresult* res, absl::string_view what);
  PGconn* conn_;
  struct PreparedStatement {
    std::string name;
    uint64_t last_used = 0;  // prepared_uses_ at its last execution
  };
  absl::flat_hash_map<std::string, PreparedStatement> prepared_;  // by SQL text
  uint64_t prepared_uses_ = 0;
  uint64_t next_statement_ = 0;  // names are never reused

};

// Payload key under which a failed statement's SQLSTATE is attached.
inline constexpr absl::string_view kSqlStatePayload = "telemetry.pg/sqlstate";

// Payload key under which the server's primary error message is attached.
inline constexpr absl::string_view kServerMessagePayload = "telemetry.pg/message";

// The server's own error message (e.g. "illegal task status transition:
// completed -> pending"), or the status message when there is none.
std::string ServerMessageOf(const absl::Status& status);

// The SQLSTATE attached to `status`, or "" when there is none.
std::string SqlStateOf(const absl::Status& status);

// Maps a SQLSTATE to the absl code whose retry semantics fit it: connection
// and shutdown errors are Unavailable (retry the call), serialization
// failures Aborted, data errors InvalidArgument, unique violation
// AlreadyExists, privilege errors PermissionDenied, out-of-resources
// ResourceExhausted.
absl::StatusCode CodeForSqlState(absl::string_view sqlstate);

// Removes the password from a conninfo string or URI, for logs and errors.
std::string RedactConninfo(absl::string_view conninfo);

}  // namespace telemetry::pg

#endif  // TELEMETRY_STORAGE_PG_CONNECTION_H_
