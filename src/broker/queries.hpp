// What the broker tells an operator (the HTTP API, $SYS, tests): facts about
// sessions and subscriptions, as copies taken under brief locks. Broker
// declares the queries and commands (broker.hpp, "Operator queries"); they
// are implemented in queries.cpp.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "mqtt/packets.hpp"

namespace petrel::broker {

struct SessionInfo {
  std::string client_id;
  bool online = false;
  // Of the current or last connection (empty for a session restored from
  // the store that has not connected since).
  std::optional<std::string> username;
  std::string listener;
  std::string peer;
  mqtt::Version version = mqtt::Version::V311;
  bool clean_start = true;
  std::uint16_t keep_alive = 0;
  std::chrono::system_clock::time_point connected_at{};
  // When it last went online or offline.
  std::chrono::system_clock::time_point changed_at{};
  std::uint32_t expiry_interval = 0;  // seconds; 0xFFFFFFFF never expires
  std::size_t subscriptions = 0;
  std::size_t queued = 0;  // messages waiting to be sent
  std::uint64_t queued_bytes = 0;
  std::size_t inflight = 0;      // outbound QoS 1/2 awaiting acknowledgement
  std::size_t inbound_qos2 = 0;  // inbound QoS 2 awaiting PUBREL
  bool will_pending = false;
};

// A page of sessions, in client id order.
struct SessionQuery {
  std::string after;  // the page starts after this client id ("" = the first page)
  std::size_t limit = 100;
  std::string client_id_prefix;
  std::optional<std::string> username;
  std::optional<std::string> listener;
  std::optional<bool> online;
};

struct SubscriptionInfo {
  std::string client_id;
  std::string filter;  // as subscribed ($share/group/... for shared ones)
  mqtt::SubscribeOptions options;
  std::uint32_t subscription_id = 0;
};

// A page of subscriptions, in (client id, filter) order.
struct SubscriptionQuery {
  std::string after_client_id;  // start with the sessions after this one
  std::size_t limit = 100;      // subscriptions; a session's are never split across pages
  std::string filter_prefix;
};

// Totals over every session, for metrics: one scan of the registry.
struct SessionTotals {
  std::size_t online = 0, offline = 0;
  std::uint64_t queued = 0, queued_bytes = 0, inflight = 0, inbound_qos2 = 0;
  // Online sessions by (listener name, protocol version).
  std::map<std::pair<std::string, mqtt::Version>, std::size_t> connected;
};

}  // namespace petrel::broker
