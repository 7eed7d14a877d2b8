// Per-listener counters and state, published under
// $SYS/broker/listeners/<name>/... and kept for the metrics endpoint. Also the
// listener's log rate limiter: a storm of failing connections must not flood
// the log, so each listener logs at most kLogBurst failure lines per second
// and then says how many it suppressed.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

namespace petrel::net {

enum class ListenerState : int { Accepting = 0, BackingOff = 1, Closed = 2 };

class RateLimiter {
 public:
  static constexpr int kLogBurst = 20;
  // True if a line may be logged now; `suppressed` is set to the number of
  // lines dropped since the last allowed one.
  bool allow(std::uint64_t& suppressed);

 private:
  std::mutex mutex_;
  std::chrono::steady_clock::time_point window_{};
  int used_ = 0;
  std::uint64_t suppressed_ = 0;
};

struct ListenerStats {
  std::string name;
  std::string type;  // "tcp", "tls"
  std::atomic<std::uint64_t> accepted{0};
  std::atomic<std::uint64_t> open{0};
  std::atomic<std::uint64_t> handshakes_in_progress{0};
  std::atomic<std::uint64_t> handshakes_completed{0};
  std::atomic<std::uint64_t> rejected_busy{0};  // closed at once: too many handshakes in progress
  std::atomic<int> state{static_cast<int>(ListenerState::Accepting)};
  RateLimiter log_limit;

  void count_failure(const std::string& label);

  // Logs "listener '<name>': <message>" at warn level unless the rate limit
  // is spent; the message is formatted only when it is logged.
  template <class... Args>
  void warn(fmt::format_string<Args...> format, Args&&... args) {
    std::uint64_t suppressed = 0;
    if (!log_limit.allow(suppressed)) return;
    spdlog::warn("listener '{}': {}{}", name, fmt::format(format, std::forward<Args>(args)...),
                 suppressed ? fmt::format(" ({} similar messages suppressed)", suppressed) : std::string());
  }
  std::map<std::string, std::uint64_t> failures() const;
  std::uint64_t failures_total() const;
  static std::string_view state_name(int s);

 private:
  mutable std::mutex mutex_;
  std::map<std::string, std::uint64_t> failures_;
};

}  // namespace petrel::net
