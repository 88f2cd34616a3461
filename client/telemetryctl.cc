// telemetryctl: the operator's command line.
//
//   telemetryctl help [COMMAND]          what there is, and how each is used
//   telemetryctl COMMAND [--flags] [-o table|csv|json]
//
// Commands are a table below: each names its flags, and a flag given to a
// command it does not apply to is refused (a typo in a script should fail,
// not be ignored). Help goes to stdout and exits 0; misuse goes to stderr and
// exits 2; a failed operation exits 1.
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include "absl/flags/declare.h"
#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/reflection.h"
#include "absl/flags/usage.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "client/channel_flags.h"
#include "client/connect_check.h"
#include "client/output_format.h"
#include "client/progress.h"
#include "client/read_commands.h"
#include "client/record_commands.h"
#include "client/send_command.h"
#include "client/time_args.h"
#include "server/admin/credential_commands.h"
#include "server/admin/migrate_command.h"
#include "server/common/build_version.h"
#include "server/common/flags_env.h"
#include "storage/util/mutex.h"

ABSL_FLAG(std::string, output, "",
          "output format: table (the default on a terminal), csv (the default otherwise) or "
          "json; also -o FORMAT");
ABSL_FLAG(std::string, database_url, "", "PostgreSQL conninfo or URI (env DATABASE_URL)");
ABSL_FLAG(std::string, storage_mode, "auto",
          "on a fresh database: native, timescale or auto (timescale where the extension "
          "exists)");
ABSL_FLAG(std::string, chunk_interval, "1 day", "timescale: chunk interval");
ABSL_FLAG(std::string, compress_after, "7 days", "timescale: compress chunks older than this");
ABSL_FLAG(std::string, retention, "180 days", "timescale: drop chunks older than this");
ABSL_FLAG(int, to, 0, "the version to go back to");
ABSL_FLAG(bool, mtls, false, "no token: the device authenticates by a certificate whose CN is ID");
ABSL_FLAG(std::string, scope, "read", "read (queries) or admin (also writes and AdminService)");
ABSL_DECLARE_FLAG(std::string, sensors);  // read_commands.cc; device add uses it too
ABSL_FLAG(std::string, target, "",
          "gateway address, or several as a comma-separated list of IP:port (env "
          "INGEST_ADDRESS; default 127.0.0.1:50051); for health, any "
          "service's address");
ABSL_FLAG(std::string, file, "-", "send: the CSV file to read; range: the file to write; - is "
          "stdin/stdout");
ABSL_FLAG(int, batch_size, 1000, "readings per batch");
ABSL_FLAG(absl::Duration, timeout, absl::Minutes(5),
          "give up on batches not acknowledged this long after the last was sent");
ABSL_FLAG(std::string, spool, "",
          "send: spool every batch in this directory before sending it, and send what an "
          "earlier run left there first (store and forward, as edge-agent does)");
ABSL_FLAG(std::string, service, "",
          "the gRPC service to ask about (e.g. telemetry.v1.IngestService); empty: the "
          "server as a whole");

