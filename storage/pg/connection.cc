#include "storage/pg/connection.h"

#include <algorithm>

#include <bit>
#include <cstdlib>
#include <regex>

#include "absl/strings/cord.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace telemetry::pg {

Result& Result::operator=(Result&& other) noexcept {
  if (this != &other) {
    if (res_) PQclear(res_);
    res_ = other.res_;
    other.res_ = nullptr;
  }
  return *this;
}

Result::~Result() {
  if (res_) PQclear(res_);
}

absl::string_view Result::Get(int row, int col) const {
  return absl::string_view(PQgetvalue(res_, row, col),
                          static_cast<size_t>(PQgetlength(res_, row, col)));
}

std::optional<std::string> Result::GetOptional(int row, int col) const {
  if (IsNull(row, col)) return std::nullopt;
  return std::string(Get(row, col));
}

namespace {

uint64_t BigEndian(const char* p, int n) {
  uint64_t v = 0;
  for (int i = 0; i < n; ++i) v = (v << 8) | static_cast<unsigned char>(p[i]);
  return v;
}

}  // namespace

int64_t Result::GetInt(int row, int col) const {
  const char* v = PQgetvalue(res_, row, col);
  if (PQfformat(res_, col) == 0) return std::strtoll(v, nullptr, 10);
  int n = PQgetlength(res_, row, col);
  uint64_t u = BigEndian(v, n);
  if (n == 2) return static_cast<int16_t>(u);
  if (n == 4) return static_cast<int32_t>(u);
  return static_cast<int64_t>(u);
}

double Result::GetDouble(int row, int col) const {
  const char* v = PQgetvalue(res_, row, col);
  if (PQfformat(res_, col) == 0) return std::strtod(v, nullptr);
  if (PQgetlength(res_, row, col) == 4) {
    return std::bit_cast<float>(static_cast<uint32_t>(BigEndian(v, 4)));
  }
  return std::bit_cast<double>(BigEndian(v, 8));
}

int64_t Result::GetTimestampMicros(int row, int col) const {
  // timestamptz: int64 microseconds since 2000-01-01 00:00:00 UTC.
  constexpr int64_t kPostgresEpochUs = 946684800LL * 1000000LL;
  return static_cast<int64_t>(BigEndian(PQgetvalue(res_, row, col), 8)) + kPostgresEpochUs;
}

absl::string_view Result::GetJsonText(int row, int col) const {
  absl::string_view v = Get(row, col);
  if (PQfformat(res_, col) == 1 && PQftype(res_, col) == 3802 /* jsonb */ && !v.empty()) {
    v.remove_prefix(1);  // version byte
  }
  return v;
}

int64_t Result::AffectedRows() const {
  const char* n = res_ ? PQcmdTuples(res_) : "";
  return *n ? std::strtoll(n, nullptr, 10) : 0;
}

absl::StatusOr<std::unique_ptr<Connection>> Connection::Open(
    const std::string& conninfo) {
  PGconn* conn = PQconnectdb(conninfo.c_str());
  if (conn == nullptr) {
    return absl::ResourceExhaustedError("libpq could not allocate a connection");
  }
  if (PQstatus(conn) != CONNECTION_OK) {
    std::string msg = absl::StrCat("cannot connect to PostgreSQL: ",
                                   absl::StripTrailingAsciiWhitespace(
                                       PQerrorMessage(conn)));
    PQfinish(conn);
    absl::Status status = absl::UnavailableError(msg);
    status.SetPayload(kSqlStatePayload, absl::Cord("08001"));
    return status;
  }
  // Server NOTICEs (e.g. "already exists, skipping") are expected chatter
  // of idempotent DDL; libpq would print them to stderr.
  PQsetNoticeProcessor(conn, [](void*, const char*) {}, nullptr);
  return std::unique_ptr<Connection>(new Connection(conn));
}

Connection::~Connection() { PQfinish(conn_); }

bool Connection::healthy() const { return PQstatus(conn_) == CONNECTION_OK; }

bool Connection::InTransaction() const {
  PGTransactionStatusType s = PQtransactionStatus(conn_);
  return s == PQTRANS_INTRANS || s == PQTRANS_INERROR;
}

