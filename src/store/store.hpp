// Where the broker keeps state that may outlive a process: retained messages
// and persistent sessions. The broker core talks only to these interfaces.
// MemoryRetainedStore / MemorySessionStore are the in-memory implementations
// used today; the durable SQLite store (a later issue) implements the same
// interfaces, with writes handed to a dedicated writer thread so that no event
// loop ever blocks on disk.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "broker/message.hpp"
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

// Persistence hooks for sessions that outlive their connection. The Session
// objects in the broker's registry are the live state; a SessionStore is told
// about every change that must survive a restart. The in-memory store ignores
// them.
class SessionStore {
 public:
  virtual ~SessionStore() = default;
  virtual void session_saved(std::string_view client_id, std::uint32_t expiry_interval) = 0;
  virtual void session_deleted(std::string_view client_id) = 0;
  virtual void subscription_added(std::string_view client_id, std::string_view filter,
                                  const mqtt::SubscribeOptions& options, std::uint32_t subscription_id) = 0;
  virtual void subscription_removed(std::string_view client_id, std::string_view filter) = 0;
};

std::unique_ptr<RetainedStore> make_memory_retained_store();
std::unique_ptr<SessionStore> make_memory_session_store();

}  // namespace petrel::store
