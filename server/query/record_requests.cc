#include "server/query/record_requests.h"

#include <algorithm>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "server/query/sql_values.h"

namespace telemetry::query {

absl::Status CheckField(absl::string_view value, absl::string_view field, size_t max_bytes,
                        bool required) {
  std::string why = CheckText(value, field, max_bytes, required);
  return why.empty() ? absl::OkStatus() : Invalid(why);
}

absl::Status Explain(const absl::Status& s, absl::string_view missing_what) {
  std::string state = pg::SqlStateOf(s);
  if (state == "23503") return absl::NotFoundError(std::string(missing_what));
  if (state == "23514") return absl::FailedPreconditionError(pg::ServerMessageOf(s));
  if (state == "22P02") return absl::InvalidArgumentError(pg::ServerMessageOf(s));
  return s;
}

int PageLimit(uint32_t page_size) {
  return static_cast<int>(page_size == 0 ? 100 : std::min(page_size, 1000u));
}

std::string OptionalMicros(const google::protobuf::Timestamp& t, bool has) {
  return has ? std::to_string(ToMicros(t)) : std::string();
}

pg::Param NonEmpty(const std::string& s) { return s.empty() ? pg::Param() : pg::Param(s); }

absl::StatusOr<pg::Result> SelectRecord(pg::ConnectionPool& pool, absl::string_view table,
                                        absl::string_view columns, const std::string& id,
                                        absl::string_view what) {
  if (!IsUuid(id)) return Invalid("id must be a UUID");
  auto conn = pool.Acquire();
  if (!conn.ok()) return conn.status();
  auto r = (*conn)->Query(absl::StrCat("SELECT ", columns, " FROM ", table, " WHERE id = $1::uuid"),
                          {id});
  if (!r.ok()) return r.status();
  if (r->rows() == 0) return absl::NotFoundError(absl::StrCat(what, " ", id, " not found"));
  return r;
}

absl::StatusOr<pg::Result> UpdateRecordStatus(pg::ConnectionPool& pool, absl::string_view table,
                                              absl::string_view columns, const std::string& id,
                                              const std::string& status, absl::string_view what) {
  if (!IsUuid(id)) return Invalid("id must be a UUID");
  auto conn = pool.Acquire();
  if (!conn.ok()) return conn.status();
  auto r = (*conn)->Query(absl::StrCat("UPDATE ", table,
                                       " SET status = $2 WHERE id = $1::uuid RETURNING ", columns),
                          {id, status});
  if (!r.ok()) return Explain(r.status(), "");
  if (r->rows() == 0) return absl::NotFoundError(absl::StrCat(what, " ", id, " not found"));
  return r;
}

absl::StatusOr<KeysetPage> KeysetPage::From(const std::string& token, uint32_t page_size) {
  KeysetPage page;
  page.limit = PageLimit(page_size);
  if (token.empty()) return page;
  auto parts = DecodeToken(token, 2);
  if (!parts.ok()) return parts.status();
  int64_t us;
  if (!absl::SimpleAtoi((*parts)[0], &us) || !IsUuid((*parts)[1])) {
    return Invalid("malformed page token");
  }
  page.after_us = (*parts)[0];
  page.after_id = (*parts)[1];
  return page;
}

int KeysetPage::Kept(const pg::Result& r) const { return std::min(r.rows(), limit); }

std::string KeysetPage::NextToken(const pg::Result& r,
                                  const google::protobuf::Timestamp& last_time,
                                  const std::string& last_id) const {
  if (r.rows() <= limit) return "";
  return EncodeToken({std::to_string(ToMicros(last_time)), last_id});
}

}  // namespace telemetry::query
