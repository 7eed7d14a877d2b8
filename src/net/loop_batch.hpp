// What each event loop keeps for its connections, per thread: the batch of
// connections to serve at the end of this turn of the loop, and the wheel of
// their deadlines. Every event loop runs on its own thread and a connection
// only ever lives on its own loop, so both are thread-local and lock-free.
//
// The batch: one write per connection per turn of the loop, whatever the
// number of packets queued for it. Handlers that make a connection write (a
// publisher's read routing to a subscriber, an acknowledgement, a wake from
// another loop) do not write at once: they put the connection on its loop's
// batch, and one task posted behind the handlers that were ready together
// serves the whole batch: each connection drains its session and writes
// everything queued with one gather write. A subscriber fed by 16 publishers
// in one turn of the loop gets one writev, not 16.
//
// The wheel: connection deadlines (CONNECT, keep alive, close grace) in a
// hashed timing wheel of 1024 slots of 50 ms, ticked by one timer per loop
// while it holds anything. An entry is a few pointers inside the connection,
// where a timer per connection cost ~180 bytes (the timer and its pending
// wait) on every idle connection. Deadlines fire up to one tick late, which
// none of them minds. A connection moves its deadline lazily: reads only
// update the time it keeps; when its slot comes round it looks again and
// re-enters the wheel if its deadline moved on.
#pragma once

#include <array>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

namespace petrel::net {

class LoopResident;

// The timing wheel of one loop (thread-local; see above).
class DeadlineWheel {
 public:
  using Clock = std::chrono::steady_clock;
  static constexpr auto kTick = std::chrono::milliseconds(50);
  static constexpr std::size_t kSlots = 1024;

  // (Re)places `r` at `at`; the wheel keeps it alive until it fires or is removed.
  void insert(LoopResident& r, Clock::time_point at, const boost::asio::io_context::executor_type& executor);
  void remove(LoopResident& r);
  std::size_t size() const { return size_; }
  // Drops every entry and the timer: call on the loop's thread once the loop
  // has stopped, while its io_context still exists.
  void clear();

  static DeadlineWheel& local();

 private:
  static std::size_t tick_of(Clock::time_point t) {
    return static_cast<std::size_t>(std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()) /
                                    kTick);
  }
  void link(LoopResident& r);
  void unlink(LoopResident& r);
  void start(const boost::asio::io_context::executor_type& executor);
  void on_tick();

  std::array<LoopResident*, kSlots> slots_{};  // heads of intrusive doubly linked lists
  std::size_t size_ = 0;
  std::size_t next_tick_ = 0;  // the first tick not processed yet
  std::optional<boost::asio::steady_timer> timer_;
  bool ticking_ = false;
};

// A connection as its loop sees it: something to serve in the batch, and
// something with a deadline in the wheel.
class LoopResident {
 public:
  virtual ~LoopResident();
  // Serves the connection once: drain what it was woken for, then write.
  virtual void run_batched() = 0;
  // Its deadline has come (it may insert itself again).
  virtual void on_deadline() = 0;
  // Its socket is ready, as the epoll event `events` says (net::Poller).
  virtual void on_ready(std::uint32_t /*events*/) {}

 private:
  friend class DeadlineWheel;
  friend class Poller;
  LoopResident* prev_ = nullptr;
  LoopResident* next_ = nullptr;
  DeadlineWheel::Clock::time_point due_{};
  std::shared_ptr<LoopResident> held_;  // set while in the wheel
  std::uint32_t slot_ = 0;
  bool in_wheel_ = false;

 protected:
  // The owning pointer to this object (enable_shared_from_this lives in the subclass).
  virtual std::shared_ptr<LoopResident> self() = 0;
};

class LoopBatch {
 public:
  // Adds `item` (not already in the batch) and makes sure a task will serve
  // the batch on `executor`'s loop.
  template <class Executor>
  static void add(std::shared_ptr<LoopResident> item, const Executor& executor) {
    auto& b = local();
    b.pending_.push_back(std::move(item));
    if (!b.posted_) {
      b.posted_ = true;
      boost::asio::post(executor, [] { local().run(); });
    }
  }
  // Drops what is still batched: call on the loop's thread once the loop has
  // stopped, while its io_context still exists.
  static void clear() {
    auto& b = local();
    b.pending_.clear();
    b.serving_.clear();
    b.posted_ = false;
  }

 private:
  static LoopBatch& local() {
    thread_local LoopBatch batch;
    return batch;
  }
  void run() {
    // Serving a connection may add others (or itself again) to the batch:
    // they are served in this same task.
    while (!pending_.empty()) {
      serving_.swap(pending_);
      for (auto& item : serving_) item->run_batched();
      serving_.clear();
    }
    posted_ = false;
  }

  std::vector<std::shared_ptr<LoopResident>> pending_;
  std::vector<std::shared_ptr<LoopResident>> serving_;
  bool posted_ = false;
};

}  // namespace petrel::net
