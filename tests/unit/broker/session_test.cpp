// broker::Session: the queue and its drop policy, and drain(): the in-flight
// window, packet identifiers, expiry and the receiver's maximum packet size.
#include "broker/session.hpp"

#include <gtest/gtest.h>

#include <map>

#include "broker/persistence.hpp"
#include "mqtt/codec.hpp"
#include "store/memory_store.hpp"

namespace petrel::broker {
namespace {

Delivery delivery(std::uint8_t qos, std::string payload = "p", std::optional<std::uint32_t> expiry = std::nullopt) {
  mqtt::Properties props;
  props.message_expiry_interval = expiry;
  Delivery d;
  d.message = Message::create("t", payload, qos, false, props, "origin");
  d.qos = qos;
  return d;
}

Session::QueueLimits limits(std::uint32_t max_messages, bool qos0_offline = true) {
  return Session::QueueLimits{max_messages, 0, qos0_offline, nullptr};
}

std::vector<std::uint8_t> queued_qos(Session& s) {
  std::vector<std::uint8_t> out;
  std::lock_guard lock(s.mutex);
  std::vector<Outgoing> taken;
  auto store = store::make_memory_session_store();
  s.drain(DrainLimits{65535, 1u << 30, 1u << 28, mqtt::Version::V5}, Clock::now(), *store, taken);
  for (const auto& o : taken) out.push_back(o.delivery.qos);
  return out;
}

TEST(Session, OfflineQoS0IsNotQueuedUnlessAsked) {
  Session s("c");
  EXPECT_FALSE(s.enqueue(delivery(0), limits(10, false)).queued);
  EXPECT_TRUE(s.enqueue(delivery(1), limits(10, false)).queued);
  EXPECT_TRUE(s.enqueue(delivery(0), limits(10, true)).queued);
}

TEST(Session, AFullQueueDropsQoS0FirstThenTheNewMessage) {
  Session s("c");
  const auto l = limits(3);
  EXPECT_TRUE(s.enqueue(delivery(0, "a"), l).queued);
  EXPECT_TRUE(s.enqueue(delivery(1, "b"), l).queued);
  EXPECT_TRUE(s.enqueue(delivery(0, "c"), l).queued);
  // Full: a new QoS 0 message is dropped.
  auto r = s.enqueue(delivery(0, "d"), l);
  EXPECT_FALSE(r.queued);
  EXPECT_EQ(r.dropped, 1u);
  // A new QoS 1 message evicts the oldest QoS 0 one ("a").
  r = s.enqueue(delivery(1, "e"), l);
  EXPECT_TRUE(r.queued);
  EXPECT_EQ(r.dropped, 1u);
  // Another evicts "c"; then none is left to evict and the new one is dropped.
  EXPECT_TRUE(s.enqueue(delivery(2, "f"), l).queued);
  r = s.enqueue(delivery(1, "g"), l);
  EXPECT_FALSE(r.queued);
  EXPECT_EQ(r.dropped, 1u);
  EXPECT_EQ(queued_qos(s), (std::vector<std::uint8_t>{1, 1, 2}));
}

TEST(Session, TheByteLimitCountsTopicAndPayload) {
  Session s("c");
  const Session::QueueLimits l{100, 10, true, nullptr};
  EXPECT_TRUE(s.enqueue(delivery(1, "1234"), l).queued);   // 1 + 4 bytes
  EXPECT_TRUE(s.enqueue(delivery(1, "1234"), l).queued);   // 10 bytes in all
  EXPECT_FALSE(s.enqueue(delivery(1, "1"), l).queued);
}

TEST(Session, DrainFillsTheWindowWithFreshPacketIds) {
  Session s("c");
  for (int i = 0; i < 5; ++i) s.enqueue(delivery(1), limits(10));
  std::lock_guard lock(s.mutex);
  auto store = store::make_memory_session_store();
  std::vector<Outgoing> out;
  auto r = s.drain(DrainLimits{3, 1u << 20, 1u << 20, mqtt::Version::V5}, Clock::now(), *store, out);
  EXPECT_EQ(r.dropped, 0u);
  ASSERT_EQ(out.size(), 3u);
  EXPECT_EQ(out[0].packet_id, 1);
  EXPECT_EQ(out[1].packet_id, 2);
  EXPECT_EQ(out[2].packet_id, 3);
  EXPECT_EQ(s.inflight.size(), 3u);
  EXPECT_EQ(s.queue.size(), 2u);
}

TEST(Session, DrainDropsExpiredAndOversizedDeliveries) {
  Session s("c");
  s.enqueue(delivery(1, "expired", 1), limits(10));
  s.enqueue(delivery(1, std::string(100, 'x')), limits(10));
  s.enqueue(delivery(1, "fits"), limits(10));
  std::lock_guard lock(s.mutex);
  auto store = store::make_memory_session_store();
  std::vector<Outgoing> out;
  auto r = s.drain(DrainLimits{10, 1u << 20, 50, mqtt::Version::V5}, Clock::now() + std::chrono::seconds(2), *store,
                   out);
  EXPECT_EQ(r.dropped, 2u);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].delivery.message->payload(), "fits");
}

TEST(Session, DrainStopsAtTheByteBudget) {
  Session s("c");
  for (int i = 0; i < 4; ++i) s.enqueue(delivery(0, std::string(100, 'x')), limits(10));
  std::lock_guard lock(s.mutex);
  auto store = store::make_memory_session_store();
  std::vector<Outgoing> out;
  s.drain(DrainLimits{10, 150, 1u << 20, mqtt::Version::V311}, Clock::now(), *store, out);
  EXPECT_EQ(out.size(), 2u);  // the second one crosses the budget and is the last
  EXPECT_EQ(s.queue.size(), 2u);
}

