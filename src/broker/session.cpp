#include "broker/session.hpp"

#include <algorithm>

#include "broker/authorizer.hpp"
#include "broker/persistence.hpp"
#include "mqtt/codec.hpp"

namespace petrel::broker {

std::size_t publish_wire_size(const Message& m, std::uint8_t qos, const std::vector<std::uint32_t>* subscription_ids,
                              mqtt::Version v) {
  mqtt::PublishHead h;
  h.topic = m.topic();
  h.qos = qos;
  if (v == mqtt::Version::V5) {
    h.properties = m.encoded_properties();
    if (m.has_expiry()) h.message_expiry = 0;
    if (subscription_ids && !subscription_ids->empty()) h.subscription_ids = subscription_ids;
  }
  return mqtt::publish_size(h, v, m.payload().size());
}

std::size_t publish_wire_size(const Delivery& d, mqtt::Version v) {
  return publish_wire_size(*d.message, d.qos, &d.subscription_ids, v);
}

// ------------------------------------------------------- DeliveryQueue --

void DeliveryQueue::release(Block* b) noexcept {
  for (std::uint32_t i = 0; i < b->size; ++i) b->items()[(b->head + i) % b->capacity].~QueuedDelivery();
  const std::size_t bytes = sizeof(Block) + std::size_t{b->capacity} * sizeof(QueuedDelivery);
  b->~Block();
  ::operator delete(b, bytes);
}

void DeliveryQueue::reallocate(std::uint32_t capacity) {
  void* raw = ::operator new(sizeof(Block) + std::size_t{capacity} * sizeof(QueuedDelivery));
  auto* b = new (raw) Block();
  b->capacity = capacity;
  if (block_) {
    for (std::uint32_t i = 0; i < block_->size; ++i) new (b->items() + i) QueuedDelivery(std::move(at(i)));
    b->size = block_->size;
    b->ids = std::move(block_->ids);
  }
  block_.reset(b);
}

const std::vector<std::uint32_t>* DeliveryQueue::front_ids() const {
  if (!front().has_ids) return nullptr;
  const IdLists& ids = *block_->ids;
  return &ids.lists[ids.head];
}

void DeliveryQueue::push_back(Delivery d) {
  if (!block_ || block_->size == block_->capacity) {
    const std::uint32_t c = block_ ? block_->capacity : 0;
    reallocate(std::max<std::uint32_t>(4, c + c / 2));
  }
  QueuedDelivery q{std::move(d.message), d.store_id, d.qos, d.retain, !d.subscription_ids.empty()};
  if (q.has_ids) {
    if (!block_->ids) block_->ids = std::make_unique<IdLists>();
    block_->ids->lists.push_back(std::move(d.subscription_ids));
  }
  new (block_->items() + (block_->head + block_->size) % block_->capacity) QueuedDelivery(std::move(q));
  ++block_->size;
}

Delivery DeliveryQueue::take(std::size_t i) {
  Block& b = *block_;
  QueuedDelivery& q = at(i);
  Delivery d;
  d.message = std::move(q.message);
  d.store_id = q.store_id;
  d.qos = q.qos;
  d.retain = q.retain;
  if (q.has_ids) {
    // Its list is the one after those of the deliveries before it.
    IdLists& ids = *b.ids;
    std::size_t n = 0;
    for (std::size_t j = 0; j < i; ++j) n += at(j).has_ids ? 1 : 0;
    auto it = ids.lists.begin() + static_cast<std::ptrdiff_t>(ids.head + n);
    d.subscription_ids = std::move(*it);
    if (n == 0) {
      ++ids.head;
    } else {
      ids.lists.erase(it);
    }
    if (ids.size() == 0) {
      ids.lists.clear();
      ids.head = 0;
    } else if (ids.head >= 32 && ids.head * 2 >= ids.lists.size()) {
      ids.lists.erase(ids.lists.begin(), ids.lists.begin() + static_cast<std::ptrdiff_t>(ids.head));
      ids.head = 0;
    }
  }
  if (i == 0) {
    q.~QueuedDelivery();
    b.head = (b.head + 1) % b.capacity;
  } else {
    // From the middle (a QoS 0 message evicted for a QoS 1/2 one): close the gap.
    for (std::size_t j = i; j + 1 < b.size; ++j) at(j) = std::move(at(j + 1));
    at(b.size - 1).~QueuedDelivery();
  }
  --b.size;
  return d;
}

Delivery DeliveryQueue::pop_front() { return take(0); }

void DeliveryQueue::clear() { block_.reset(); }

void DeliveryQueue::shrink_to_fit() {
  if (!block_) return;
  if (block_->size == 0) {
    block_.reset();
    return;
  }
  if (block_->ids && block_->ids->size() == 0) block_->ids.reset();
  if (block_->capacity > block_->size) reallocate(block_->size);
}

Session::EnqueueResult Session::enqueue(Delivery d, const QueueLimits& limits, Authorizer* reader_check) {
  std::shared_ptr<SessionLink> to_wake;
  EnqueueResult r;
  {
    std::lock_guard lock(mutex);
    const bool is_online = online();
    if (!is_online && d.qos == 0 && !limits.queue_qos0_offline) return r;
    if (reader_check && identity && !reader_check->may_receive(*identity, *d.message)) return r;
    const std::size_t bytes = cost(*d.message);
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
      queue.take_first([](const QueuedDelivery& q) { return q.qos == 0; }, evicted);
      queued_bytes -= cost(*evicted.message);
      --queued_qos0;
      ++r.dropped;
    }
    queued_bytes += bytes;
    if (d.qos == 0) ++queued_qos0;
    if (limits.store && d.qos > 0 && store_key && persistent())
      d.store_id = limits.store->delivery_added(store_key, d);
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
  queued_bytes += cost(*d.message);
  if (d.qos == 0) ++queued_qos0;
  queue.push_back(std::move(d));
}

void Session::pop_front() { (void)take_front(); }

void Session::forget_stored(SessionStore& store) {
  queue.for_each([&](QueuedDelivery& q) {
    if (q.store_id) store.delivery_removed(q.store_id, *q.message);
    q.store_id = 0;
  });
  if (!inflight.empty())
    for (auto& [id, f] : inflight) {
      if (f.delivery.store_id) store.delivery_removed(f.delivery.store_id, *f.delivery.message);
      f.delivery.store_id = 0;
    }
  store_key = 0;
}

Delivery Session::take_front() {
  queued_bytes -= cost(*queue.front().message);
  if (queue.front().qos == 0) --queued_qos0;
  return queue.pop_front();
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
    const QueuedDelivery& q = queue.front();
    const bool expired = q.message->expired(now);
    const std::size_t size = expired ? 0 : publish_wire_size(*q.message, q.qos, queue.front_ids(), limits.version);
    if (expired || size > limits.max_packet_size) {
      // MQTT 5 3.1.2.11.4: a packet over the client's maximum is discarded.
      if (q.store_id) store.delivery_removed(q.store_id, *q.message);
      pop_front();
      ++r.dropped;
      continue;
    }
    std::uint16_t id = 0;
    if (q.qos > 0) {
      if (inflight.size() >= limits.window) break;
      id = allocate_packet_id();
      if (id == 0) break;
      Delivery d = take_front();
      Inflight f{d, d.qos == 1 ? OutState::AwaitPuback : OutState::AwaitPubrec, next_order++};
      if (d.store_id) {
        store.delivery_state(d.store_id, id, f.state);
        // Exactly once across a crash: a QoS 2 PUBLISH leaves only once its
        // packet id is stored, so that a restart resends it with the same id
        // (the receiver then knows it).
        r.hold = r.hold || d.qos == 2;
      }
      inflight.emplace(id, std::move(f));
      out.push_back(Outgoing{std::move(d), id});
    } else {
      out.push_back(Outgoing{take_front(), 0});
    }
    budget = size >= budget ? 0 : budget - size;
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