namespace {

using telemetry::FlagOrEnv;
namespace client = telemetry::client;

// Which connection a command needs: it decides the connection flags it takes.
enum class Needs { kNothing, kGateway, kReadService, kAnyService, kDatabase };

struct Command {
  const char* name;
  const char* group;
  const char* synopsis;
  const char* summary;
  const char* details;  // "" or paragraphs, printed by `help NAME`
  std::vector<const char*> flags;
  Needs needs;
  bool prints_rows;  // takes -o
};

constexpr const char* kGroups[] = {"Ingest", "Read", "Records", "Operations", "Database"};

const std::vector<Command>& Commands() {
  static const auto* commands = new std::vector<Command>{
      {"send", "Ingest", "send [--file=F] [--batch_size=N] [--spool=DIR]",
       "stream CSV readings to the gateway, exactly once",
       "Reads CSV with a header naming its columns, in any order:\n"
       "  sensor_id,timestamp,value[,sensor_type][,unit][,quality][,metadata]\n"
       "timestamp is RFC 3339 or Unix seconds; metadata a JSON object. Batches carry keys\n"
       "derived from their content, so sending a file again stores nothing twice (what\n"
       "was stored comes back as duplicates). Rejected and unparsable readings are\n"
       "listed by line. `range` writes this format, so an export reads back as it was.\n"
       "With --spool=DIR, every batch is written to a crash-safe spool before it is sent\n"
       "and leaves it when answered: a run that is killed, or finds the gateway away,\n"
       "is finished by the next run with the same --spool (a file goes on from where it\n"
       "was; docs/spool.md). edge-agent is the same, for a device that runs for good.\n"
       "Exit status: 0 every reading stored, 1 some rejected or not acknowledged.",
       {"file", "batch_size", "timeout", "spool"}, Needs::kGateway, false},
      {"latest", "Read", "latest --sensor=S [--limit=N]", "a sensor's newest readings", "",
       {"sensor", "limit"}, Needs::kReadService, true},
      {"range", "Read", "range [--sensor=S] --start=T [--end=T] [--file=F]",
       "export readings in a time window (the format send reads)",
       "Streams every reading with start <= timestamp < end, in timestamp order, with\n"
       "all columns send reads back (metadata included). Without --sensor, every sensor.\n"
       "A progress line is shown on a terminal when writing to --file.",
       {"sensor", "start", "end", "file"}, Needs::kReadService, true},
      {"summary", "Read", "summary --sensors=A[,B...] [--start=T] [--end=T]",
       "hourly count, mean, min and max, and where each hour came from",
       "source is 'aggregate' for hours answered from the continuous aggregate and 'raw'\n"
       "for hours computed from the readings (not yet materialised, or changed since).",
       {"sensors", "start", "end"}, Needs::kReadService, true},
      {"drift", "Read",
       "drift --sensor=S [--reference_start=T --reference_end=T] [--current_start=T "
       "--current_end=T] [--bins=N]",
       "compare two windows of a sensor: quantiles, KS test and PSI", "",
       {"sensor", "reference_start", "reference_end", "current_start", "current_end", "bins"},
       Needs::kReadService, true},
      {"sensors", "Records", "sensors list | get ID | set ID [--type=T --location=L --status=S]",
       "the sensor registry",
       "list [--status=S]   every sensor (ordered by id), at most --limit\n"
       "get ID              one sensor\n"
       "set ID              create or update it (admin token)",
       {"status", "type", "location", "limit"}, Needs::kReadService, true},
      {"alerts", "Records",
       "alerts list | get ID | create --sensor=S --anomaly_type=T | ack ID | resolve ID",
       "anomaly alerts and their open/acknowledged/resolved state",
       "list [--sensor=S] [--status=S] [--created_after=T] [--created_before=T]\n"
       "         newest first, at most --limit\n"
       "get ID   one alert\n"
       "create --sensor=S --anomaly_type=T [--severity=1..5] [--confidence=0..1]\n"
       "       [--description=D] [--actions=A,B]   raise one (admin token)\n"
       "ack ID, resolve ID   move it on (admin token)",
       {"sensor", "status", "created_after", "created_before", "limit", "anomaly_type",
        "severity", "confidence", "description", "actions"},
       Needs::kReadService, true},
      {"tasks", "Records",
       "tasks list | get ID | create --equipment=E --task_type=T | set-status ID --status=S",
       "maintenance tasks",
       "list [--equipment=E] [--sensor=S] [--status=S]   newest first, at most --limit\n"
       "get ID\n"
       "create --equipment=E --task_type=T [--sensor=S] [--description=D] [--priority=1..5]\n"
       "       [--technician=T] [--hours=H] [--scheduled_start=T --scheduled_end=T]\n"
       "set-status ID --status=S   (admin token for create and set-status)",
       {"equipment", "sensor", "status", "limit", "task_type", "description", "priority",
        "technician", "hours", "scheduled_start", "scheduled_end"},
       Needs::kReadService, true},
      {"logs", "Records", "logs list [--task=ID] [--equipment=E] | add --task=ID --technician=T",
       "maintenance work logs",
       "list    newest completion first, at most --limit\n"
       "add --task=ID --technician=T [--completed=T] [--status=completed|partial|failed]\n"
       "    [--hours=H] [--notes=N]   (admin token)",
       {"task", "equipment", "limit", "technician", "completed", "status", "hours", "notes"},
       Needs::kReadService, true},
      {"jobs", "Operations", "jobs", "background jobs (refresh, retention, compression), last "
       "run and health", "", {}, Needs::kReadService, true},
      {"chunks", "Operations", "chunks", "partitions or chunks of sensor_readings, sizes, "
       "compression", "", {}, Needs::kReadService, true},
      {"refresh", "Operations", "refresh [--start=T --end=T | --all]",
       "re-materialise the hourly aggregate for a window", "", {"start", "end", "all"},
       Needs::kReadService, false},
      {"retention", "Operations", "retention", "drop data past the retention window now", "",
       {}, Needs::kReadService, false},
      {"compress", "Operations", "compress", "compress chunks that are due now (timescale)", "",
       {}, Needs::kReadService, false},
      {"health", "Operations", "health [--target=HOST:PORT] [--service=NAME]",
       "ask a service (either) whether it is serving: exit 0 if so",
       "Calls grpc.health.v1 at --target and prints SERVING, NOT_SERVING or why the service\n"
       "could not be reached. Exit status 0 only for SERVING: fit for container\n"
       "healthchecks (point it at the services' plaintext --health_listen port).",
       {"target", "service"}, Needs::kAnyService, false},
      {"migrate", "Database", "migrate apply|status|down [--to=N]",
       "apply, list or revert schema migrations",
       "apply    apply pending migrations (--storage_mode decides a fresh database)\n"
       "status   applied and pending migrations\n"
       "down     revert migrations newer than --to=N",
       {"storage_mode", "chunk_interval", "compress_after", "retention", "to"}, Needs::kDatabase,
       false},
      {"device", "Database", "device add|rotate|revoke ID | device list",
       "device credentials: bearer tokens or mutual TLS",
       "add ID --sensors=P[,P...] [--mtls]\n"
       "         register a device that may write the sensors matching the patterns (exact\n"
       "         ids, or prefixes ending in '*'); prints its bearer token once (only its\n"
       "         SHA-256 is stored), or with --mtls none (the certificate's CN is ID)\n"
       "rotate ID   issue a new token (the old one stops working)\n"
       "revoke ID   revoke the device's credentials\n"
       "list        every device, never a token",
       {"sensors", "mtls"}, Needs::kDatabase, true},
      {"token", "Database", "token add NAME --scope=read|admin | token revoke NAME | token list",
       "read-service API tokens",
       "add NAME --scope=read|admin   issue a token (printed once, stored hashed)\n"
       "revoke NAME                   revoke it\n"
       "list                          every token's name and scope, never a token",
       {"scope"}, Needs::kDatabase, true},
      {"version", "Operations", "version", "the build's version", "", {}, Needs::kNothing,
       false},
  };
  return *commands;
}

const Command* Find(absl::string_view name) {
  for (const Command& c : Commands()) {
    if (name == c.name) return &c;
  }
  return nullptr;
}

// Flags every command of a kind takes.
std::vector<const char*> ConnectionFlags(Needs needs) {
  static const std::vector<const char*> kTls = {"plaintext", "tls_ca",   "tls_cert",
                                                "tls_key",   "tls_server_name", "token_file",
                                                "connect_timeout"};
  std::vector<const char*> flags;
  switch (needs) {
    case Needs::kGateway:
    case Needs::kAnyService:
      flags = kTls;
      flags.push_back("target");
      break;
    case Needs::kReadService:
      flags = kTls;
      flags.push_back("read_target");
      break;
    case Needs::kDatabase:
      flags = {"database_url"};
      break;
    case Needs::kNothing:
      break;
  }
  return flags;
}

std::vector<const char*> AllFlags(const Command& c) {
  std::vector<const char*> flags = c.flags;
  for (const char* f : ConnectionFlags(c.needs)) flags.push_back(f);
  if (c.prints_rows) flags.push_back("output");
  return flags;
}

void PrintOverview(std::ostream& out) {
  out << "telemetryctl: operate telemetry-gateway (" << telemetry::BuildVersion() << ")\n\n"
      << "Usage: telemetryctl COMMAND [flags]\n";
  for (const char* group : kGroups) {
    out << "\n" << group << ":\n";
    for (const Command& c : Commands()) {
      if (std::string(c.group) != group) continue;
      out << "  " << c.name << std::string(12 - std::min<size_t>(11, strlen(c.name)), ' ')
          << c.summary << "\n";
    }
  }
  out << "\nConnections: the gateway at $INGEST_ADDRESS (--target), the read service at\n"
         "$READ_ADDRESS (--read_target), both over TLS unless --plaintext\n"
         "(TELEMETRY_PLAINTEXT=1); a token from --token_file ($TELEMETRY_TOKEN_FILE) or\n"
         "$TELEMETRY_TOKEN; the database at $DATABASE_URL (--database_url).\n"
         "Output: -o table|csv|json (table on a terminal, csv otherwise).\n"
         "Times: " << client::kTimeArgForms << ".\n\n"
         "'telemetryctl help COMMAND' (or COMMAND --help) describes one command and its "
         "flags.\n";
}

void PrintFlag(std::ostream& out, const char* name) {
  const absl::CommandLineFlag* flag = absl::FindCommandLineFlag(name);
  if (flag == nullptr) return;
  std::string def = flag->DefaultValue();
  out << "  --" << name;
  if (flag->IsOfType<bool>()) {
    out << "\n";
  } else {
    out << "=" << (def.empty() ? "..." : def) << "\n";
  }
  out << "      " << flag->Help() << "\n";
}

void PrintCommandHelp(const Command& c, std::ostream& out) {
  out << "Usage: telemetryctl " << c.synopsis << "\n\n" << c.summary << ".\n";
  if (*c.details) out << "\n" << c.details << "\n";
  if (!c.flags.empty() || c.prints_rows) {
    out << "\nFlags:\n";
    for (const char* f : c.flags) PrintFlag(out, f);
    if (c.prints_rows) PrintFlag(out, "output");
  }
  if (c.needs != Needs::kNothing) {
    out << "\nConnection flags:\n";
    for (const char* f : ConnectionFlags(c.needs)) PrintFlag(out, f);
  }
}

// Levenshtein distance, for "did you mean".
size_t Distance(absl::string_view a, absl::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] != b[j - 1])});
      diagonal = above;
    }
  }
  return row[b.size()];
}

