#include "broker/deadlines.hpp"

#include <boost/asio/post.hpp>
#include <tuple>
#include <vector>

namespace petrel::broker {

Deadlines::Deadlines(boost::asio::io_context& loop, Fire fire)
    : loop_(loop), fire_(std::move(fire)), timer_(loop) {}

Deadlines::~Deadlines() = default;

void Deadlines::set(const SessionPtr& session, Kind kind, Clock::time_point at) {
  cancel(*session, kind);
  bool post = false;
  {
    std::lock_guard lock(mutex_);
    entries_.emplace(Key{at, session.get(), kind}, session);
    // Only a deadline earlier than the one the timer waits for moves it.
    if (at < armed_at_ && !rearm_posted_) {
      rearm_posted_ = true;
      post = true;
    }
  }
  due_of(*session, kind) = at;
  if (post) boost::asio::post(loop_, [this] { arm(); });
}

void Deadlines::cancel(Session& session, Kind kind) {
  auto& due = due_of(session, kind);
  if (due == Clock::time_point{}) return;
  {
    std::lock_guard lock(mutex_);
    entries_.erase(Key{due, &session, kind});
  }
  due = Clock::time_point{};
}

std::size_t Deadlines::size() const {
  std::lock_guard lock(mutex_);
  return entries_.size();
}

void Deadlines::arm() {
  Clock::time_point next;
  {
    std::lock_guard lock(mutex_);
    rearm_posted_ = false;
    if (entries_.empty()) {
      armed_at_ = Clock::time_point::max();
      return;  // a wait still pending finds nothing due and stops
    }
    next = entries_.begin()->first.at;
    if (next == armed_at_) return;
    armed_at_ = next;
  }
  timer_.expires_at(next);  // cancels the wait for a later time, if any
  timer_.async_wait([this](const boost::system::error_code& ec) {
    if (!ec) on_timer();
  });
}

void Deadlines::on_timer() {
  std::vector<std::tuple<std::weak_ptr<Session>, Kind, Clock::time_point>> due;
  {
    std::lock_guard lock(mutex_);
    armed_at_ = Clock::time_point::max();
    const auto now = Clock::now();
    auto it = entries_.begin();
    for (; it != entries_.end() && it->first.at <= now; ++it)
      due.emplace_back(std::move(it->second), it->first.kind, it->first.at);
    entries_.erase(entries_.begin(), it);
  }
  arm();
  for (auto& [weak, kind, at] : due)
    if (auto s = weak.lock()) fire_(s, kind, at);
}

}  // namespace petrel::broker
