// Per-listener counters and state, published under
// $SYS/broker/listeners/<name>/... and read by the HTTP API (through app/,
// Server::listener_status()). Also the listener's log rate limiter: a storm
// of failing connections must not flood the log, so each listener logs at
// most kLogBurst failure lines per second and then says how many it
// suppressed.
//
// Counts an operator alerts on (accepts, refusals, handshake failures) are
// WindowedCounters: a total since start plus the count of the last minute,
// kept in 60 one-second buckets, so "a burst of handshake failures now" can
// be told from "some failures since last month" without a time series.
#pragma once

#include <array>
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

// A counter with its total since start and its count over the last 60
// seconds (one-second buckets, reused as time goes round). Lock-free: adds
// and reads may come from any thread. Two adds racing on the first use of a
// new second may lose one of them from the minute's count (never from the
// total); adds to one listener's counters come mostly from one thread.
class WindowedCounter {
 public:
  static constexpr std::int64_t kWindow = 60;  // seconds
  void add(std::uint64_t n = 1) { add_at(n, now_seconds()); }
  void add_at(std::uint64_t n, std::int64_t second);
  std::uint64_t total() const { return total_.load(std::memory_order_relaxed); }
  std::uint64_t last_minute() const { return last_minute_at(now_seconds()); }
  // The count of the kWindow seconds ending with `second` (inclusive).
  std::uint64_t last_minute_at(std::int64_t second) const;
  static std::int64_t now_seconds();

 private:
  struct Bucket {
    std::atomic<std::int64_t> second{-1};
    std::atomic<std::uint64_t> count{0};
  };
  std::array<Bucket, kWindow> buckets_;
  std::atomic<std::uint64_t> total_{0};
};

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
  std::string type;  // "tcp", "tls", "ws", "wss"
  std::string bind;  // the address and port it listens on (set once bound)
  std::uint16_t port = 0;
  WindowedCounter accepted;
  std::atomic<std::uint64_t> open{0};
  std::atomic<std::uint64_t> handshakes_in_progress{0};
  std::atomic<std::uint64_t> handshakes_completed{0};
  std::atomic<std::uint64_t> rejected_busy{0};  // closed at once: too many handshakes in progress
  std::atomic<int> state{static_cast<int>(ListenerState::Accepting)};
  // When `state` last changed, and when the listener last began backing off
  // (system clock, milliseconds since the epoch; 0: never).
  std::atomic<std::int64_t> state_since{0};
  std::atomic<std::int64_t> last_backoff{0};
  RateLimiter log_limit;

  void count_failure(const std::string& label);
  void set_state(ListenerState s);
  // The last accept error (e.g. "Too many open files") and when it happened.
  void note_accept_error(std::string what);
  struct AcceptError {
    std::string what;
    std::chrono::system_clock::time_point at{};
  };
  AcceptError last_accept_error() const;

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
  struct Count {
    std::uint64_t total = 0, last_minute = 0;
  };
  // Each failure label's total and last minute.
  std::map<std::string, Count> failure_counts() const;
  std::uint64_t failures_total() const;
  static std::string_view state_name(int s);
  // "refusal" (closed at once by a limit: max_connections,
  // too_many_handshakes), "handshake" (a TLS handshake or WebSocket upgrade
  // that failed) or "timeout" (no CONNECT in time).
  static std::string_view failure_kind(std::string_view label);

 private:
  mutable std::mutex mutex_;
  std::map<std::string, WindowedCounter> failures_;
  AcceptError accept_error_;
};

}  // namespace petrel::net