absl::Status Connection::StatusFromResult(const PGresult* res,
                                          absl::string_view what) {
  ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
  if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK ||
      st == PGRES_COPY_IN || st == PGRES_EMPTY_QUERY) {
    return absl::OkStatus();
  }
  const char* state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : nullptr;
  std::string sqlstate = state ? state : "";
  if (sqlstate.empty() && !healthy()) sqlstate = "08006";
  // The server's primary message (and detail), without the "ERROR:  "
  // severity prefix, so callers can surface it as is.
  const char* primary = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : nullptr;
  const char* detail = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL) : nullptr;
  std::string message = primary ? primary : "";
  if (detail != nullptr) absl::StrAppend(&message, " (", detail, ")");
  if (message.empty()) {
    message = std::string(absl::StripTrailingAsciiWhitespace(
        PQerrorMessage(conn_)));
  }
  absl::Status status(CodeForSqlState(sqlstate),
                      absl::StrCat(what, ": ", message));
  if (!sqlstate.empty()) status.SetPayload(kSqlStatePayload, absl::Cord(sqlstate));
  if (primary != nullptr) status.SetPayload(kServerMessagePayload, absl::Cord(primary));
  return status;
}

absl::Status Connection::Exec(absl::string_view sql) {
  std::string owned(sql);
  Result res(PQexec(conn_, owned.c_str()));
  // A multi-statement string reports only the last result; earlier errors
  // abort the whole string, so the last result carries any failure.
  return StatusFromResult(res.raw(), "statement failed");
}

absl::StatusOr<Result> Connection::Query(const std::string& sql,
                                         const std::vector<Param>& params) {
  return Run(sql, params, 0);
}

namespace {
std::vector<const char*> ParamPointers(const std::vector<Param>& params) {
  std::vector<const char*> values;
  values.reserve(params.size());
  for (const Param& p : params) values.push_back(p ? p->c_str() : nullptr);
  return values;
}
}  // namespace

absl::StatusOr<Result> Connection::QueryBinary(const std::string& sql,
                                               const std::vector<Param>& params) {
  return Run(sql, params, 1);
}

absl::StatusOr<Result> Connection::Run(const std::string& sql,
                                       const std::vector<Param>& params,
                                       int result_format) {
  std::vector<const char*> values = ParamPointers(params);
  Result res(PQexecParams(conn_, sql.c_str(), static_cast<int>(params.size()),
                          nullptr, values.data(), nullptr, nullptr, result_format));
  absl::Status status = StatusFromResult(res.raw(), "query failed");
  if (!status.ok()) return status;
  return res;
}

absl::StatusOr<Result> Connection::QueryPrepared(const std::string& sql,
                                                 const std::vector<Param>& params) {
  auto it = prepared_.find(sql);
  if (it == prepared_.end()) {
    if (prepared_.size() >= kMaxPrepared) {
      // Texts come and go (LatestReadings' bound changes daily): the least
      // recently used one makes room.
      auto lru = std::min_element(prepared_.begin(), prepared_.end(),
                                  [](const auto& a, const auto& b) {
                                    return a.second.last_used < b.second.last_used;
                                  });
      Result dealloc(PQexec(conn_, absl::StrCat("DEALLOCATE ", lru->second.name).c_str()));
      if (absl::Status s = StatusFromResult(dealloc.raw(), "deallocate failed"); !s.ok()) {
        return s;
      }
      prepared_.erase(lru);
    }
    std::string name = absl::StrCat("tg_", next_statement_++);
    Result prep(PQprepare(conn_, name.c_str(), sql.c_str(), static_cast<int>(params.size()),
                          nullptr));
    absl::Status status = StatusFromResult(prep.raw(), "prepare failed");
    if (!status.ok()) return status;
    it = prepared_.emplace(sql, PreparedStatement{std::move(name), 0}).first;
  }
  it->second.last_used = ++prepared_uses_;
  std::vector<const char*> values = ParamPointers(params);
  Result res(PQexecPrepared(conn_, it->second.name.c_str(), static_cast<int>(params.size()),
                            values.data(), nullptr, nullptr, /*resultFormat=*/1));
  absl::Status status = StatusFromResult(res.raw(), "query failed");
  if (!status.ok()) return status;
  return res;
}

