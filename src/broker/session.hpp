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

// A FIFO of deliveries that takes no memory until the first message: an
// empty std::deque already allocates ~600 bytes, and most sessions of a big
// deployment are idle.
class DeliveryQueue {
 public:
  bool empty() const { return !items_ || items_->empty(); }
  std::size_t size() const { return items_ ? items_->size() : 0; }
  Delivery& front() { return items_->front(); }
  void push_back(Delivery d) {
    if (!items_) items_ = std::make_unique<std::deque<Delivery>>();
    items_->push_back(std::move(d));
  }
  void pop_front() { items_->pop_front(); }
  void clear() { items_.reset(); }
  // Removes the first delivery matching `pred` into `out`; false if none.
  template <class Pred>
  bool take_first(Pred pred, Delivery& out) {
    if (!items_) return false;
    for (auto it = items_->begin(); it != items_->end(); ++it) {
      if (pred(*it)) {
        out = std::move(*it);
        items_->erase(it);
        return true;
      }
    }
    return false;
  }

 private:
  std::unique_ptr<std::deque<Delivery>> items_;
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
  static std::size_t cost(const Delivery& d) { return d.message->topic().size() + d.message->payload().size(); }
  // Appends a delivery read back from the store (start-up only).
  void restore_queued(Delivery d);
  // Whether the session outlives its connection (and so is stored). Call
  // with `mutex` held.
  bool persistent() const { return expiry_interval > 0; }

  std::mutex mutex;
  // --- guarded by mutex ---
  std::weak_ptr<SessionLink> link;  // the connection, while online
  IdentityPtr identity;             // of the current or last connection (a restored session: client id only)
  // When the session last went online or offline.
  std::chrono::system_clock::time_point changed_at{};
  std::uint64_t generation = 0;   // bumped on every attach and detach
  Lazy<std::unordered_map<std::string, SubscriptionEntry>> subscriptions;  // full filter text -> options
  DeliveryQueue queue;
  std::uint64_t queued_bytes = 0;
  std::size_t queued_qos0 = 0;
  // Outbound QoS 1/2 by packet id; its nodes come and go with every message.
  Lazy<std::map<std::uint16_t, Inflight, std::less<>, RecyclingAllocator<std::pair<const std::uint16_t, Inflight>>>>
      inflight;
  Lazy<std::set<std::uint16_t>> inbound_qos2;        // PUBREC sent, PUBREL awaited
  std::uint16_t next_packet_id = 1;
  std::uint64_t next_order = 0;
  std::uint32_t expiry_interval = 0;  // seconds; 0xFFFFFFFF never expires
  std::unique_ptr<WillMessage> will;  // of the current or last connection (heap: most sessions have none)
  // When the delayed will is due and when the session expires, while it is
  // offline (broker::Deadlines); time_point{}: not scheduled.
  Clock::time_point will_due{};
  Clock::time_point expiry_due{};
  bool wake_pending = false;

  void set_online(bool v) { online_.store(v, std::memory_order_relaxed); }

  // Next free outbound packet id, or 0 if all 65535 are in flight.
  std::uint16_t allocate_packet_id();

 private:
  const std::string client_id_;
  std::atomic<bool> online_{false};
};

using SessionPtr = std::shared_ptr<Session>;

}  // namespace petrel::broker
