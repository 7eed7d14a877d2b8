#include "broker/message.hpp"

#include "mqtt/codec.hpp"

namespace petrel::broker {

Message::Message(std::string topic, std::string payload, std::uint8_t qos, bool retain, mqtt::Properties props,
                 std::string origin_client_id)
    : topic_(std::move(topic)),
      payload_(std::move(payload)),
      qos_(qos),
      retain_(retain),
      props_(std::move(props)),
      origin_(std::move(origin_client_id)) {
  props_.topic_alias.reset();
  props_.subscription_identifiers.clear();
  if (props_.message_expiry_interval) {
    expires_at_ = Clock::now() + std::chrono::seconds(*props_.message_expiry_interval);
    props_.message_expiry_interval.reset();
  }
  props_length_ = mqtt::properties_length(props_);
}

Message::Message(std::string topic, std::string payload, std::uint8_t qos, bool retain, mqtt::Properties props,
                 std::string origin_client_id, std::optional<Clock::time_point> expires_at)
    : Message(std::move(topic), std::move(payload), qos, retain, std::move(props), std::move(origin_client_id)) {
  expires_at_ = expires_at;
}

std::optional<std::uint32_t> Message::remaining_expiry(Clock::time_point now) const {
  if (!expires_at_) return std::nullopt;
  if (now >= *expires_at_) return 0;
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(*expires_at_ - now).count();
  return static_cast<std::uint32_t>((left + 999) / 1000);
}

mqtt::Publish Message::to_publish(std::uint8_t qos, bool retain, Clock::time_point now) const {
  mqtt::Publish p;
  p.topic = topic_;
  p.payload = payload_;
  p.qos = qos;
  p.retain = retain;
  p.properties = props_;
  p.properties.message_expiry_interval = remaining_expiry(now);
  return p;
}

EncodedPublish Message::encoded(mqtt::Version v, std::uint8_t qos, bool retain) const {
  const std::size_t slot = (v == mqtt::Version::V5 ? 6u : 0u) + qos * 2u + (retain ? 1u : 0u);
  std::lock_guard lock(cache_mutex_);
  auto& e = cache_[slot];
  if (!e.bytes) {
    mqtt::Publish p;
    p.qos = qos;
    p.retain = retain;
    p.topic = topic_;
    p.properties = props_;
    p.payload = payload_;  // one copy per wire form, not per subscriber
    auto bytes = std::make_shared<std::string>();
    e.id_offset = mqtt::encode_publish(p, v, *bytes);
    e.bytes = std::move(bytes);
  }
  return e;
}

}  // namespace petrel::broker
