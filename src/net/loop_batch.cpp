#include "net/loop_batch.hpp"

#include <algorithm>

namespace petrel::net {

LoopResident::~LoopResident() = default;

DeadlineWheel& DeadlineWheel::local() {
  thread_local DeadlineWheel wheel;
  return wheel;
}

void DeadlineWheel::link(LoopResident& r) {
  // The slot of the first tick that starts after the deadline (so that when
  // the slot is served the deadline has passed), and never one already
  // served in this revolution.
  const std::size_t tick = std::max(tick_of(r.due_) + 1, next_tick_);
  r.slot_ = static_cast<std::uint32_t>(tick % kSlots);
  LoopResident*& head = slots_[r.slot_];
  r.prev_ = nullptr;
  r.next_ = head;
  if (head) head->prev_ = &r;
  head = &r;
}

void DeadlineWheel::unlink(LoopResident& r) {
  if (r.prev_) {
    r.prev_->next_ = r.next_;
  } else {
    slots_[r.slot_] = r.next_;
  }
  if (r.next_) r.next_->prev_ = r.prev_;
  r.prev_ = r.next_ = nullptr;
}

void DeadlineWheel::insert(LoopResident& r, Clock::time_point at,
                           const boost::asio::io_context::executor_type& executor) {
  if (r.in_wheel_) {
    unlink(r);
  } else {
    r.held_ = r.self();
    r.in_wheel_ = true;
    ++size_;
  }
  r.due_ = at;
  if (!ticking_) start(executor);
  link(r);
}

void DeadlineWheel::remove(LoopResident& r) {
  if (!r.in_wheel_) return;
  unlink(r);
  r.in_wheel_ = false;
  --size_;
  auto held = std::move(r.held_);  // may be the last reference: released last
}

void DeadlineWheel::clear() {
  for (auto*& head : slots_) {
    while (head) {
      LoopResident* r = head;
      head = r->next_;
      r->prev_ = r->next_ = nullptr;
      r->in_wheel_ = false;
      auto held = std::move(r->held_);
    }
  }
  size_ = 0;
  timer_.reset();
  ticking_ = false;
}

void DeadlineWheel::start(const boost::asio::io_context::executor_type& executor) {
  if (!timer_) timer_.emplace(executor);
  ticking_ = true;
  next_tick_ = tick_of(Clock::now());
  timer_->expires_after(kTick);
  timer_->async_wait([this](const boost::system::error_code& ec) {
    if (!ec) on_tick();
  });
}

void DeadlineWheel::on_tick() {
  const auto now = Clock::now();
  const std::size_t now_tick = tick_of(now);
  // Every slot up to now, catching up if the loop was busy (at most one
  // revolution: a longer delay has visited every slot).
  const std::size_t last = std::min(now_tick, next_tick_ + kSlots - 1);
  std::vector<std::shared_ptr<LoopResident>> due;
  for (std::size_t t = next_tick_; t <= last; ++t) {
    LoopResident* r = slots_[t % kSlots];
    while (r) {
      LoopResident* next = r->next_;
      if (r->due_ <= now) {
        unlink(*r);
        r->in_wheel_ = false;
        --size_;
        due.push_back(std::move(r->held_));
      }
      r = next;
    }
  }
  next_tick_ = last + 1;
  for (auto& r : due) r->on_deadline();
  if (size_ == 0) {
    ticking_ = false;
    return;
  }
  timer_->expires_after(kTick);
  timer_->async_wait([this](const boost::system::error_code& ec) {
    if (!ec) on_tick();
  });
}

}  // namespace petrel::net
