// Broker-wide counters, read for $SYS topics and the HTTP layer's /metrics
// (docs/architecture.md, "Seams").
//
// Every event loop adds to them for every message, so each counter is
// sharded: a thread adds to a slot of its own (on a cache line of its own),
// and reading sums the slots. A counter shared by all loops would bounce its
// cache line between cores on every message. Relaxed atomics: each is an
// independent tally, never used to order other memory; a gauge (clients
// connected, subscriptions) goes down on one thread and up on another, and
// the sum is still right (modulo 2^64).
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <string_view>

namespace petrel::broker {

class Counter {
 public:
  void add(std::uint64_t n = 1) noexcept { slots_[slot()].value.fetch_add(n, std::memory_order_relaxed); }
  void sub(std::uint64_t n = 1) noexcept { slots_[slot()].value.fetch_sub(n, std::memory_order_relaxed); }
  std::uint64_t get() const noexcept {
    std::uint64_t sum = 0;
    for (const auto& s : slots_) sum += s.value.load(std::memory_order_relaxed);
    return sum;
  }

 private:
  static constexpr std::size_t kSlots = 16;
  struct alignas(64) Slot {
    std::atomic<std::uint64_t> value{0};
  };
  // Threads take slots in turn; beyond kSlots threads share them (still
  // correct: the adds are atomic).
  static std::size_t slot() noexcept {
    static std::atomic<std::size_t> next{0};
    thread_local const std::size_t mine = next.fetch_add(1, std::memory_order_relaxed) % kSlots;
    return mine;
  }
  std::array<Slot, kSlots> slots_{};
};

struct Stats {
  Counter clients_connected;
  Counter messages_received;
  Counter messages_sent;
  Counter publish_received;
  Counter publish_sent;
  Counter publish_dropped;  // queue full, too large for the client, or expired
  Counter bytes_received;
  Counter bytes_sent;
  Counter protocol_errors;
  // Refused by the Authorizer: CONNECTs, PUBLISHes (acknowledged and
  // dropped), subscriptions (SUBACK 0x87 / 0x80).
  Counter connect_denied;
  Counter publish_denied;
  Counter subscribe_denied;
  Counter subscriptions;
  // Exceptions caught at a connection's boundary or an event loop's (each
  // closed that connection or was logged; the broker went on).
  Counter internal_errors;

  // Sessions attached to a connection (accepted CONNECTs), and connections
  // that left their session, by how: a DISCONNECT without will (normal),
  // anything else (abnormal: connection lost, keep-alive timeout, protocol
  // error, DISCONNECT 0x04, a kick by the server), or a takeover by a new
  // connection. An operator's disconnect is also counted apart
  // (administrative; it then ends as abnormal).
  Counter connects;
  Counter disconnects_normal;
  Counter disconnects_abnormal;
  Counter disconnects_taken_over;
  Counter disconnects_administrative;
  // Messages dropped because a session's queue was full (a part of
  // publish_dropped; the rest expired or exceeded the client's Maximum
  // Packet Size when dequeued).
  Counter dropped_queue_full;

  // Application messages by QoS, $SYS excluded: `in` counts messages routed
  // (from clients, wills and the HTTP API), `out` the deliveries queued to
  // sessions (one per subscriber, at the QoS of that delivery). Bytes are
  // topic + payload.
  struct ByQos {
    std::array<Counter, 3> messages;
    std::array<Counter, 3> bytes;
  };
  ByQos in;
  ByQos out;

  static void add_dropped_queue_full(Stats& s, std::uint64_t n) {
    add(s.publish_dropped, n);
    add(s.dropped_queue_full, n);
  }
  // `n` messages of that topic and payload size.
  static void count(ByQos& c, std::string_view topic, std::size_t payload, std::uint8_t qos, std::uint64_t n = 1) {
    if (topic.starts_with("$SYS/") || qos > 2) return;
    c.messages[qos].add(n);
    c.bytes[qos].add((topic.size() + payload) * n);
  }

  static void add(Counter& c, std::uint64_t n = 1) { c.add(n); }
  static void sub(Counter& c, std::uint64_t n = 1) { c.sub(n); }
  static std::uint64_t get(const Counter& c) { return c.get(); }
};

}  // namespace petrel::broker
