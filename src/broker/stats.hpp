// Broker-wide counters, read for $SYS topics (and later the metrics
// endpoint). Relaxed atomics: each is an independent tally, never used to
// order other memory.
#pragma once

#include <atomic>
#include <cstdint>

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

  static void add(std::atomic<std::uint64_t>& c, std::uint64_t n = 1) { c.fetch_add(n, std::memory_order_relaxed); }
  static void sub(std::atomic<std::uint64_t>& c, std::uint64_t n = 1) { c.fetch_sub(n, std::memory_order_relaxed); }
  static std::uint64_t get(const std::atomic<std::uint64_t>& c) { return c.load(std::memory_order_relaxed); }
};

}  // namespace petrel::broker
