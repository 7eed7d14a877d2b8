#include "app/process.hpp"

#include <sys/resource.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace petrel::app {

http::ProcessStatus process_status(http::TimePoint started_at, unsigned event_loops) {
  http::ProcessStatus p;
  p.started_at = started_at;
  p.event_loops = event_loops;
  // /proc/self/stat: after the command name (in parentheses, which may hold
  // spaces), field 14 is utime, 15 stime (clock ticks), 23 vsize (bytes),
  // 24 rss (pages).
  std::ifstream in("/proc/self/stat");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const auto close = text.rfind(')');
  if (close != std::string::npos) {
    std::istringstream fields(text.substr(close + 2));
    std::string f;
    unsigned long long utime = 0, stime = 0, vsize = 0, rss = 0;
    for (int i = 3; fields >> f; ++i) {
      if (i == 14) utime = std::stoull(f);
      if (i == 15) stime = std::stoull(f);
      if (i == 23) vsize = std::stoull(f);
      if (i == 24) {
        rss = std::stoull(f);
        break;
      }
    }
    p.cpu_seconds = static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
    p.virtual_bytes = vsize;
    p.resident_bytes = rss * static_cast<unsigned long long>(sysconf(_SC_PAGESIZE));
  }
  std::error_code ec;
  for (auto it = std::filesystem::directory_iterator("/proc/self/fd", ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec))
    ++p.open_fds;
  if (p.open_fds) --p.open_fds;  // the directory iterator's own descriptor
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0) p.max_fds = limit.rlim_cur;
  return p;
}

}  // namespace petrel::app
