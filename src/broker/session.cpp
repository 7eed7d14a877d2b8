#include "broker/session.hpp"

#include <algorithm>

#include "broker/persistence.hpp"

namespace petrel::broker {

Session::EnqueueResult Session::enqueue(Delivery d, const QueueLimits& limits) {
  std::shared_ptr<Transport> to_wake;
  EnqueueResult r;
  {
    std::lock_guard lock(mutex);
    const bool is_online = online();
    if (!is_online && d.qos == 0 && !limits.queue_qos0_offline) return r;
    const std::size_t bytes = cost(d);
    auto full = [&] {
      return queue.size() >= limits.max_messages || (limits.max_bytes && queued_bytes + bytes > limits.max_bytes);
    };
    while (full()) {
      if (d.qos == 0 || queued_qos0 == 0) {
        ++r.dropped;
        return r;
      }
      // Make room by dropping the oldest QoS 0 message.
      Delivery evicted;
      queue.take_first([](const Delivery& q) { return q.qos == 0; }, evicted);
      queued_bytes -= cost(evicted);
      --queued_qos0;
      ++r.dropped;
    }
    queued_bytes += bytes;
    if (d.qos == 0) ++queued_qos0;
    if (limits.store && d.qos > 0 && persistent()) d.store_id = limits.store->delivery_added(client_id_, d);
    queue.push_back(std::move(d));
    r.queued = true;
    if (is_online && !wake_pending) {
      to_wake = link.lock();
      wake_pending = to_wake != nullptr;
    }
  }
  if (to_wake) to_wake->wake();
  return r;
}

void Session::restore_queued(Delivery d) {
  queued_bytes += cost(d);
  if (d.qos == 0) ++queued_qos0;
  queue.push_back(std::move(d));
}

void Session::pop_front() {
  queued_bytes -= cost(queue.front());
  if (queue.front().qos == 0) --queued_qos0;
  queue.pop_front();
}

Delivery Session::take_front() {
  queued_bytes -= cost(queue.front());
  if (queue.front().qos == 0) --queued_qos0;
  Delivery d = std::move(queue.front());
  queue.pop_front();
  return d;
}

void Session::clear_queue() {
  queue.clear();
  queued_bytes = 0;
  queued_qos0 = 0;
}

std::uint16_t Session::allocate_packet_id() {
  if (inflight.size() >= 65535) return 0;
  while (true) {
    const std::uint16_t id = next_packet_id;
    next_packet_id = static_cast<std::uint16_t>(next_packet_id == 65535 ? 1 : next_packet_id + 1);
    if (!inflight.contains(id)) return id;
  }
}

}  // namespace petrel::broker
