// Where the broker keeps state that may outlive a process: retained messages
// and persistent sessions. The broker core talks only to these interfaces;
// memory_store.cpp keeps everything in memory only, sqlite_store.cpp also
// writes it to an SQLite database (docs/persistence.md).
//
// SessionStore is a journal of changes, not a second copy of the state: the
// Session objects in the broker's registry are the live state, and the broker
// reports every change that must survive a restart, while it holds the
// session's mutex (so the journal has the same order as the changes). Only
// sessions that outlive their connection (expiry interval > 0) are reported.
// The calls never block on disk: a durable store queues them for its writer
// thread.
//
// Durability: each reported change gets a ticket, increasing. A client whose
// packet caused changes (a QoS 1/2 PUBLISH queued for persistent sessions, a
// retained message) must not be acknowledged before committed() reaches the
// last ticket this thread took (thread_ticket()); wake_when_committed() wakes
// its connection then.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "broker/message.hpp"
#include "broker/session.hpp"
#include "broker/transport.hpp"
#include "mqtt/packets.hpp"

namespace petrel::store {

using broker::MessagePtr;

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

// A persistent session as read back at start-up.
struct StoredDelivery {
  std::uint64_t id = 0;
  broker::Delivery delivery;
  std::uint16_t packet_id = 0;  // 0: still queued; else in flight
  broker::OutState state = broker::OutState::AwaitPuback;
};
struct StoredSession {
  std::string client_id;
  mqtt::Version version = mqtt::Version::V311;
  std::uint32_t expiry_interval = 0;
  // When its last connection ended (Unix ms); empty if it was connected when
  // the broker stopped.
  std::optional<std::int64_t> disconnected_at;
  std::optional<broker::WillMessage> will;
  std::vector<std::pair<std::string, broker::SubscriptionEntry>> subscriptions;
  std::vector<StoredDelivery> deliveries;  // in queue order
  std::vector<std::uint16_t> inbound_qos2;
};

class SessionStore {
 public:
  virtual ~SessionStore() = default;

  // The session is connected with these settings (and will, if any).
  virtual void session_saved(const std::string& client_id, std::uint32_t expiry_interval, mqtt::Version version,
                             const broker::WillMessage* will) = 0;
  // Its connection ended now; `will` is the will still pending (delayed).
  virtual void session_offline(const std::string& client_id, std::uint32_t expiry_interval,
                               const broker::WillMessage* will) = 0;
  // Its delayed will was published (or cancelled).
  virtual void will_cleared(const std::string& client_id) = 0;
  virtual void session_deleted(const std::string& client_id) = 0;
  virtual void subscription_added(const std::string& client_id, const std::string& filter,
                                  const broker::SubscriptionEntry& entry) = 0;
  virtual void subscription_removed(const std::string& client_id, const std::string& filter) = 0;
  // A QoS 1/2 delivery queued for the session; returns its id (0: not stored).
  virtual std::uint64_t delivery_added(const std::string& client_id, const broker::Delivery& d) = 0;
  // The delivery was sent with `packet_id`, or its QoS 2 flow moved on.
  virtual void delivery_state(std::uint64_t id, std::uint16_t packet_id, broker::OutState state) = 0;
  // Acknowledged, expired or dropped.
  virtual void delivery_removed(std::uint64_t id) = 0;
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
  // Wakes `link` once committed() >= ticket (at once if it already is).
  virtual void wake_when_committed(std::uint64_t ticket, std::weak_ptr<broker::Transport> link) {
    (void)ticket;
    if (auto l = link.lock()) l->wake();
  }
};

std::unique_ptr<RetainedStore> make_memory_retained_store();
std::unique_ptr<SessionStore> make_memory_session_store();

}  // namespace petrel::store
