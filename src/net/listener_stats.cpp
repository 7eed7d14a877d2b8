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

std::int64_t WindowedCounter::now_seconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

void WindowedCounter::add_at(std::uint64_t n, std::int64_t second) {
  Bucket& b = buckets_[static_cast<std::size_t>(second % kWindow)];
  std::int64_t seen = b.second.load(std::memory_order_acquire);
  // The first add of a new second claims the bucket and restarts it.
  if (seen != second && seen < second && b.second.compare_exchange_strong(seen, second, std::memory_order_acq_rel))
    b.count.store(0, std::memory_order_relaxed);
  if (b.second.load(std::memory_order_acquire) == second) b.count.fetch_add(n, std::memory_order_relaxed);
  total_.fetch_add(n, std::memory_order_relaxed);
}

std::uint64_t WindowedCounter::last_minute_at(std::int64_t second) const {
  std::uint64_t n = 0;
  for (const auto& b : buckets_) {
    const std::int64_t s = b.second.load(std::memory_order_acquire);
    if (s > second - kWindow && s <= second) n += b.count.load(std::memory_order_relaxed);
  }
  return n;
}

void ListenerStats::count_failure(const std::string& label) {
  std::lock_guard lock(mutex_);
  failures_[label].add();
}

void ListenerStats::set_state(ListenerState s) {
  const auto now =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
          .count();
  if (s == ListenerState::BackingOff) last_backoff.store(now, std::memory_order_relaxed);
  if (state.exchange(static_cast<int>(s)) != static_cast<int>(s) || state_since.load() == 0)
    state_since.store(now, std::memory_order_relaxed);
}

void ListenerStats::note_accept_error(std::string what) {
  std::lock_guard lock(mutex_);
  accept_error_ = AcceptError{std::move(what), std::chrono::system_clock::now()};
}

ListenerStats::AcceptError ListenerStats::last_accept_error() const {
  std::lock_guard lock(mutex_);
  return accept_error_;
}

std::map<std::string, std::uint64_t> ListenerStats::failures() const {
  std::lock_guard lock(mutex_);
  std::map<std::string, std::uint64_t> out;
  for (const auto& [label, c] : failures_) out.emplace(label, c.total());
  return out;
}

std::map<std::string, ListenerStats::Count> ListenerStats::failure_counts() const {
  std::lock_guard lock(mutex_);
  std::map<std::string, Count> out;
  for (const auto& [label, c] : failures_) out.emplace(label, Count{c.total(), c.last_minute()});
  return out;
}

std::uint64_t ListenerStats::failures_total() const {
  std::lock_guard lock(mutex_);
  std::uint64_t n = 0;
  for (const auto& [_, c] : failures_) n += c.total();
  return n;
}

std::string_view ListenerStats::failure_kind(std::string_view label) {
  if (label == "max_connections" || label == "too_many_handshakes") return "refusal";
  if (label == "connect_timeout" || label == "upgrade_timeout") return "timeout";
  return "handshake";
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
