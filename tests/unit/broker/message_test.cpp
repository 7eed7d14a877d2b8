// broker::Message: immutable, one allocation for the object, its topic,
// payload and origin; properties kept encoded for the senders.
#include "broker/message.hpp"

#include <gtest/gtest.h>

#include "mqtt/codec.hpp"

namespace petrel::broker {
namespace {

TEST(Message, HoldsItsTopicPayloadAndOrigin) {
  auto m = Message::create("a/b", "payload", 1, true, "origin");
  EXPECT_EQ(m->topic(), "a/b");
  EXPECT_EQ(m->payload(), "payload");
  EXPECT_EQ(m->origin_client_id(), "origin");
  EXPECT_EQ(m->qos(), 1);
  EXPECT_TRUE(m->retain());
  EXPECT_EQ(m->properties(), mqtt::Properties{});
  EXPECT_EQ(m->properties_length(), 0u);
  MessagePtr copy = m;  // shared, not copied
  EXPECT_EQ(copy->payload().data(), m->payload().data());
}

TEST(Message, EncodedPropertiesRebuildTheSubscribersPublish) {
  mqtt::Properties props;
  props.content_type = "text/plain";
  props.user_properties = {{"k", "v"}};
  props.topic_alias = 4;                  // the publisher's, not passed on
  props.subscription_identifiers = {9};  // never from a publisher, dropped anyway
  auto m = Message::create("a/b", "payload", 2, true, props, "origin");
  EXPECT_FALSE(m->properties().topic_alias);
  EXPECT_TRUE(m->properties().subscription_identifiers.empty());
  mqtt::PublishHead h;
  h.topic = m->topic();
  h.qos = 2;
  h.retain = true;
  h.packet_id = 0x1234;
  h.properties = m->encoded_properties();
  std::string bytes;
  const auto size = mqtt::encode_publish_head(h, mqtt::Version::V5, m->payload().size(), bytes);
  bytes.append(m->payload());
  EXPECT_EQ(size, bytes.size());
  EXPECT_EQ(mqtt::publish_size(h, mqtt::Version::V5, m->payload().size()), bytes.size());
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
  EXPECT_FALSE(p.properties.topic_alias);
}

TEST(Message, ExpiryIsAbsoluteAndCountsDown) {
  mqtt::Properties props;
  props.message_expiry_interval = 10;
  auto m = Message::create("t", "x", 0, false, props, "o");
  ASSERT_TRUE(m->has_expiry());
  EXPECT_FALSE(m->properties().message_expiry_interval);  // kept as an absolute time, not passed through
  const auto now = Clock::now();
  EXPECT_EQ(m->remaining_expiry(now), 10u);
  EXPECT_EQ(m->remaining_expiry(now + std::chrono::milliseconds(3500)), 7u);  // rounded up
  EXPECT_TRUE(m->expired(now + std::chrono::seconds(11)));
  EXPECT_EQ(m->to_publish(0, false, now + std::chrono::seconds(4)).properties.message_expiry_interval, 6u);
}

TEST(Message, ARestoredMessageKeepsItsAbsoluteExpiry) {
  const auto at = Clock::now() + std::chrono::seconds(30);
  auto m = Message::restore("t", "x", 1, false, mqtt::Properties{}, "o", at);
  EXPECT_EQ(m->expires_at(), at);
  auto never = Message::restore("t", "x", 1, false, mqtt::Properties{}, "o", std::nullopt);
  EXPECT_FALSE(never->has_expiry());
}

TEST(Message, LargePayloadsAndEmptyParts) {
  const std::string big(1 << 20, 'z');
  auto m = Message::create("", big, 0, false, "");
  EXPECT_EQ(m->topic(), "");
  EXPECT_EQ(m->payload(), big);
  EXPECT_EQ(m->origin_client_id(), "");
}

}  // namespace
}  // namespace petrel::broker