int UnknownCommand(absl::string_view name) {
  std::cerr << "telemetryctl: unknown command '" << name << "'";
  const Command* best = nullptr;
  size_t best_distance = 3;
  for (const Command& c : Commands()) {
    const size_t d = Distance(name, c.name);
    if (d < best_distance) {
      best = &c;
      best_distance = d;
    }
  }
  if (best != nullptr) std::cerr << "; did you mean '" << best->name << "'?";
  std::cerr << "\nRun 'telemetryctl help' for the list of commands.\n";
  return 2;
}

// What the command line holds besides what abseil parses.
struct Scan {
  bool help = false;
  bool version = false;
  std::string error;                     // misuse found while scanning (exit 2)
  std::vector<std::string> flags_given;  // names, as typed (without "no")
  std::vector<std::string> argv;         // for absl::ParseCommandLine
};

// Takes out --help/-h/--version (abseil's own would exit 1 with every flag
// of every command) and rewrites "-o FORMAT" as --output, which abseil does
// not parse; records which flags were given and checks their names and
// values, so that misuse exits 2 with a message (abseil would exit 1).
// A non-bool flag's value may be the next argument ("--start -7d").
Scan ScanArgs(int argc, char** argv) {
  Scan scan;
  scan.argv.push_back(argv[0]);
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--") {  // the rest is positional
      for (; i < argc; ++i) scan.argv.push_back(argv[i]);
      break;
    }
    if (arg.size() < 2 || arg[0] != '-') {
      scan.argv.push_back(arg);
      continue;
    }
    if (arg == "--help" || arg == "-h" || arg == "-help") {
      scan.help = true;
      continue;
    }
    if (arg == "--version" || arg == "-version") {
      scan.version = true;
      continue;
    }
    if (arg == "-o") {
      if (i + 1 >= argc) {
        scan.error = "-o needs a format: table, csv or json";
        return scan;
      }
      arg = absl::StrCat("--output=", argv[++i]);
    } else if (absl::StartsWith(arg, "-o") && !absl::StartsWith(arg, "--") &&
               !absl::StartsWith(arg, "-output")) {
      arg = absl::StrCat("--output=", absl::StripPrefix(arg.substr(2), "="));
    }
    const std::string body(absl::StripPrefix(absl::StripPrefix(arg, "-"), "-"));
    const size_t eq = body.find('=');
    absl::string_view name = absl::string_view(body).substr(0, eq);  // into body, not arg
    if (name == "helpfull" || name == "helpshort" || name == "helppackage" ||
        name == "helpon" || name == "helpmatch" || name == "only_check_args") {
      scan.argv.push_back(arg);  // abseil's own: every flag of the binary, then exit
      continue;
    }
    absl::CommandLineFlag* flag = absl::FindCommandLineFlag(name);
    if (flag == nullptr && absl::ConsumePrefix(&name, "no")) {
      flag = absl::FindCommandLineFlag(name);
      if (flag != nullptr && !flag->IsOfType<bool>()) flag = nullptr;  // --noX of a bool only
    }
    if (flag == nullptr) {
      scan.error = absl::StrCat("unknown flag ", arg.substr(0, arg.find('=')));
      return scan;
    }
    std::string value;
    if (eq != absl::string_view::npos) {
      value = body.substr(eq + 1);
    } else if (!flag->IsOfType<bool>()) {
      if (i + 1 >= argc) {
        scan.error = absl::StrCat("--", name, " needs a value");
        return scan;
      }
      value = argv[++i];  // taken as is, even when it starts with '-'
      arg = absl::StrCat("--", name, "=", value);
    }
    if (!value.empty() || eq != absl::string_view::npos) {
      // Checked here (abseil would std::exit(1) on a bad value); abseil
      // sets the same value again when it parses.
      std::string err;
      if (!flag->ParseFrom(value, &err)) {
        scan.error = absl::StrCat("--", name, "=", value, ": ", err);
        return scan;
      }
    }
    scan.flags_given.emplace_back(name);
    scan.argv.push_back(arg);
  }
  return scan;
}

