// An application message as the broker holds it: immutable once published and
// shared (std::shared_ptr<const Message>) by every session queue, in-flight
// window and retained slot that refers to it. Nothing is copied per subscriber.
//
// Encode once, send to many: encoded() returns the PUBLISH bytes for one wire
// form (protocol family x QoS x retain flag) and caches them in the message, so
// a fan-out to N subscribers serialises the message once per form, not N
// times. A subscriber's own packet identifier is spliced in by the sender at
// the returned offset. Forms that differ per subscriber (subscription
// identifiers, an outgoing topic alias, DUP on redelivery, a message expiry
// that shrinks while the message is held) are encoded per delivery instead.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "mqtt/packets.hpp"

namespace petrel::broker {

using Clock = std::chrono::steady_clock;

struct EncodedPublish {
  std::shared_ptr<const std::string> bytes;
  std::size_t id_offset = 0;  // where the 2-byte packet identifier sits (QoS > 0)
};

class Message {
 public:
  Message(std::string topic, std::string payload, std::uint8_t qos, bool retain, mqtt::Properties props,
          std::string origin_client_id);
  // A message read back from a store: its expiry is an absolute time, not
  // the interval in `props` (which must have none).
  Message(std::string topic, std::string payload, std::uint8_t qos, bool retain, mqtt::Properties props,
          std::string origin_client_id, std::optional<Clock::time_point> expires_at);

  const std::string& topic() const { return topic_; }
  const std::string& payload() const { return payload_; }
  std::uint8_t qos() const { return qos_; }
  bool retain() const { return retain_; }
  // Properties passed through to subscribers (no topic alias, no
  // subscription identifiers; the expiry interval is recomputed on send).
  const mqtt::Properties& properties() const { return props_; }
  const std::string& origin_client_id() const { return origin_; }
  // Length of the encoded pass-through properties (without length prefix).
  std::size_t properties_length() const { return props_length_; }

  bool has_expiry() const { return expires_at_.has_value(); }
  const std::optional<Clock::time_point>& expires_at() const { return expires_at_; }
  bool expired(Clock::time_point now) const { return expires_at_ && now >= *expires_at_; }
  // Seconds left of the message expiry interval, rounded up.
  std::optional<std::uint32_t> remaining_expiry(Clock::time_point now) const;

  // Builds the PUBLISH packet for one delivery (the per-subscriber path).
  mqtt::Publish to_publish(std::uint8_t qos, bool retain, Clock::time_point now) const;

  // Cached encoding for deliveries without per-subscriber fields.
  EncodedPublish encoded(mqtt::Version v, std::uint8_t qos, bool retain) const;

 private:
  std::string topic_;
  std::string payload_;
  std::uint8_t qos_;
  bool retain_;
  mqtt::Properties props_;
  std::string origin_;
  std::optional<Clock::time_point> expires_at_;
  std::size_t props_length_ = 0;

  // 2 protocol families (3.x, 5) x 3 QoS x 2 retain flags.
  mutable std::mutex cache_mutex_;
  mutable std::array<EncodedPublish, 12> cache_;
};

using MessagePtr = std::shared_ptr<const Message>;

}  // namespace petrel::broker
