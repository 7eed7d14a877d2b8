// broker::Message: immutable, and encoded once per wire form for any number
// of subscribers.
#include "broker/message.hpp"

#include <gtest/gtest.h>

#include "mqtt/codec.hpp"

namespace petrel::broker {
namespace {

TEST(Message, EachWireFormIsEncodedOnceAndShared) {
  Message m("a/b", "payload", 1, false, {}, "origin");
  auto first = m.encoded(mqtt::Version::V5, 1, false);
  auto again = m.encoded(mqtt::Version::V5, 1, false);
  EXPECT_EQ(first.bytes.get(), again.bytes.get());  // the same buffer, not a copy
  auto v3 = m.encoded(mqtt::Version::V311, 1, false);
  auto retained = m.encoded(mqtt::Version::V5, 1, true);
  auto qos0 = m.encoded(mqtt::Version::V5, 0, false);
  EXPECT_NE(first.bytes.get(), v3.bytes.get());
  EXPECT_NE(first.bytes.get(), retained.bytes.get());
  EXPECT_NE(first.bytes.get(), qos0.bytes.get());
  EXPECT_EQ(qos0.id_offset, 0u);
}

TEST(Message, TheCachedEncodingDecodesToTheMessageWithThePacketIdSpliced) {
  mqtt::Properties props;
  props.content_type = "text/plain";
  props.user_properties = {{"k", "v"}};
  Message m("a/b", "payload", 2, true, props, "origin");
  auto e = m.encoded(mqtt::Version::V5, 2, true);
  std::string bytes = *e.bytes;
  bytes[e.id_offset] = 0x12;
  bytes[e.id_offset + 1] = 0x34;
  mqtt::FrameReader reader(1 << 20);
  reader.feed(bytes);
  auto frame = reader.next();
  ASSERT_TRUE(frame);
  auto p = std::get<mqtt::Publish>(mqtt::decode(*frame, mqtt::Version::V5));
  EXPECT_EQ(p.topic, "a/b");
  EXPECT_EQ(p.payload, "payload");
  EXPECT_EQ(p.qos, 2);
  EXPECT_TRUE(p.retain);
  EXPECT_EQ(p.packet_id, 0x1234);
  EXPECT_EQ(p.properties.content_type, "text/plain");
  EXPECT_EQ(p.properties.user_properties, props.user_properties);
}

TEST(Message, ExpiryIsAbsoluteAndCountsDown) {
  mqtt::Properties props;
  props.message_expiry_interval = 10;
  Message m("t", "x", 0, false, props, "o");
  ASSERT_TRUE(m.has_expiry());
  EXPECT_FALSE(m.properties().message_expiry_interval);  // kept as an absolute time, not passed through
  const auto now = Clock::now();
  EXPECT_EQ(m.remaining_expiry(now), 10u);
  EXPECT_EQ(m.remaining_expiry(now + std::chrono::milliseconds(3500)), 7u);  // rounded up
  EXPECT_TRUE(m.expired(now + std::chrono::seconds(11)));
  EXPECT_EQ(m.to_publish(0, false, now + std::chrono::seconds(4)).properties.message_expiry_interval, 6u);
}

TEST(Message, TopicAliasAndSubscriptionIdsAreNotPassedThrough) {
  mqtt::Properties props;
  props.topic_alias = 3;
  props.subscription_identifiers = {7};
  Message m("t", "x", 0, false, props, "o");
  EXPECT_FALSE(m.properties().topic_alias);
  EXPECT_TRUE(m.properties().subscription_identifiers.empty());
}

}  // namespace
}  // namespace petrel::broker
