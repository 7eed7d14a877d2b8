// A session: the state MQTT keeps for a client id across connections
// (MQTT 5.0 section 4.1): its subscriptions, the messages queued for it, the
// outbound QoS 1/2 messages in flight, the inbound QoS 2 packet ids awaiting
// PUBREL, its will and its expiry. A session outlives its connections; the
// Broker's registry owns it.
//
// Threading: every field below `mutex` is guarded by it. Publishers on any
// event loop call enqueue(); the connection's own loop drains the queue in
// Client::flush(). enqueue() never blocks on I/O: it appends and, if the
// session is online, asks the connection to wake up once.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "broker/identity.hpp"
#include "broker/message.hpp"
#include "broker/recycler.hpp"
#include "broker/transport.hpp"
#include "mqtt/packets.hpp"

namespace petrel::broker {

class Authorizer;
class SessionStore;

// One message on its way to one session.
struct Delivery {
  MessagePtr message;
  std::uint8_t qos = 0;
  bool retain = false;                          // the retain flag to send
  std::vector<std::uint32_t> subscription_ids;  // v5: every matching subscription's id
  std::uint64_t store_id = 0;                   // its record in the session store; 0: none
};

enum class OutState : std::uint8_t { AwaitPuback, AwaitPubrec, AwaitPubcomp };

struct Inflight {
  Delivery delivery;
  OutState state = OutState::AwaitPuback;
  std::uint64_t order = 0;  // send order, for redelivery in the original order
};

// The size of the PUBLISH packet that carries `d` in protocol version `v`
// (with the delivery's own subscription identifiers), without encoding it.
std::size_t publish_wire_size(const Delivery& d, mqtt::Version v);
std::size_t publish_wire_size(const Message& m, std::uint8_t qos, const std::vector<std::uint32_t>* subscription_ids,
                              mqtt::Version v);

// A delivery taken from the queue to be sent, with the packet identifier it
// was given (0 for QoS 0).
struct Outgoing {
  Delivery delivery;
  std::uint16_t packet_id = 0;
};

// How much Session::drain may take.
struct DrainLimits {
  std::size_t window;              // QoS 1/2 deliveries in flight at most
  std::size_t budget;              // wire bytes to take at most (the last one may exceed it)
  std::uint32_t max_packet_size;   // deliveries whose PUBLISH is larger are dropped
  mqtt::Version version;           // the wire form the sizes are for
};

struct DrainResult {
  std::size_t dropped = 0;  // expired, or too large for the receiver
  // A QoS 2 delivery to a persistent session was given its packet id: with
  // a durable store, it must not leave before that id is committed.
  bool hold = false;
};

struct SubscriptionEntry {
  mqtt::SubscribeOptions options;
  std::uint32_t subscription_id = 0;  // 0: none
};

struct WillMessage {
  mqtt::Will will;  // as the CONNECT carried it, less the Will Delay Interval
  std::string client_id;
  std::uint32_t delay = 0;  // seconds

  // The message to publish now: its Message Expiry Interval starts when the
  // will is published, not when it was registered (MQTT 5.0 3.1.3.2.4).
  MessagePtr to_message() const {
    return Message::create(will.topic, will.payload, will.qos, will.retain, will.properties, client_id);
  }
};

// A map or set a session allocates on first use: most sessions of a big
// deployment are idle, and an empty std::map, std::set or std::unordered_map
// costs 48-56 bytes each where this costs a pointer. Lookups that may
// modify allocate (find); read-only questions (size, empty, contains) and
// clear() do not.
template <class C>
class Lazy {
 public:
  bool empty() const { return !c_ || c_->empty(); }
  std::size_t size() const { return c_ ? c_->size() : 0; }
  template <class K>
  bool contains(const K& k) const {
    return c_ && c_->find(k) != c_->end();
  }
  void clear() { c_.reset(); }
  C& get() {
    if (!c_) c_ = std::make_unique<C>();
    return *c_;
  }
  template <class K>
  auto find(const K& k) {
    return get().find(k);
  }
  auto begin() { return get().begin(); }
  auto end() { return get().end(); }
  template <class... A>
  auto emplace(A&&... a) {
    return get().emplace(std::forward<A>(a)...);
  }
  template <class V>
  auto insert(V&& v) {
    return get().insert(std::forward<V>(v));
  }
  template <class It>
  void insert(It first, It last) {
    get().insert(first, last);
  }
  template <class K>
  std::size_t erase(const K& k) {
    return c_ ? c_->erase(k) : 0;
  }
  auto erase(typename C::iterator it) { return c_->erase(it); }
  template <class K>
  auto& operator[](const K& k) {
    return get()[k];
  }
  void swap(C& other) { get().swap(other); }
  // For iteration without allocating: null when never used.
  const C* peek() const { return c_.get(); }

