// Per-loop batching of writes and wake-ups: one write per connection per turn
// of the event loop, whatever the number of packets queued for it.
//
// Handlers that make a connection write (a publisher's read routing to a
// subscriber, an acknowledgement, a wake from another loop) do not write at
// once: they put the connection on its loop's batch, and one task posted
// behind the handlers that were ready together serves the whole batch: each
// connection drains its session and writes everything queued with one gather
// write. A subscriber fed by 16 publishers in one turn of the loop gets one
// writev, not 16. The batch is thread-local: every event loop runs on its own
// thread, and a connection is only ever batched on its own loop.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <memory>
#include <vector>

namespace petrel::net {

class Batched {
 public:
  virtual ~Batched() = default;
  // Serves the connection once: drain what it was woken for, then write.
  virtual void run_batched() = 0;
};

class LoopBatch {
 public:
  // Adds `item` (not already in the batch) and makes sure a task will serve
  // the batch on `executor`'s loop.
  template <class Executor>
  static void add(std::shared_ptr<Batched> item, const Executor& executor) {
    auto& b = local();
    b.pending_.push_back(std::move(item));
    if (!b.posted_) {
      b.posted_ = true;
      boost::asio::post(executor, [] { local().run(); });
    }
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

  std::vector<std::shared_ptr<Batched>> pending_;
  std::vector<std::shared_ptr<Batched>> serving_;
  bool posted_ = false;
};

}  // namespace petrel::net
