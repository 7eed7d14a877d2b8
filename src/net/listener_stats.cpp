#include "net/listener_stats.hpp"

namespace petrel::net {

bool RateLimiter::allow(std::uint64_t& suppressed) {
  std::lock_guard lock(mutex_);
  const auto now = std::chrono::steady_clock::now();
  if (now - window_ >= std::chrono::seconds(1)) {
    window_ = now;
    used_ = 0;
  }
  if (used_ < kLogBurst) {
    ++used_;
    suppressed = suppressed_;
    suppressed_ = 0;
    return true;
  }
  ++suppressed_;
  return false;
}

void ListenerStats::count_failure(const std::string& label) {
  std::lock_guard lock(mutex_);
  ++failures_[label];
}

std::map<std::string, std::uint64_t> ListenerStats::failures() const {
  std::lock_guard lock(mutex_);
  return failures_;
}

std::uint64_t ListenerStats::failures_total() const {
  std::lock_guard lock(mutex_);
  std::uint64_t n = 0;
  for (const auto& [_, c] : failures_) n += c;
  return n;
}

std::string_view ListenerStats::state_name(int s) {
  switch (static_cast<ListenerState>(s)) {
    case ListenerState::Accepting: return "accepting";
    case ListenerState::BackingOff: return "backing off";
    case ListenerState::Closed: return "closed";
  }
  return "unknown";
}

}  // namespace petrel::net