 private:
  std::unique_ptr<C> c_;
};

// A delivery as the queue keeps it: 24 bytes, where a Delivery takes 48. An
// offline session's memory is mostly its queue (issue 16: 10 queued messages
// took 1,100 bytes in a std::deque of Deliveries, more than the rest of the
// session), and subscription identifiers are rare: they wait beside the
// entries that have some (`has_ids`), in the queue's side list.
struct QueuedDelivery {
  MessagePtr message;
  std::uint64_t store_id = 0;
  std::uint8_t qos = 0;
  bool retain = false;
  bool has_ids = false;
};

// A FIFO of deliveries: one heap block (a ring of QueuedDelivery behind a
// small header) that takes no memory until the first message and grows by
// half. An online session keeps its block (so a steady flow allocates
// nothing); a session going offline gives back what it does not use
// (shrink_to_fit).
class DeliveryQueue {
 public:
  DeliveryQueue() = default;
  ~DeliveryQueue() { clear(); }
  DeliveryQueue(const DeliveryQueue&) = delete;
  DeliveryQueue& operator=(const DeliveryQueue&) = delete;

  bool empty() const { return !block_ || block_->size == 0; }
  std::size_t size() const { return block_ ? block_->size : 0; }
  // The first delivery and its subscription identifiers (null: none).
  const QueuedDelivery& front() const { return at(0); }
  const std::vector<std::uint32_t>* front_ids() const;
  void push_back(Delivery d);
  Delivery pop_front();
  // Removes the first delivery matching `pred` (called with a
  // QueuedDelivery) into `out`; false if none.
  template <class Pred>
  bool take_first(Pred pred, Delivery& out) {
    for (std::size_t i = 0; i < size(); ++i)
      if (pred(at(i))) {
        out = take(i);
        return true;
      }
    return false;
  }
  // Calls f(QueuedDelivery&) for each delivery, front to back.
  template <class F>
  void for_each(F f) {
    for (std::size_t i = 0; i < size(); ++i) f(at(i));
  }
  void clear();
  // Gives back the memory the queued deliveries do not use.
  void shrink_to_fit();
  // Capacity, in deliveries (tests).
  std::size_t capacity() const { return block_ ? block_->capacity : 0; }

 private:
  // Subscription identifiers of the queued deliveries that have some, in
  // queue order.
  struct IdLists {
    std::vector<std::vector<std::uint32_t>> lists;
    std::size_t head = 0;
    std::size_t size() const { return lists.size() - head; }
  };
  struct Block {
    std::uint32_t capacity = 0, head = 0, size = 0;
    std::unique_ptr<IdLists> ids;
    QueuedDelivery* items() { return reinterpret_cast<QueuedDelivery*>(this + 1); }
  };
  QueuedDelivery& at(std::size_t i) const {
    return block_->items()[(block_->head + i) % block_->capacity];
  }
  Delivery take(std::size_t i);
  void reallocate(std::uint32_t capacity);
  static void release(Block* b) noexcept;
  struct Free {
    void operator()(Block* b) const noexcept { release(b); }
  };
  std::unique_ptr<Block, Free> block_;
};

// A session's subscriptions by filter: a vector sorted by filter. A session
// has a few; an unordered_map cost 216 bytes for one (its object, 13
// buckets, the node), this 72.
class SubscriptionMap {
 public:
  using value_type = std::pair<std::string, SubscriptionEntry>;
  bool empty() const { return items_.empty(); }
  std::size_t size() const { return items_.size(); }
  bool contains(std::string_view filter) const {
    auto it = lower(filter);
    return it != items_.end() && it->first == filter;
  }
  SubscriptionEntry& operator[](const std::string& filter) {
    auto it = lower(filter);
    if (it == items_.end() || it->first != filter) it = items_.emplace(it, filter, SubscriptionEntry{});
    return it->second;
  }
  std::size_t erase(std::string_view filter) {
    auto it = lower(filter);
    if (it == items_.end() || it->first != filter) return 0;
    items_.erase(it);
    if (items_.empty()) items_.shrink_to_fit();
    return 1;
  }
  void clear() { std::vector<value_type>().swap(items_); }
  void swap(SubscriptionMap& other) noexcept { items_.swap(other.items_); }
  auto begin() const { return items_.begin(); }
  auto end() const { return items_.end(); }
  // For iteration (null when empty), as Lazy::peek.
  const std::vector<value_type>* peek() const { return items_.empty() ? nullptr : &items_; }

