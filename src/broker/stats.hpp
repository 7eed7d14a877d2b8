// Broker-wide counters, read for $SYS topics and the HTTP layer's /metrics
// (docs/architecture.md, "Seams"). Relaxed atomics: each is an independent
// tally, never used to order other memory.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <string_view>

namespace petrel::broker {

struct Stats {
  std::atomic<std::uint64_t> clients_connected{0};
  std::atomic<std::uint64_t> messages_received{0};
  std::atomic<std::uint64_t> messages_sent{0};
  std::atomic<std::uint64_t> publish_received{0};
  std::atomic<std::uint64_t> publish_sent{0};
  std::atomic<std::uint64_t> publish_dropped{0};  // queue full, too large for the client, or expired
  std::atomic<std::uint64_t> bytes_received{0};
  std::atomic<std::uint64_t> bytes_sent{0};
  std::atomic<std::uint64_t> protocol_errors{0};
  // Refused by the Authorizer: CONNECTs, PUBLISHes (acknowledged and
  // dropped), subscriptions (SUBACK 0x87 / 0x80).
  std::atomic<std::uint64_t> connect_denied{0};
  std::atomic<std::uint64_t> publish_denied{0};
  std::atomic<std::uint64_t> subscribe_denied{0};
  std::atomic<std::uint64_t> subscriptions{0};
  // Exceptions caught at a connection's boundary or an event loop's (each
  // closed that connection or was logged; the broker went on).
  std::atomic<std::uint64_t> internal_errors{0};

  // Sessions attached to a connection (accepted CONNECTs), and connections
  // that left their session, by how: a DISCONNECT without will (normal),
  // anything else (abnormal: connection lost, keep-alive timeout, protocol
  // error, DISCONNECT 0x04, a kick by the server), or a takeover by a new
  // connection. An operator's disconnect is also counted apart
  // (administrative; it then ends as abnormal).
  std::atomic<std::uint64_t> connects{0};
  std::atomic<std::uint64_t> disconnects_normal{0};
  std::atomic<std::uint64_t> disconnects_abnormal{0};
  std::atomic<std::uint64_t> disconnects_taken_over{0};
  std::atomic<std::uint64_t> disconnects_administrative{0};
  // Messages dropped because a session's queue was full (a part of
  // publish_dropped; the rest expired or exceeded the client's Maximum
  // Packet Size when dequeued).
  std::atomic<std::uint64_t> dropped_queue_full{0};

  // Application messages by QoS, $SYS excluded: `in` counts messages routed
  // (from clients, wills and the HTTP API), `out` the deliveries queued to
  // sessions (one per subscriber, at the QoS of that delivery). Bytes are
  // topic + payload. On a line of their own: the publish path adds to them.
  struct ByQos {
    std::array<std::atomic<std::uint64_t>, 3> messages{};
    std::array<std::atomic<std::uint64_t>, 3> bytes{};
  };
  alignas(64) ByQos in;
  alignas(64) ByQos out;

  static void add_dropped_queue_full(Stats& s, std::uint64_t n) {
    add(s.publish_dropped, n);
    add(s.dropped_queue_full, n);
  }
  static void count(ByQos& c, std::string_view topic, std::size_t payload, std::uint8_t qos) {
    if (topic.starts_with("$SYS/") || qos > 2) return;
    c.messages[qos].fetch_add(1, std::memory_order_relaxed);
    c.bytes[qos].fetch_add(topic.size() + payload, std::memory_order_relaxed);
  }

  static void add(std::atomic<std::uint64_t>& c, std::uint64_t n = 1) { c.fetch_add(n, std::memory_order_relaxed); }
  static void sub(std::atomic<std::uint64_t>& c, std::uint64_t n = 1) { c.fetch_sub(n, std::memory_order_relaxed); }
  static std::uint64_t get(const std::atomic<std::uint64_t>& c) { return c.load(std::memory_order_relaxed); }
};

}  // namespace petrel::broker
