#include "broker/message.hpp"

#include <cstring>
#include <new>

#include "broker/recycler.hpp"
#include "mqtt/properties.hpp"
#include "mqtt/wire.hpp"

namespace petrel::broker {

namespace {

const mqtt::Properties& no_properties() {
  static const mqtt::Properties none;
  return none;
}

bool empty(const mqtt::Properties& p) { return p == no_properties(); }

}  // namespace

MessagePtr Message::make(std::string_view topic, std::string_view payload, std::uint8_t qos, bool retain,
                         std::string_view origin, std::unique_ptr<Extra> extra) {
  void* block = recycled_allocate(sizeof(Message) + topic.size() + payload.size() + origin.size());
  auto* m = new (block) Message();
  m->topic_size_ = static_cast<std::uint32_t>(topic.size());
  m->payload_size_ = static_cast<std::uint32_t>(payload.size());
  m->origin_size_ = static_cast<std::uint16_t>(origin.size());
  m->qos_ = qos;
  m->retain_ = retain;
  m->extra_ = std::move(extra);
  char* out = reinterpret_cast<char*>(m + 1);
  if (!topic.empty()) std::memcpy(out, topic.data(), topic.size());
  if (!payload.empty()) std::memcpy(out + topic.size(), payload.data(), payload.size());
  if (!origin.empty()) std::memcpy(out + topic.size() + payload.size(), origin.data(), origin.size());
  return MessagePtr(m);
}

void Message::destroy(const Message* m) noexcept {
  const std::size_t size = sizeof(Message) + m->topic_size_ + m->payload_size_ + m->origin_size_;
  m->~Message();
  recycled_deallocate(const_cast<Message*>(m), size);
}

MessagePtr Message::create(std::string_view topic, std::string_view payload, std::uint8_t qos, bool retain,
                           std::string_view origin_client_id) {
  return make(topic, payload, qos, retain, origin_client_id, nullptr);
}

MessagePtr Message::create(std::string_view topic, std::string_view payload, std::uint8_t qos, bool retain,
                           const mqtt::Properties& props, std::string_view origin_client_id) {
  std::optional<Clock::time_point> expires;
  if (props.message_expiry_interval) expires = Clock::now() + std::chrono::seconds(*props.message_expiry_interval);
  std::unique_ptr<Extra> extra;
  if (!empty(props)) {
    extra = std::make_unique<Extra>();
    extra->properties = props;
    extra->properties.topic_alias.reset();
    extra->properties.subscription_identifiers.clear();
    extra->properties.message_expiry_interval.reset();
    if (empty(extra->properties)) {
      extra.reset();
    } else {
      std::string block;
      mqtt::Writer w(block);
      mqtt::encode_properties(w, extra->properties);
      // encode_properties writes the length prefix: keep only the properties.
      const std::size_t length = mqtt::properties_length(extra->properties);
      extra->encoded = block.substr(block.size() - length);
    }
  }
  MessagePtr m = make(topic, payload, qos, retain, origin_client_id, std::move(extra));
  if (expires) {
    auto* mutable_m = const_cast<Message*>(m.get());
    mutable_m->has_expiry_ = true;
    mutable_m->expires_at_ = *expires;
  }
  return m;
}

MessagePtr Message::restore(std::string_view topic, std::string_view payload, std::uint8_t qos, bool retain,
                            const mqtt::Properties& props, std::string_view origin_client_id,
                            std::optional<Clock::time_point> expires_at) {
  MessagePtr m = create(topic, payload, qos, retain, props, origin_client_id);
  auto* mutable_m = const_cast<Message*>(m.get());
  mutable_m->has_expiry_ = expires_at.has_value();
  mutable_m->expires_at_ = expires_at.value_or(Clock::time_point{});
  return m;
}

const mqtt::Properties& Message::properties() const { return extra_ ? extra_->properties : no_properties(); }

std::optional<std::uint32_t> Message::remaining_expiry(Clock::time_point now) const {
  if (!has_expiry_) return std::nullopt;
  if (now >= expires_at_) return 0;
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(expires_at_ - now).count();
  return static_cast<std::uint32_t>((left + 999) / 1000);
}

mqtt::Publish Message::to_publish(std::uint8_t qos, bool retain, Clock::time_point now) const {
  mqtt::Publish p;
  p.topic = std::string(topic());
  p.payload = std::string(payload());
  p.qos = qos;
  p.retain = retain;
  p.properties = properties();
  p.properties.message_expiry_interval = remaining_expiry(now);
  return p;
}

}  // namespace petrel::broker