 private:
  std::vector<value_type>::const_iterator lower(std::string_view filter) const {
    return std::lower_bound(items_.begin(), items_.end(), filter,
                            [](const value_type& v, std::string_view f) { return v.first < f; });
  }
  std::vector<value_type>::iterator lower(std::string_view filter) {
    return std::lower_bound(items_.begin(), items_.end(), filter,
                            [](const value_type& v, std::string_view f) { return v.first < f; });
  }
  std::vector<value_type> items_;
};

class Session {
 public:
  explicit Session(std::string client_id) : client_id_(std::move(client_id)) {}

  const std::string& client_id() const { return client_id_; }
  bool online() const { return online_.load(std::memory_order_relaxed); }

  struct EnqueueResult {
    bool queued = false;
    std::size_t dropped = 0;  // messages dropped: the new one, or older QoS 0 ones evicted for it
  };
  struct QueueLimits {
    std::uint32_t max_messages;
    std::uint64_t max_bytes;  // 0: none
    bool queue_qos0_offline;
    SessionStore* store = nullptr;  // told of QoS 1/2 deliveries to persistent sessions
  };
  // Thread-safe. Queues `d` and wakes the connection if there is one; a QoS
  // 1/2 delivery to a persistent session is reported to the store. When
  // the queue is full, QoS 0 goes first: a QoS 0 message is dropped, and a
  // QoS 1/2 message evicts the oldest queued QoS 0 message if there is one,
  // else it is dropped itself. With `reader_check`, a message the session's
  // client may not receive (Authorizer::may_receive) is not queued.
  EnqueueResult enqueue(Delivery d, const QueueLimits& limits, Authorizer* reader_check = nullptr);

  // Takes deliveries from the front of the queue for sending, within
  // `limits`, into `out`: QoS 1/2 ones get a packet identifier and enter the
  // in-flight window (reported to `store` for persistent sessions), expired
  // ones and ones larger than the receiver's maximum are dropped. The
  // draining side (broker::Client for a network client, an in-process
  // client for a bridge) then sends them as it sends. Call with `mutex`
  // held, from the holder of the current generation.
  DrainResult drain(const DrainLimits& limits, Clock::time_point now, SessionStore& store, std::vector<Outgoing>& out);

  // Queue accounting; call with `mutex` held.
  void pop_front();
  Delivery take_front();
  void clear_queue();
  static std::size_t cost(const Message& m) { return m.topic().size() + m.payload().size(); }
  // Appends a delivery read back from the store (start-up only).
  void restore_queued(Delivery d);
  // Whether the session outlives its connection (and so is stored). Call
  // with `mutex` held.
  bool persistent() const { return expiry_interval > 0; }
  // The session is no longer stored (it ends, or goes on with expiry 0):
  // reports each of its stored deliveries removed, forgets their store ids
  // and its key; then the caller reports session_deleted. Call with `mutex`
  // held.
  void forget_stored(SessionStore& store);

  std::mutex mutex;
  // --- guarded by mutex ---
  std::weak_ptr<SessionLink> link;  // the connection, while online
  IdentityPtr identity;             // of the current or last connection (a restored session: client id only)
  // When the session last went online or offline.
  std::chrono::system_clock::time_point changed_at{};
  std::uint64_t generation = 0;   // bumped on every attach and detach
  SubscriptionMap subscriptions;  // full filter text -> options
  DeliveryQueue queue;
  std::uint64_t queued_bytes = 0;
  std::uint32_t queued_qos0 = 0;
  std::uint32_t expiry_interval = 0;  // seconds; 0xFFFFFFFF never expires
  // Its key in the session store (SessionStore::session_saved), which its
  // stored deliveries refer to; 0: not stored.
  std::uint64_t store_key = 0;
  // Outbound QoS 1/2 by packet id; its nodes come and go with every message.
  Lazy<std::map<std::uint16_t, Inflight, std::less<>, RecyclingAllocator<std::pair<const std::uint16_t, Inflight>>>>
      inflight;
  Lazy<std::set<std::uint16_t>> inbound_qos2;        // PUBREC sent, PUBREL awaited
  std::uint64_t next_order = 0;
  std::unique_ptr<WillMessage> will;  // of the current or last connection (heap: most sessions have none)
  // When the delayed will is due and when the session expires, while it is
  // offline (broker::Deadlines); time_point{}: not scheduled.
  Clock::time_point will_due{};
  Clock::time_point expiry_due{};
  // (The small fields last, beside online_: every session pays for padding.)
  std::uint16_t next_packet_id = 1;
  bool wake_pending = false;

  void set_online(bool v) { online_.store(v, std::memory_order_relaxed); }

  // Next free outbound packet id, or 0 if all 65535 are in flight.
  std::uint16_t allocate_packet_id();

 private:
  std::atomic<bool> online_{false};
  const std::string client_id_;
};

using SessionPtr = std::shared_ptr<Session>;

}  // namespace petrel::broker
