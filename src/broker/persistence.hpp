// What the broker core needs stored: retained messages and persistent
// sessions. The core defines these interfaces and talks only to them; the
// store layer (src/store/) implements them: store/memory_store.hpp keeps
// everything in memory only, store/sqlite_store.hpp also writes it to an
// SQLite database (docs/persistence.md).
//
// SessionStore is a journal of changes, not a second copy of the state: the
// Session objects in the broker's registry are the live state, and the broker
// reports every change that must survive a restart, while it holds the
// session's mutex (so the journal has the same order as the changes). Only
// sessions that outlive their connection (expiry interval > 0) are reported.
// The calls never block on disk: a durable store queues them for its writer
// thread.
//
// Keys: a stored session has a number, its key, that the store gives it
// (session_saved) and the core keeps in the Session (Session::store_key) and
// hands back with each delivery (delivery_added), so that a stored delivery
// names its session by a number, not by its client id. A stored delivery
// refers to its message, which a durable store writes once however many
// sessions it is queued for, and deletes when no stored delivery refers to it
// any more; so it must hear of every stored delivery's end, with its message
// (delivery_removed): a session that
// ends (or stops being stored) reports each of its stored deliveries removed
// before session_deleted (Session::forget_stored). A store that keeps no
// sessions (the memory store) gives key 0, and then is not told of
// deliveries at all.
//
// Durability: each reported change gets a ticket, increasing. A client whose
// packet caused changes (a QoS 1/2 PUBLISH queued for persistent sessions, a
// retained message) must not be acknowledged before committed() reaches the
// last ticket this thread took (thread_ticket()). The store announces each
// commit through the listener the core gives it (set_commit_listener); the
// core wakes the connections that were waiting (Broker::wake_when_committed).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "broker/message.hpp"
#include "broker/session.hpp"
#include "mqtt/packets.hpp"

namespace petrel::broker {

class RetainedStore {
 public:
  virtual ~RetainedStore() = default;
  // Stores `m` as the retained message of its topic, replacing any other.
  virtual void set(const MessagePtr& m) = 0;
  // Removes the retained message of `topic`; returns whether there was one.
  virtual bool erase(std::string_view topic) = 0;
  // Appends the retained messages whose topics match `filter`.
  virtual void match(std::string_view filter, std::vector<MessagePtr>& out) const = 0;
  virtual std::size_t size() const = 0;
  virtual bool contains(std::string_view topic) const = 0;
};

// A persistent session as read back at start-up. The deliveries of one
// stored message share one Message, as they did before the restart.
struct StoredDelivery {
  std::uint64_t id = 0;
  Delivery delivery;
  std::uint16_t packet_id = 0;  // 0: still queued; else in flight
  OutState state = OutState::AwaitPuback;
};
struct StoredSession {
  std::string client_id;
  std::uint64_t key = 0;  // its number in the store (Session::store_key)
  mqtt::Version version = mqtt::Version::V311;
  std::uint32_t expiry_interval = 0;
  // When its last connection ended (Unix ms); empty if it was connected when
  // the broker stopped.
  std::optional<std::int64_t> disconnected_at;
  std::optional<WillMessage> will;
  std::optional<std::string> username;  // of its last client (none: anonymous)
  std::string listener;                 // its last client's listener ("" if unknown)
  std::vector<std::pair<std::string, SubscriptionEntry>> subscriptions;
  std::vector<StoredDelivery> deliveries;  // in queue order
  std::vector<std::uint16_t> inbound_qos2;
};

class SessionStore {
 public:
  virtual ~SessionStore() = default;

  // The session is connected with these settings (and will, if any), by a
  // client with this user name (none: anonymous) on this listener: access
  // control checks deliveries to the session as that client after a restart.
  // `key` is the session's key if it has one (0: none yet); returns its key
  // (0: this store keeps no sessions).
  virtual std::uint64_t session_saved(const std::string& client_id, std::uint64_t key,
                                      std::uint32_t expiry_interval, mqtt::Version version, const WillMessage* will,
                                      const std::optional<std::string>& username = std::nullopt,
                                      const std::string& listener = {}) = 0;
  // Its connection ended now; `will` is the will still pending (delayed).
  virtual void session_offline(const std::string& client_id, std::uint32_t expiry_interval,
                               const WillMessage* will) = 0;
  // Its delayed will was published (or cancelled).
  virtual void will_cleared(const std::string& client_id) = 0;
  // The session ends, or is no longer stored; its stored deliveries were
  // reported removed before.
  virtual void session_deleted(const std::string& client_id) = 0;
  virtual void subscription_added(const std::string& client_id, const std::string& filter,
                                  const SubscriptionEntry& entry) = 0;
  virtual void subscription_removed(const std::string& client_id, const std::string& filter) = 0;
  // A QoS 1/2 delivery queued for the session of key `session_key`; returns
  // its id (0: not stored). Ids increase in the order of the calls.
  virtual std::uint64_t delivery_added(std::uint64_t session_key, const Delivery& d) = 0;
  // The delivery was sent with `packet_id`, or its QoS 2 flow moved on.
  virtual void delivery_state(std::uint64_t id, std::uint16_t packet_id, OutState state) = 0;
  // Acknowledged, expired or dropped. `message` is the delivery's message
  // (the one it was added with): a store that writes each message once
  // learns from it which message row the delivery named, without reading
  // the delivery back.
  virtual void delivery_removed(std::uint64_t id, const Message& message) = 0;
  // Inbound QoS 2: PUBREC sent, PUBREL awaited.
  virtual void inbound_qos2_added(const std::string& client_id, std::uint16_t packet_id) = 0;
  virtual void inbound_qos2_removed(const std::string& client_id, std::uint16_t packet_id) = 0;

  // --- durability ---
  // Whether acknowledgements must wait for commits (false: memory store, or
  // a durable store in periodic mode).
  virtual bool acks_wait() const { return false; }
  // The ticket of the last change reported by the calling thread.
  virtual std::uint64_t thread_ticket() const { return 0; }
  virtual std::uint64_t committed() const { return 0; }
  // Changes reported between begin_group() and end_group() by the calling
  // thread are committed together or not at all: a QoS 2 PUBLISH's packet id
  // with every delivery it routed.
  virtual std::uint64_t begin_group() { return 0; }
  virtual void end_group(std::uint64_t group) { (void)group; }
  // Called with the new committed() after each commit, from the store's
  // writer thread. Set once, before the store starts.
  using CommitListener = std::function<void(std::uint64_t committed)>;
  virtual void set_commit_listener(CommitListener listener) { (void)listener; }
};

}  // namespace petrel::broker
