// An application message as the broker holds it: immutable once published and
// shared by every session queue, in-flight window and retained slot that
// refers to it. Nothing is copied per subscriber.
//
// One allocation per message: the object, its topic, payload and origin
// client id live in one block (Message::create), reference-counted in the
// block itself (MessagePtr is a boost::intrusive_ptr), so routing a PUBLISH
// costs one malloc. Properties are rare on the hot path; a message that has
// some keeps them, with their encoding, in a second block.
//
// Senders assemble each subscriber's PUBLISH around the message
// (mqtt::encode_publish_head): the fixed header, topic, packet id and the
// properties that differ per subscriber (subscription identifiers, an
// outgoing topic alias, the expiry left) are written per delivery, the
// pass-through properties come encoded from the message, and the payload is
// copied into the connection's buffer when small or referenced in place when
// large (Transport::send_payload).
#pragma once

#include <atomic>
#include <boost/intrusive_ptr.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "mqtt/packets.hpp"

namespace petrel::broker {

using Clock = std::chrono::steady_clock;

class Message;
using MessagePtr = boost::intrusive_ptr<const Message>;

class Message {
 public:
  // A message published now: `props` as received (a Topic Alias and
  // Subscription Identifiers are dropped; a Message Expiry Interval becomes
  // an absolute expiry).
  static MessagePtr create(std::string_view topic, std::string_view payload, std::uint8_t qos, bool retain,
                           const mqtt::Properties& props, std::string_view origin_client_id);
  // Without properties (the hot path of v3 and of most v5 publishers).
  static MessagePtr create(std::string_view topic, std::string_view payload, std::uint8_t qos, bool retain,
                           std::string_view origin_client_id);
  // A message read back from a store: its expiry is an absolute time, not
  // the interval in `props` (which must have none).
  static MessagePtr restore(std::string_view topic, std::string_view payload, std::uint8_t qos, bool retain,
                            const mqtt::Properties& props, std::string_view origin_client_id,
                            std::optional<Clock::time_point> expires_at);

  Message(const Message&) = delete;
  Message& operator=(const Message&) = delete;

  std::string_view topic() const { return {data(), topic_size_}; }
  std::string_view payload() const { return {data() + topic_size_, payload_size_}; }
  // The client that published it (No Local); empty for the broker's own.
  std::string_view origin_client_id() const { return {data() + topic_size_ + payload_size_, origin_size_}; }
  std::uint8_t qos() const { return qos_; }
  bool retain() const { return retain_; }
  // Properties passed through to subscribers (no topic alias, no
  // subscription identifiers; the expiry interval is recomputed on send).
  const mqtt::Properties& properties() const;
  // Their encoding, without the length prefix ("" when there are none).
  std::string_view encoded_properties() const { return extra_ ? std::string_view(extra_->encoded) : std::string_view(); }
  std::size_t properties_length() const { return extra_ ? extra_->encoded.size() : 0; }

  bool has_expiry() const { return has_expiry_; }
  std::optional<Clock::time_point> expires_at() const {
    return has_expiry_ ? std::optional<Clock::time_point>(expires_at_) : std::nullopt;
  }
  bool expired(Clock::time_point now) const { return has_expiry_ && now >= expires_at_; }
  // Seconds left of the message expiry interval, rounded up.
  std::optional<std::uint32_t> remaining_expiry(Clock::time_point now) const;

  // The whole PUBLISH packet for one delivery, as a struct (tests, tools).
  mqtt::Publish to_publish(std::uint8_t qos, bool retain, Clock::time_point now) const;

 private:
  struct Extra {
    mqtt::Properties properties;
    std::string encoded;
  };
  Message() = default;
  ~Message() = default;
  static MessagePtr make(std::string_view topic, std::string_view payload, std::uint8_t qos, bool retain,
                         std::string_view origin, std::unique_ptr<Extra> extra);
  const char* data() const { return reinterpret_cast<const char*>(this + 1); }
  friend void intrusive_ptr_add_ref(const Message* m) noexcept {
    m->refs_.fetch_add(1, std::memory_order_relaxed);
  }
  friend void intrusive_ptr_release(const Message* m) noexcept {
    if (m->refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) destroy(m);
  }
  static void destroy(const Message* m) noexcept;

  mutable std::atomic<std::uint32_t> refs_{0};
  std::uint32_t topic_size_ = 0;
  std::uint32_t payload_size_ = 0;
  std::uint16_t origin_size_ = 0;
  std::uint8_t qos_ = 0;
  bool retain_ = false;
  bool has_expiry_ = false;
  Clock::time_point expires_at_{};
  std::unique_ptr<Extra> extra_;  // null: no properties
  // topic, payload and origin follow the object in the same block
};

}  // namespace petrel::broker
