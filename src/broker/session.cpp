#include "broker/session.hpp"

namespace petrel::broker {

Session::EnqueueResult Session::enqueue(Delivery d, std::uint32_t max_queued, bool queue_qos0_offline) {
  std::shared_ptr<Transport> to_wake;
  EnqueueResult r;
  {
    std::lock_guard lock(mutex);
    const bool is_online = online();
    if (!is_online && d.qos == 0 && !queue_qos0_offline) return r;
    if (queue.size() >= max_queued) {
      ++dropped;
      r.dropped = true;
      return r;
    }
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

std::uint16_t Session::allocate_packet_id() {
  if (inflight.size() >= 65535) return 0;
  while (true) {
    const std::uint16_t id = next_packet_id;
    next_packet_id = static_cast<std::uint16_t>(next_packet_id == 65535 ? 1 : next_packet_id + 1);
    if (!inflight.contains(id)) return id;
  }
}

}  // namespace petrel::broker
