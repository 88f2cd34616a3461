// telemetryctl as an operator meets it, through the real binary: help and
// version, refused flags and commands, failing fast on an unreachable
// service, the output formats, time arguments, a lossless export, rejections
// by line, credential errors in words, health, and the progress line on a
// terminal (under script(1), which gives the command a pseudo-terminal).
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <unistd.h>

#include <fstream>
#include <regex>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "tests/e2e/read_service_fixture.h"

namespace telemetry::testing {
namespace {

std::string Slurp(const std::string& path) {
  std::ifstream in(path);
  return std::string((std::istreambuf_iterator<char>(in)), {});
}

// Runs telemetryctl without the fixture's plaintext default; stdout and
// stderr apart.
struct CliRun {
  int rc;
  std::string out, err;
};
CliRun Ctl(const std::string& args) {
  const std::string base = absl::StrCat(::testing::TempDir(), "/ctl");
  const std::string cmd = absl::StrCat(TELEMETRYCTL_PATH, " ", args, " > ", base, ".out 2> ",
                                       base, ".err");
  const int status = std::system(cmd.c_str());
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, Slurp(base + ".out"), Slurp(base + ".err")};
}

// A loopback port nothing listens on: bound, never listened on, and closed.
int ClosedPort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

TEST(TelemetryctlHelp, HelpIsOnStdoutExitsZeroAndIsPerCommand) {
  CliRun overview = Ctl("help");
  EXPECT_EQ(overview.rc, 0) << overview.err;
  for (const char* command : {"send", "latest", "range", "summary", "drift", "jobs", "chunks",
                              "refresh", "health", "migrate", "device", "token", "version"}) {
    EXPECT_NE(overview.out.find(absl::StrCat("\n  ", command, " ")), std::string::npos)
        << command << "\n" << overview.out;
  }
  EXPECT_EQ(Ctl("--help").out, overview.out);
  EXPECT_EQ(Ctl("--help").rc, 0);

  CliRun range = Ctl("help range");
  EXPECT_EQ(range.rc, 0);
  EXPECT_TRUE(absl::StartsWith(range.out, "Usage: telemetryctl range")) << range.out;
  EXPECT_NE(range.out.find("--start=-24h"), std::string::npos) << range.out;
  EXPECT_NE(range.out.find("--read_target"), std::string::npos) << range.out;  // connection flags
  EXPECT_EQ(range.out.find("--batch_size"), std::string::npos) << range.out;  // not send's
  EXPECT_EQ(Ctl("range --help").out, range.out);
  EXPECT_NE(Ctl("help send").out, range.out);

  CliRun none = Ctl("");
  EXPECT_EQ(none.rc, 2);
  EXPECT_NE(none.err.find("Usage: telemetryctl COMMAND"), std::string::npos);
}

TEST(TelemetryctlHelp, VersionComesFromTheBuild) {
  CliRun v = Ctl("--version");
  EXPECT_EQ(v.rc, 0);
  EXPECT_TRUE(std::regex_match(v.out, std::regex("telemetryctl [0-9]+\\.[0-9]+\\.[0-9]+\\+\\S+\n")))
      << v.out;
  EXPECT_EQ(Ctl("version").out, v.out);
}

TEST(TelemetryctlHelp, UnknownCommandsAndFlagsThatDoNotApplyAreRefusedByName) {
  CliRun typo = Ctl("latset --sensor=a");
  EXPECT_EQ(typo.rc, 2);
  EXPECT_NE(typo.err.find("unknown command 'latset'; did you mean 'latest'?"), std::string::npos)
      << typo.err;
  CliRun wrong_flag = Ctl("latest --sensor=a --batch_size=5");
  EXPECT_EQ(wrong_flag.rc, 2);
  EXPECT_NE(wrong_flag.err.find("--batch_size does not apply to 'latest'"), std::string::npos)
      << wrong_flag.err;
  CliRun negated = Ctl("jobs --nomtls");
  EXPECT_EQ(negated.rc, 2);
  EXPECT_NE(negated.err.find("--mtls does not apply to 'jobs'"), std::string::npos) << negated.err;
  EXPECT_EQ(Ctl("jobs extra").rc, 2);
  EXPECT_EQ(Ctl("migrate sideways --database_url=x").rc, 2);
  // Misuse abseil would exit 1 on exits 2, with no connection tried.
  CliRun unknown = Ctl("latest --sensr=a");
  EXPECT_EQ(unknown.rc, 2);
  EXPECT_NE(unknown.err.find("unknown flag --sensr"), std::string::npos) << unknown.err;
  CliRun bad_value = Ctl("latest --sensor=a --limit=lots");
  EXPECT_EQ(bad_value.rc, 2);
  EXPECT_NE(bad_value.err.find("--limit=lots"), std::string::npos) << bad_value.err;
  EXPECT_EQ(Ctl("latest --sensor").rc, 2);       // no value
  EXPECT_EQ(Ctl("chunks -o").rc, 2);             // no format
  EXPECT_EQ(Ctl("sensors sideways --read_target=127.0.0.1:1").rc, 2);
  CliRun scope = Ctl("token add x --scope=root --database_url='host=127.0.0.1 port=1'");
  EXPECT_EQ(scope.rc, 2);  // refused before the (unreachable) database is asked
  EXPECT_NE(scope.err.find("--scope must be read or admin, not 'root'"), std::string::npos)
      << scope.err;
}

TEST(TelemetryctlHelp, AFlagsValueMayBeTheNextArgumentEvenWithADash) {
  // --start -7d is the value -7d, not a flag "-7d"; -o json and -ojson and
  // -o=json are the output format. Reaching the (dead) service means the
  // arguments were accepted.
  for (const char* args :
       {"range --start -7d --end now", "range --start=-7d -o json", "range -ojson",
        "range -o=json", "range --sensor s0 --start -90m"}) {
    CliRun r = Ctl(absl::StrCat(args, " --plaintext --read_target=127.0.0.1:", ClosedPort()));
    EXPECT_EQ(r.rc, 1) << args << ": " << r.err;
    EXPECT_NE(r.err.find("cannot reach"), std::string::npos) << args << ": " << r.err;
  }
}

TEST(TelemetryctlConnect, AnUnreachableServiceFailsAtOnceSayingWhy) {
  const std::string dead = absl::StrCat("127.0.0.1:", ClosedPort());
  // A connect timeout far beyond the test's: only failing on the refusal
  // itself, not on the timeout, lets these finish.
  CliRun latest = Ctl(absl::StrCat("latest --plaintext --sensor=a --connect_timeout=1h "
                                "--read_target=", dead));
  EXPECT_EQ(latest.rc, 1);
  EXPECT_NE(latest.err.find("cannot reach " + dead), std::string::npos) << latest.err;
  EXPECT_NE(latest.err.find("UNAVAILABLE"), std::string::npos) << latest.err;
  EXPECT_NE(latest.err.find("Connection refused"), std::string::npos) << latest.err;

  const std::string csv = absl::StrCat(::testing::TempDir(), "/dead.csv");
  std::ofstream(csv) << "sensor_id,timestamp,value\na,now,1\n";
  CliRun send = Ctl(absl::StrCat("send --plaintext --connect_timeout=1h --timeout=1h --target=",
                              dead, " --file=", csv));
  EXPECT_EQ(send.rc, 1);
  EXPECT_NE(send.err.find("cannot reach " + dead), std::string::npos) << send.err;

  CliRun health = Ctl(absl::StrCat("health --plaintext --target=", dead));
  EXPECT_EQ(health.rc, 1);
  EXPECT_TRUE(absl::StartsWith(health.out, "UNREACHABLE " + dead)) << health.out;
}

TEST_F(ReadServiceTest, TelemetryctlTlsMismatchAndHealth) {
  const std::string gateway = absl::StrCat("127.0.0.1:", gateway_->port());
  // TLS (the default) against the plaintext loopback gateway.
  CliRun tls = Ctl(absl::StrCat("health --connect_timeout=1h --target=", gateway));
  EXPECT_EQ(tls.rc, 1);
  EXPECT_NE(tls.out.find("UNREACHABLE"), std::string::npos) << tls.out;
  CliRun ok = Ctl(absl::StrCat("health --plaintext --target=", gateway));
  EXPECT_EQ(ok.rc, 0) << ok.out << ok.err;
  EXPECT_EQ(ok.out, "SERVING\n");
  CliRun service = Ctl(absl::StrCat("health --plaintext --service=telemetry.v1.IngestService "
                                 "--target=", gateway));
  EXPECT_EQ(service.out, "SERVING\n");
  CliRun unknown = Ctl(absl::StrCat("health --plaintext --service=nope --target=", gateway));
  EXPECT_EQ(unknown.rc, 1);
  EXPECT_NE(unknown.out.find("NOT_FOUND"), std::string::npos) << unknown.out;
}

TEST_F(ReadServiceTest, TelemetryctlOutputFormatsAndTimeArguments) {
  const std::string read = absl::StrCat("--plaintext --read_target=127.0.0.1:", reader_->port());
  CliRun json = Ctl(absl::StrCat("latest --sensor=s0 --limit=2 -o json ", read));
  ASSERT_EQ(json.rc, 0) << json.err;
  EXPECT_TRUE(absl::StartsWith(json.out, "[\n{\"sensor_id\":\"s0\",\"timestamp\":\"")) << json.out;
  EXPECT_TRUE(std::regex_search(json.out, std::regex("\"value\":-?[0-9]"))) << json.out;
  EXPECT_NE(json.out.find("\"unit\":\"bar\",\"quality\":null,\"metadata\":null}"),
            std::string::npos) << json.out;
  EXPECT_TRUE(absl::EndsWith(json.out, "}\n]\n")) << json.out;

  CliRun table = Ctl(absl::StrCat("chunks -o table ", read));
  ASSERT_EQ(table.rc, 0) << table.err;
  EXPECT_TRUE(absl::StartsWith(table.out, "name ")) << table.out;
  EXPECT_NE(table.out.find("-+-"), std::string::npos) << table.out;
  EXPECT_TRUE(std::regex_search(table.out, std::regex("[0-9.]+ (B|KiB|MiB)"))) << table.out;
  CliRun csv = Ctl(absl::StrCat("chunks ", read));  // piped: CSV
  EXPECT_TRUE(absl::StartsWith(csv.out, "name,range_start,range_end,total_bytes,")) << csv.out;
  EXPECT_EQ(Ctl(absl::StrCat("chunks -o yaml ", read)).rc, 2);

  // The fixture has 360 readings per sensor per hour from base_us_; the
  // forms operators type select the same hour.
  const absl::Time hour = absl::FromUnixMicros(base_us_ + kHourUs);
  const std::string psql_style = absl::FormatTime("'%Y-%m-%d %H:%M:%S'", hour, absl::UTCTimeZone());
  const std::string rfc3339 = absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", hour + absl::Hours(1),
                                               absl::UTCTimeZone());
  CliRun one_hour = Ctl(absl::StrCat("range --sensor=s0 --start=", psql_style, " --end=", rfc3339,
                                  " ", read));
  ASSERT_EQ(one_hour.rc, 0) << one_hour.err;
  EXPECT_EQ(std::count(one_hour.out.begin(), one_hour.out.end(), '\n'), 361) << one_hour.err;
  CliRun week = Ctl(absl::StrCat("range --sensor=s0 --start=-7d ", read));
  EXPECT_EQ(std::count(week.out.begin(), week.out.end(), '\n'), 1 + 5 * 360) << week.err;
  const std::string day = absl::FormatTime("%Y-%m-%d", absl::FromUnixMicros(base_us_) -
                                                           absl::Hours(24), absl::UTCTimeZone());
  CliRun since_date = Ctl(absl::StrCat("range --sensor=s0 --start=", day, " ", read));
  EXPECT_EQ(since_date.out, week.out);