absl::StatusOr<int64_t> Connection::CopyIn(const std::string& copy_sql,
                                           absl::string_view data) {
  {
    Result start(PQexec(conn_, copy_sql.c_str()));
    if (PQresultStatus(start.raw()) != PGRES_COPY_IN) {
      return StatusFromResult(start.raw(), "COPY could not start");
    }
  }
  // libpq in blocking mode accepts any amount; feed it in 1 MiB slices so its
  // output buffer stays small.
  constexpr size_t kSlice = 1 << 20;
  bool send_failed = false;
  for (size_t off = 0; off < data.size(); off += kSlice) {
    size_t n = std::min(kSlice, data.size() - off);
    if (PQputCopyData(conn_, data.data() + off, static_cast<int>(n)) != 1) {
      send_failed = true;
      break;
    }
  }
  if (send_failed) {
    PQputCopyEnd(conn_, "client failed to send COPY data");
  } else if (PQputCopyEnd(conn_, nullptr) != 1) {
    send_failed = true;
  }
  absl::Status status;
  int64_t rows = 0;
  while (PGresult* raw = PQgetResult(conn_)) {
    Result res(raw);
    absl::Status s = StatusFromResult(raw, "COPY failed");
    if (!s.ok() && status.ok()) status = s;
    if (s.ok()) rows += res.AffectedRows();
  }
  if (status.ok() && send_failed) {
    status = absl::UnavailableError(absl::StrCat(
        "COPY data could not be sent: ",
        absl::StripTrailingAsciiWhitespace(PQerrorMessage(conn_))));
    status.SetPayload(kSqlStatePayload, absl::Cord("08006"));
  }
  if (!status.ok()) return status;
  return rows;
}

std::string ServerMessageOf(const absl::Status& status) {
  auto p = status.GetPayload(kServerMessagePayload);
  return p ? std::string(*p) : std::string(status.message());
}

std::string SqlStateOf(const absl::Status& status) {
  auto p = status.GetPayload(kSqlStatePayload);
  return p ? std::string(*p) : std::string();
}

absl::StatusCode CodeForSqlState(absl::string_view s) {
  if (s.empty()) return absl::StatusCode::kUnavailable;  // lost connection
  if (absl::StartsWith(s, "08")) return absl::StatusCode::kUnavailable;
  if (s == "57P01" || s == "57P02" || s == "57P03" || s == "57014") {
    return absl::StatusCode::kUnavailable;  // shutdown, crash, cancel
  }
  if (s == "40001" || s == "40P01") return absl::StatusCode::kAborted;
  if (s == "23505") return absl::StatusCode::kAlreadyExists;
  if (absl::StartsWith(s, "23")) return absl::StatusCode::kFailedPrecondition;
  if (absl::StartsWith(s, "22")) return absl::StatusCode::kInvalidArgument;
  if (s == "42501") return absl::StatusCode::kPermissionDenied;
  if (s == "25006") return absl::StatusCode::kUnavailable;  // read-only txn
  if (absl::StartsWith(s, "53")) return absl::StatusCode::kResourceExhausted;
  if (s == "55P03") return absl::StatusCode::kUnavailable;  // lock timeout
  return absl::StatusCode::kInternal;
}

std::string RedactConninfo(absl::string_view conninfo) {
  std::string s(conninfo);
  static const std::regex kScheme(R"(^[a-z]+://)");
  if (std::regex_search(s, kScheme)) {
    // URI: scheme://user:password@host... and ?password=... parameters.
    static const std::regex kUserinfo(R"(^([a-z]+://[^:/@]*):[^@/]*@)");
    static const std::regex kQuery(R"(([?&]password=)[^&]*)");
    s = std::regex_replace(s, kUserinfo, "$1:***@");
    return std::regex_replace(s, kQuery, "$1***");
  }
  // Keyword form: password=secret or password='se cret'.
  static const std::regex kKeyword(R"(password\s*=\s*('([^'\\]|\\.)*'|\S+))");
  return std::regex_replace(s, kKeyword, "password=***");
}

}  // namespace telemetry::pg
