// broker::Session: the queue and its drop policy, and drain(): the in-flight
// window, packet identifiers, expiry and the receiver's maximum packet size.
#include "broker/session.hpp"

#include <gtest/gtest.h>

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