int RunCommand(const Command& c, const std::vector<std::string>& args) {
  bool terminal_out = isatty(STDOUT_FILENO) == 1;
  auto format = client::ParseOutputFormat(absl::GetFlag(FLAGS_output), terminal_out);
  if (!format.ok()) {
    std::cerr << "telemetryctl: " << format.status().message() << "\n";
    return 2;
  }
  const std::string name = c.name;
  client::CommandContext context;
  context.format = *format;
  context.format_given = !absl::GetFlag(FLAGS_output).empty();
  context.connect_timeout = client::ConnectTimeoutFromFlags();
  context.progress = client::ProgressLine::StderrIsTerminal();
  if (name == "version") {
    std::cout << "telemetryctl " << telemetry::BuildVersion() << "\n";
    return 0;
  }
  if (name == "send") {
    client::SendOptions o;
    o.target = FlagOrEnv(FLAGS_target, "INGEST_ADDRESS", "127.0.0.1:50051");
    o.file = absl::GetFlag(FLAGS_file);
    o.batch_size = static_cast<size_t>(std::max(1, absl::GetFlag(FLAGS_batch_size)));
    o.timeout = absl::GetFlag(FLAGS_timeout);
    o.connect_timeout = context.connect_timeout;
    o.progress = context.progress;
    const std::string spool = absl::GetFlag(FLAGS_spool);
    if (!spool.empty()) return client::RunSpooledSend(o, spool);
    return client::RunSend(o);
  }
  if (name == "health") {
    const std::string target = FlagOrEnv(FLAGS_target, "INGEST_ADDRESS", "127.0.0.1:50051");
    auto channel = client::OpenChannelFromFlags(target);
    if (!channel.ok()) {
      std::cerr << "telemetryctl: " << channel.status().message() << "\n";
      return 2;
    }
    auto status = client::CheckHealth(*channel, absl::GetFlag(FLAGS_service),
                                      context.connect_timeout);
    if (!status.ok()) {
      const absl::StatusCode code = status.status().code();
      const bool unreachable =
          code == absl::StatusCode::kUnavailable || code == absl::StatusCode::kDeadlineExceeded;
      std::cout << (unreachable ? "UNREACHABLE " : "") << target << ": "
                << status.status().message() << "\n";
      return 1;
    }
    std::cout << client::ServingStatusName(*status) << "\n";
    return *status == client::ServingStatus::kServing ? 0 : 1;
  }
  if (name == "migrate") {
    if (args.size() != 2 || (args[1] != "apply" && args[1] != "status" && args[1] != "down")) {
      std::cerr << "telemetryctl: migrate needs one of apply, status, down\n";
      return 2;
    }
    telemetry::admin::MigrateCommandOptions o;
    o.database_url = FlagOrEnv(FLAGS_database_url, "DATABASE_URL");
    o.storage_mode = absl::GetFlag(FLAGS_storage_mode);
    o.chunk_interval = absl::GetFlag(FLAGS_chunk_interval);
    o.compress_after = absl::GetFlag(FLAGS_compress_after);
    o.retention = absl::GetFlag(FLAGS_retention);
    o.down_to = absl::GetFlag(FLAGS_to);
    const int rc = telemetry::admin::RunMigrateCommand(args[1], o);
    if (rc >= 0) return rc;
    std::cerr << "telemetryctl: migrate needs one of apply, status, down, not '" << args[1]
              << "'\n";
    return 2;
  }
  if (name == "device" || name == "token") {
    const size_t want = args.size() >= 2 && args[1] == "list" ? 2 : 3;
    if (args.size() != want) {
      std::cerr << "telemetryctl: usage: telemetryctl " << c.synopsis << "\n";
      return 2;
    }
    telemetry::admin::CredentialCommandOptions o;
    o.database_url = FlagOrEnv(FLAGS_database_url, "DATABASE_URL");
    o.sensors = absl::GetFlag(FLAGS_sensors);
    o.mtls = absl::GetFlag(FLAGS_mtls);
    o.scope = absl::GetFlag(FLAGS_scope);
    o.format = *format;
    const int rc = telemetry::admin::RunCredentialCommand(args, o);
    if (rc >= 0) return rc;
    std::cerr << "telemetryctl: usage: telemetryctl " << c.synopsis << "\n";
    return 2;
  }
  if (const int rc = client::RunRecordCommand(args, context); rc >= 0) return rc;
  if (args.size() != 1) {
    std::cerr << "telemetryctl: " << name << " takes no arguments besides flags (got '"
              << args[1] << "')\n";
    return 2;
  }
  return client::RunReadCommand(name, context);
}

}  // namespace