TEST(Session, PacketIdsSkipThoseInFlightAndWrap) {
  Session s("c");
  std::lock_guard lock(s.mutex);
  s.next_packet_id = 65535;
  s.inflight.emplace(1, Inflight{});
  EXPECT_EQ(s.allocate_packet_id(), 65535);
  EXPECT_EQ(s.allocate_packet_id(), 2);  // wrapped past 0, skipped 1
}

TEST(DeliveryQueue, SubscriptionIdsStayWithTheirDeliveriesThroughEvictionAndWrap) {
  // Deliveries with and without subscription identifiers, QoS 0 ones evicted
  // from the middle, the ring wrapping around as the front is taken.
  Session s("c");
  const auto l = limits(6);
  auto with_ids = [](std::uint8_t qos, const std::string& payload, std::vector<std::uint32_t> ids) {
    Delivery d = delivery(qos, payload);
    d.subscription_ids = std::move(ids);
    return d;
  };
  std::map<std::string, std::vector<std::uint32_t>> expected;
  auto put = [&](std::uint8_t qos, const std::string& payload, std::vector<std::uint32_t> ids) {
    auto r = s.enqueue(with_ids(qos, payload, ids), l);
    if (r.queued) expected[payload] = ids;
    return r;
  };
  put(0, "a", {1});
  put(1, "b", {});
  put(0, "c", {2, 3});
  put(1, "d", {4});
  put(0, "e", {});
  put(1, "f", {5, 6, 7});
  // Full: each QoS 1 message evicts the oldest QoS 0 one (a, then c, then e).
  EXPECT_EQ(put(1, "g", {8}).dropped, 1u);
  EXPECT_EQ(put(2, "h", {}).dropped, 1u);
  EXPECT_EQ(put(1, "i", {9}).dropped, 1u);
  std::vector<std::string> got;
  auto take = [&](std::size_t n) {
    std::lock_guard lock(s.mutex);
    auto store = store::make_memory_session_store();
    std::vector<Outgoing> out;
    s.drain(DrainLimits{n, 1u << 20, 1u << 20, mqtt::Version::V5}, Clock::now(), *store, out);
    for (auto& o : out) {
      const std::string payload(o.delivery.message->payload());
      got.push_back(payload);
      EXPECT_EQ(o.delivery.subscription_ids, expected[payload]) << payload;
      s.inflight.erase(o.packet_id);
    }
  };
  take(2);  // b, d: the front moves, the next ones wrap around the ring
  put(1, "j", {10, 11});
  put(1, "k", {});
  take(100);
  EXPECT_EQ(got, (std::vector<std::string>{"b", "d", "f", "g", "h", "i", "j", "k"}));
  std::lock_guard lock(s.mutex);
  EXPECT_EQ(s.queued_bytes, 0u);
  EXPECT_EQ(s.queued_qos0, 0u);
}

TEST(DeliveryQueue, GrowsByHalfAndGivesBackWhatAnOfflineSessionDoesNotUse) {
  DeliveryQueue q;
  EXPECT_EQ(q.capacity(), 0u);  // no memory until the first delivery
  for (int i = 0; i < 10; ++i) q.push_back(delivery(1, std::to_string(i)));
  EXPECT_EQ(q.capacity(), 13u);  // 4, 6, 9, 13
  q.shrink_to_fit();
  EXPECT_EQ(q.capacity(), 10u);
  for (int i = 0; i < 10; ++i) EXPECT_EQ(q.pop_front().message->payload(), std::to_string(i));
  q.shrink_to_fit();
  EXPECT_EQ(q.capacity(), 0u);
}

TEST(SubscriptionMap, KeepsFiltersSortedAndFindsThem) {
  SubscriptionMap m;
  EXPECT_EQ(m.peek(), nullptr);
  m["b/#"].subscription_id = 2;
  m["a/+"].subscription_id = 1;
  m["c"].subscription_id = 3;
  m["b/#"].options.qos = 1;  // replaces, does not add
  EXPECT_EQ(m.size(), 3u);
  EXPECT_TRUE(m.contains("a/+"));
  EXPECT_FALSE(m.contains("a"));
  std::vector<std::string> order;
  for (const auto& [filter, entry] : *m.peek()) order.push_back(filter);
  EXPECT_EQ(order, (std::vector<std::string>{"a/+", "b/#", "c"}));
  EXPECT_EQ(m.erase("b/#"), 1u);
  EXPECT_EQ(m.erase("b/#"), 0u);
  EXPECT_EQ(m.size(), 2u);
}

TEST(Session, PublishWireSizeMatchesTheEncoding) {
  for (auto v : {mqtt::Version::V311, mqtt::Version::V5}) {
    Delivery d = delivery(1, "payload", 30);
    d.subscription_ids = {5, 300};
    mqtt::Publish p = d.message->to_publish(1, false, Clock::now());
    p.packet_id = 1;
    if (v == mqtt::Version::V5) p.properties.subscription_identifiers = d.subscription_ids;
    std::string bytes;
    mqtt::encode_publish(p, v, bytes);
    EXPECT_EQ(publish_wire_size(d, v), bytes.size()) << mqtt::to_string(v);
  }
}

}  // namespace
}  // namespace petrel::broker