  // A reversed window is refused before anything is written.
  const std::string file = absl::StrCat(::testing::TempDir(), "/reversed.csv");
  std::remove(file.c_str());
  CliRun reversed = Ctl(absl::StrCat("range --start=now --end=-1h --file=", file, " ", read));
  EXPECT_EQ(reversed.rc, 2);
  EXPECT_NE(reversed.err.find("is not before --end"), std::string::npos) << reversed.err;
  EXPECT_FALSE(std::ifstream(file).good());
  CliRun bad_time = Ctl(absl::StrCat("summary --sensors=s0 --start=yesterday ", read));
  EXPECT_EQ(bad_time.rc, 2);
  EXPECT_NE(bad_time.err.find("--start: cannot read 'yesterday'"), std::string::npos)
      << bad_time.err;
  // Status codes by name.
  CliRun missing = Ctl(absl::StrCat("latest --sensor= ", read));
  EXPECT_EQ(missing.rc, 2);
}

TEST_F(ReadServiceTest, TelemetryctlExportReadsBackLosslessly) {
  // Values that %.17g would print long, metadata and quality; the export is
  // written, the rows deleted, the export sent back and exported again:
  // byte-identical.
  v1::ReadingBatch b;
  b.set_idempotency_key(absl::StrCat(Db(), "-lossless"));
  const int64_t t0 = absl::ToUnixMicros(absl::Now()) - 600'000'000;
  for (int i = 0; i < 50; ++i) {
    v1::Reading r = MakeReading("rt-1", t0 + i * 1'000'001, 0.1 * i + 0.2);
    if (i % 3 == 0) r.set_quality(1.0 / 3);
    if (i % 5 == 0) {
      (*r.mutable_metadata()->mutable_fields())["fw"].set_string_value("1.2,\"beta\"");
      (*r.mutable_metadata()->mutable_fields())["n"].set_number_value(i);
    }
    *b.add_readings() = r;
  }
  Write(b);
  const std::string read = absl::StrCat("--plaintext --read_target=127.0.0.1:", reader_->port());
  const std::string first = absl::StrCat(::testing::TempDir(), "/rt1.csv");
  const std::string second = absl::StrCat(::testing::TempDir(), "/rt2.csv");
  CliRun exported = Ctl(absl::StrCat("range --sensor=rt-1 --start=-1h --file=", first, " ", read));
  ASSERT_EQ(exported.rc, 0) << exported.err;
  EXPECT_NE(exported.err.find("exported 50 readings"), std::string::npos) << exported.err;
  EXPECT_NE(Slurp(first).find("0.30000000000000004"), std::string::npos) << Slurp(first);
  Q("DELETE FROM sensor_readings WHERE sensor_id = 'rt-1'");
  ASSERT_EQ(Q("SELECT count(*) FROM sensor_readings WHERE sensor_id = 'rt-1'"), "0");
  CliRun sent = Ctl(absl::StrCat("send --plaintext --file=", first, " --target=127.0.0.1:",
                              gateway_->port()));
  ASSERT_EQ(sent.rc, 0) << sent.err;
  EXPECT_NE(sent.out.find("sent 50 readings: 50 accepted"), std::string::npos) << sent.out;
  ASSERT_EQ(Ctl(absl::StrCat("range --sensor=rt-1 --start=-1h --file=", second, " ", read)).rc, 0);
  EXPECT_EQ(Slurp(second), Slurp(first));
}