int main(int argc, char** argv) {
  telemetry::DisableMutexDeadlockDetection();
  Scan scan = ScanArgs(argc, argv);
  if (!scan.error.empty()) {
    std::cerr << "telemetryctl: " << scan.error << "; see 'telemetryctl help'\n";
    return 2;
  }
  if (scan.version) {
    std::cout << "telemetryctl " << telemetry::BuildVersion() << "\n";
    return 0;
  }
  absl::SetProgramUsageMessage("telemetryctl COMMAND [flags]; 'telemetryctl help' lists them");
  std::vector<char*> raw;
  for (std::string& a : scan.argv) raw.push_back(a.data());
  std::vector<char*> positional = absl::ParseCommandLine(static_cast<int>(raw.size()), raw.data());
  std::vector<std::string> args(positional.begin() + 1, positional.end());

  // `help [COMMAND]` and `[COMMAND] --help`: stdout, exit 0.
  const bool help_command = !args.empty() && args[0] == "help";
  if (help_command || scan.help) {
    const size_t named = help_command ? 1 : 0;
    if (args.size() <= named) {
      PrintOverview(std::cout);
      return 0;
    }
    const Command* c = Find(args[named]);
    if (c == nullptr) return UnknownCommand(args[named]);
    PrintCommandHelp(*c, std::cout);
    return 0;
  }
  if (args.empty()) {
    PrintOverview(std::cerr);
    return 2;
  }
  const Command* command = Find(args[0]);
  if (command == nullptr) return UnknownCommand(args[0]);
  const std::vector<const char*> allowed = AllFlags(*command);
  for (const std::string& flag : scan.flags_given) {
    if (std::none_of(allowed.begin(), allowed.end(),
                     [&](const char* a) { return flag == a; })) {
      std::cerr << "telemetryctl: --" << flag << " does not apply to '" << command->name
                << "'; see 'telemetryctl help " << command->name << "'\n";
      return 2;
    }
  }
  return RunCommand(*command, args);
}
