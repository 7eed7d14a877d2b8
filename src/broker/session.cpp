#include "broker/session.hpp"

#include <algorithm>

#include "broker/authorizer.hpp"
#include "broker/persistence.hpp"
#include "mqtt/codec.hpp"

namespace petrel::broker {

std::size_t publish_wire_size(const Delivery& d, mqtt::Version v) {
  const Message& m = *d.message;
  mqtt::PublishHead h;
  h.topic = m.topic();
  h.qos = d.qos;
  if (v == mqtt::Version::V5) {
    h.properties = m.encoded_properties();
    if (m.has_expiry()) h.message_expiry = 0;
    if (!d.subscription_ids.empty()) h.subscription_ids = &d.subscription_ids;
  }
  return mqtt::publish_size(h, v, m.payload().size());
}

Session::EnqueueResult Session::enqueue(Delivery d, const QueueLimits& limits, Authorizer* reader_check) {
  std::shared_ptr<SessionLink> to_wake;
  EnqueueResult r;
  {
    std::lock_guard lock(mutex);
    const bool is_online = online();
    if (!is_online && d.qos == 0 && !limits.queue_qos0_offline) return r;
    if (reader_check && identity && !reader_check->may_receive(*identity, *d.message)) return r;
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

DrainResult Session::drain(const DrainLimits& limits, Clock::time_point now, SessionStore& store,
                           std::vector<Outgoing>& out) {
  DrainResult r;
  std::size_t budget = limits.budget;
  while (!queue.empty() && budget > 0) {
    Delivery& d = queue.front();
    const bool expired = d.message->expired(now);
    const std::size_t size = expired ? 0 : publish_wire_size(d, limits.version);
    if (expired || size > limits.max_packet_size) {
      // MQTT 5 3.1.2.11.4: a packet over the client's maximum is discarded.
      if (d.store_id) store.delivery_removed(d.store_id);
      pop_front();
      ++r.dropped;
      continue;
    }
    std::uint16_t id = 0;
    if (d.qos > 0) {
      if (inflight.size() >= limits.window) break;
      id = allocate_packet_id();
      if (id == 0) break;
      Inflight f{d, d.qos == 1 ? OutState::AwaitPuback : OutState::AwaitPubrec, next_order++};
      if (d.store_id) {
        store.delivery_state(d.store_id, id, f.state);
        // Exactly once across a crash: a QoS 2 PUBLISH leaves only once its
        // packet id is stored, so that a restart resends it with the same id
        // (the receiver then knows it).
        r.hold = r.hold || d.qos == 2;
      }
      inflight.emplace(id, std::move(f));
    }
    budget = size >= budget ? 0 : budget - size;
    out.push_back(Outgoing{take_front(), id});
  }
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
