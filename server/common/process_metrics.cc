#include "server/common/process_metrics.h"

#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <vector>

#include <prometheus/gauge.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "server/common/build_version.h"

namespace telemetry {
namespace {

prometheus::MetricFamily Family(const char* name, const char* help,
                                prometheus::MetricType type, double value) {
  prometheus::MetricFamily f;
  f.name = name;
  f.help = help;
  f.type = type;
  prometheus::ClientMetric m;
  if (type == prometheus::MetricType::Counter) {
    m.counter.value = value;
  } else {
    m.gauge.value = value;
  }
  f.metric.push_back(std::move(m));
  return f;
}

// Seconds since the epoch at which the system booted (/proc/stat btime).
double BootTime() {
  std::ifstream in("/proc/stat");
  std::string line;
  while (std::getline(in, line)) {
    double v;
    if (line.rfind("btime ", 0) == 0 && absl::SimpleAtod(line.substr(6), &v)) return v;
  }
  return 0;
}

int OpenFds() {
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) return -1;
  int n = 0;
  while (dirent* e = readdir(dir)) {
    if (e->d_name[0] != '.') ++n;
  }
  closedir(dir);
  return n - 1;  // the directory's own descriptor
}

class ProcessCollector : public prometheus::Collectable {
 public:
  ProcessCollector() : ticks_(static_cast<double>(sysconf(_SC_CLK_TCK))),
                       page_(static_cast<double>(sysconf(_SC_PAGESIZE))),
                       boot_(BootTime()) {}

  std::vector<prometheus::MetricFamily> Collect() const override {
    using prometheus::MetricType;
    std::vector<prometheus::MetricFamily> out;
    std::string stat;
    {
      std::ifstream in("/proc/self/stat");  // closed before the fds are counted
      stat.assign(std::istreambuf_iterator<char>(in), {});
    }
    // The command name (field 2) is in parentheses and may hold spaces: the
    // fields that follow start after the last ')'.
    const size_t paren = stat.rfind(')');
    if (paren != std::string::npos && paren + 2 < stat.size()) {
      std::vector<absl::string_view> f =
          absl::StrSplit(absl::string_view(stat).substr(paren + 2), ' ');
      // f[0] is field 3 (state): field N is f[N - 3].
      auto field = [&](size_t n) {
        double v = 0;
        return n - 3 < f.size() && absl::SimpleAtod(f[n - 3], &v) ? v : 0.0;
      };
      out.push_back(Family("process_cpu_seconds_total", "User and system CPU time spent",
                           MetricType::Counter, (field(14) + field(15)) / ticks_));
      out.push_back(Family("process_threads", "Threads of the process", MetricType::Gauge,
                           field(20)));
      out.push_back(Family("process_start_time_seconds",
                           "When the process started, in seconds since the epoch",
                           MetricType::Gauge, boot_ + field(22) / ticks_));
      out.push_back(Family("process_virtual_memory_bytes", "Virtual memory size",
                           MetricType::Gauge, field(23)));
      out.push_back(Family("process_resident_memory_bytes", "Resident memory size",
                           MetricType::Gauge, field(24) * page_));
    }
    if (int fds = OpenFds(); fds >= 0) {
      out.push_back(Family("process_open_fds", "Open file descriptors", MetricType::Gauge, fds));
    }
    rlimit limit{};
    if (getrlimit(RLIMIT_NOFILE, &limit) == 0) {
      out.push_back(Family("process_max_fds", "The limit on open file descriptors",
                           MetricType::Gauge, static_cast<double>(limit.rlim_cur)));
    }
    return out;
  }

 private:
  const double ticks_, page_, boot_;
};

}  // namespace

std::shared_ptr<prometheus::Collectable> MakeProcessCollector() {
  return std::make_shared<ProcessCollector>();
}

void RegisterBuildInfo(prometheus::Registry& registry, const std::string& service) {
  prometheus::BuildGauge()
      .Name("telemetry_build_info")
      .Help("Always 1; the labels say which build of which service this is")
      .Register(registry)
      .Add({{"service", service}, {"version", BuildVersion()}})
      .Set(1);
}

}  // namespace telemetry