TEST_F(ReadServiceTest, TelemetrySendReportsEveryRejectionByLine) {
  const std::string csv = absl::StrCat(::testing::TempDir(), "/rejects.csv");
  const int64_t now = absl::ToUnixSeconds(absl::Now());
  {
    std::ofstream out(csv);
    out << "sensor_id,timestamp,value\n";                   // line 1
    out << "rj-1," << now - 60 << ",1\n";                   // 2
    out << "rj-1," << now + 86400 << ",2\n";                // 3: a day in the future
    out << "rj-1,\"" << now - 59 << "\",\"3\"\n";           // 4
    out << "rj-1," << now - 58 << ",not-a-number\n";        // 5: unparsable
    out << "\"rj-\n1\"," << now - 57 << ",4\n";             // 6-7: a quoted newline
    out << "rj-1," << now + 2 * 86400 << ",5\n";            // 8: future again
  }
  CliRun sent = Ctl(absl::StrCat("send --plaintext --batch_size=2 --file=", csv,
                              " --target=127.0.0.1:", gateway_->port()));
  EXPECT_EQ(sent.rc, 1);
  EXPECT_NE(sent.out.find("sent 5 readings: 2 accepted, 0 duplicates, 3 rejected, 1 unparsable"),
            std::string::npos) << sent.out;
  const std::vector<std::string> lines = absl::StrSplit(sent.err, '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 4u) << sent.err;
  EXPECT_TRUE(absl::StartsWith(lines[0], "line 5: unparsable: ")) << sent.err;
  EXPECT_TRUE(absl::StartsWith(lines[1], "line 3: rejected: ")) << sent.err;
  EXPECT_TRUE(absl::StartsWith(lines[2], "line 6: rejected: ")) << sent.err;  // bad sensor id
  EXPECT_TRUE(absl::StartsWith(lines[3], "line 8: rejected: ")) << sent.err;
}

TEST_F(ReadServiceTest, TelemetryctlCredentialErrorsAreWordsNotDatabaseInternals) {
  const std::string db = absl::StrCat("--database_url='", conninfo_, "'");
  CliRun first = Ctl(absl::StrCat("device add dup-dev --sensors='dup-*' ", db));
  ASSERT_EQ(first.rc, 0) << first.err;
  const std::string token = first.out.substr(0, first.out.find('\n'));
  CliRun again = Ctl(absl::StrCat("device add dup-dev --sensors='dup-*' ", db));
  EXPECT_EQ(again.rc, 1);
  EXPECT_NE(again.err.find("device dup-dev already exists; `telemetryctl device rotate dup-dev`"),
            std::string::npos) << again.err;
  EXPECT_EQ(again.err.find("duplicate key"), std::string::npos) << again.err;
  EXPECT_EQ(again.out, "");  // no token printed for a device that was not added

  CliRun scope = Ctl(absl::StrCat("token add t1 --scope=superuser ", db));
  EXPECT_EQ(scope.rc, 2);
  EXPECT_NE(scope.err.find("--scope must be read or admin, not 'superuser'"), std::string::npos)
      << scope.err;
  EXPECT_EQ(scope.out, "");
  EXPECT_EQ(Q("SELECT count(*) FROM api_tokens WHERE name = 't1'"), "0");
  // No digest anywhere: neither of the device's token nor any hex run.
  for (const CliRun& r : {again, scope}) {
    EXPECT_FALSE(std::regex_search(r.err, std::regex("[0-9a-f]{32}"))) << r.err;
    EXPECT_EQ(r.err.find(token), std::string::npos);
  }
  CliRun list = Ctl(absl::StrCat("device list -o json ", db));
  EXPECT_EQ(list.rc, 0) << list.err;
  EXPECT_NE(list.out.find("{\"device_id\":\"dup-dev\",\"sensors\":\"dup-*\",\"credential\":"
                          "\"token\",\"created_at\":\""),
            std::string::npos) << list.out;
  EXPECT_NE(list.out.find("\"revoked_at\":null}"), std::string::npos) << list.out;
}

TEST_F(ReadServiceTest, TelemetryctlShowsProgressAndTablesOnATerminalOnly) {
  const std::string csv = absl::StrCat(::testing::TempDir(), "/progress.csv");
  const int64_t now_us = absl::ToUnixMicros(absl::Now());
  {
    std::ofstream out(csv);
    out << "sensor_id,timestamp,value\n";
    for (int i = 0; i < 20000; ++i) {
      out << "pg-1," << absl::StrFormat("%.3f", (now_us - 3'000'000'000 + i * 1000) / 1e6) << ","
          << i << "\n";
    }
  }
  const std::string send = absl::StrCat(TELEMETRYCTL_PATH, " send --plaintext --file=", csv,
                                        " --target=127.0.0.1:", gateway_->port());
  const std::string typescript = absl::StrCat(::testing::TempDir(), "/typescript");
  // script(1) runs the command on a pseudo-terminal and copies what it drew.
  const std::string cmd = absl::StrCat("TERM=xterm script -qec '", send, "' ", typescript,
                                       " > /dev/null 2>&1");
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  const std::string drawn = Slurp(typescript);
  EXPECT_NE(drawn.find("\r\033[Ksent "), std::string::npos) << drawn;
  EXPECT_NE(drawn.find(" rows/s"), std::string::npos) << drawn;
  EXPECT_NE(drawn.find("%"), std::string::npos) << drawn;  // a file: the fraction done
  EXPECT_NE(drawn.find("sent 20000 readings: 20000 accepted"), std::string::npos) << drawn;
  CliRun piped = Ctl(absl::StrCat("send --plaintext --file=", csv, " --target=127.0.0.1:",
                               gateway_->port()));
  EXPECT_EQ(piped.rc, 0) << piped.err;
  EXPECT_EQ(piped.err, "");  // no progress when not a terminal
  EXPECT_NE(piped.out.find("20000 duplicates"), std::string::npos) << piped.out;

  // range --file typed at a terminal still writes CSV (what send reads),
  // not the screen's table.
  const std::string file = absl::StrCat(::testing::TempDir(), "/terminal-export.csv");
  const std::string range = absl::StrCat(TELEMETRYCTL_PATH, " range --plaintext --sensor=pg-1 "
                                         "--start=-1h --file=", file, " --read_target=127.0.0.1:",
                                         reader_->port());
  ASSERT_EQ(std::system(absl::StrCat("TERM=xterm script -qec '", range, "' ", typescript,
                                     " > /dev/null 2>&1").c_str()), 0);
  EXPECT_TRUE(absl::StartsWith(Slurp(file), "sensor_id,timestamp,value,")) << Slurp(file);
  EXPECT_NE(Slurp(typescript).find("\r\033[Kexported "), std::string::npos) << Slurp(typescript);

  const std::string latest = absl::StrCat(TELEMETRYCTL_PATH, " latest --plaintext --sensor=pg-1 "
                                          "--limit=2 --read_target=127.0.0.1:", reader_->port());
  ASSERT_EQ(std::system(absl::StrCat("TERM=xterm script -qec '", latest, "' ", typescript,
                                     " > /dev/null 2>&1").c_str()), 0);
  EXPECT_NE(Slurp(typescript).find("sensor_id | timestamp"), std::string::npos)
      << Slurp(typescript);
}

// The first column of a CSV's second line: the id of the record printed.
std::string FirstId(const std::string& csv) {
  std::vector<std::string> lines = absl::StrSplit(csv, '\n');
  return lines.size() > 1 ? std::string(lines[1].substr(0, lines[1].find(','))) : "";
}

TEST_F(ReadServiceTest, TelemetryctlCoversSensorsAlertsTasksAndLogs) {
  const std::string read = absl::StrCat("--plaintext --read_target=127.0.0.1:", reader_->port());
  CliRun set = Ctl(absl::StrCat("sensors set s0 --type=pressure --location='hall 3' ", read));
  ASSERT_EQ(set.rc, 0) << set.err;
  EXPECT_NE(set.out.find("s0,pressure,hall 3,"), std::string::npos) << set.out;
  EXPECT_NE(Ctl(absl::StrCat("sensors get s0 ", read)).out.find("s0,pressure,hall 3"),
            std::string::npos);
  CliRun sensors = Ctl(absl::StrCat("sensors list -o json ", read));
  EXPECT_NE(sensors.out.find("\"sensor_id\":\"s2\""), std::string::npos) << sensors.out;
  CliRun missing = Ctl(absl::StrCat("sensors get nope ", read));
  EXPECT_EQ(missing.rc, 1);
  EXPECT_NE(missing.err.find("sensors get: NOT_FOUND"), std::string::npos) << missing.err;

  CliRun created = Ctl(absl::StrCat("alerts create --sensor=s1 --anomaly_type=vibration_spike "
                                    "--severity=4 --confidence=0.9 --actions='inspect,replace' ",
                                    read));
  ASSERT_EQ(created.rc, 0) << created.err;
  const std::string alert = FirstId(created.out);
  ASSERT_EQ(alert.size(), 36u) << created.out;
  EXPECT_NE(created.out.find(",s1,vibration_spike,4,0.9,open,"), std::string::npos) << created.out;
  EXPECT_NE(Ctl(absl::StrCat("alerts ack ", alert, " ", read)).out.find(",acknowledged,"),
            std::string::npos);
  EXPECT_NE(Ctl(absl::StrCat("alerts resolve ", alert, " ", read)).out.find(",resolved,"),
            std::string::npos);
  CliRun alerts = Ctl(absl::StrCat("alerts list --status=resolved --created_after=-1h -o json ",
                                   read));
  EXPECT_NE(alerts.out.find(absl::StrCat("{\"id\":\"", alert, "\"")), std::string::npos)
      << alerts.out;
  EXPECT_NE(alerts.out.find("\"recommended_actions\":\"inspect,replace\""), std::string::npos);
  EXPECT_EQ(Ctl(absl::StrCat("alerts create --sensor=s1 ", read)).rc, 2);  // no anomaly type

  CliRun task = Ctl(absl::StrCat("tasks create --equipment=pump-7 --task_type=bearing_replacement "
                                 "--sensor=s1 --priority=2 --hours=1.5 --scheduled_start=-1h "
                                 "--scheduled_end=now ", read));
  ASSERT_EQ(task.rc, 0) << task.err;
  const std::string task_id = FirstId(task.out);
  EXPECT_NE(task.out.find(",pump-7,s1,bearing_replacement,2,"), std::string::npos) << task.out;
  CliRun moved = Ctl(absl::StrCat("tasks set-status ", task_id, " --status=in_progress ", read));
  EXPECT_NE(moved.out.find(",in_progress,"), std::string::npos) << moved.out << moved.err;
  CliRun log = Ctl(absl::StrCat("logs add --task=", task_id, " --technician=t-9 --hours=1.25 "
                                "--notes='swapped, greased' ", read));
  ASSERT_EQ(log.rc, 0) << log.err;
  EXPECT_NE(log.out.find(absl::StrCat(",", task_id, ",pump-7,")), std::string::npos) << log.out;
  EXPECT_NE(log.out.find(",t-9,completed,1.25,"), std::string::npos) << log.out;
  EXPECT_NE(log.out.find("\"swapped, greased\""), std::string::npos) << log.out;
  CliRun logs = Ctl(absl::StrCat("logs list --task=", task_id, " -o json ", read));
  EXPECT_NE(logs.out.find("\"notes\":\"swapped, greased\""), std::string::npos) << logs.out;
  CliRun tasks = Ctl(absl::StrCat("tasks list --equipment=pump-7 ", read));
  EXPECT_EQ(FirstId(tasks.out), task_id) << tasks.out;
  CliRun bad = Ctl(absl::StrCat("tasks set-status ", task_id, " --status=sideways ", read));
  EXPECT_EQ(bad.rc, 1);
  EXPECT_NE(bad.err.find("INVALID_ARGUMENT"), std::string::npos) << bad.err;
}

}  // namespace
}  // namespace telemetry::testing
