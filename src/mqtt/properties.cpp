#include "mqtt/properties.hpp"

#include <fmt/format.h>

#include "mqtt/wire.hpp"

namespace petrel::mqtt {
namespace {

using C = PropertyContext;

constexpr unsigned bit(C c) {
  return 1u << static_cast<unsigned>(c);
}

// Which contexts may carry each property (MQTT 5.0 table 2-4).
unsigned allowed_contexts(PropertyId id) {
  switch (id) {
    case PropertyId::PayloadFormatIndicator:
    case PropertyId::MessageExpiryInterval:
    case PropertyId::ContentType:
    case PropertyId::ResponseTopic:
    case PropertyId::CorrelationData: return bit(C::Publish) | bit(C::Will);
    case PropertyId::SubscriptionIdentifier: return bit(C::Publish) | bit(C::Subscribe);
    case PropertyId::SessionExpiryInterval: return bit(C::Connect) | bit(C::Connack) | bit(C::Disconnect);
    case PropertyId::AssignedClientIdentifier:
    case PropertyId::ServerKeepAlive:
    case PropertyId::ResponseInformation:
    case PropertyId::MaximumQoS:
    case PropertyId::RetainAvailable:
    case PropertyId::WildcardSubscriptionAvailable:
    case PropertyId::SubscriptionIdentifierAvailable:
    case PropertyId::SharedSubscriptionAvailable: return bit(C::Connack);
    case PropertyId::AuthenticationMethod:
    case PropertyId::AuthenticationData: return bit(C::Connect) | bit(C::Connack) | bit(C::Auth);
    case PropertyId::RequestProblemInformation:
    case PropertyId::RequestResponseInformation: return bit(C::Connect);
    case PropertyId::WillDelayInterval: return bit(C::Will);
    case PropertyId::ServerReference: return bit(C::Connack) | bit(C::Disconnect);
    case PropertyId::ReasonString:
      return bit(C::Connack) | bit(C::PubAck) | bit(C::Suback) | bit(C::Unsuback) | bit(C::Disconnect) | bit(C::Auth);
    case PropertyId::ReceiveMaximum:
    case PropertyId::TopicAliasMaximum:
    case PropertyId::MaximumPacketSize: return bit(C::Connect) | bit(C::Connack);
    case PropertyId::TopicAlias: return bit(C::Publish);
    case PropertyId::UserProperty: return ~0u;
  }
  return 0;
}

template <class T>
void set_once(std::optional<T>& field, T value, unsigned id) {
  if (field) protocol_error(fmt::format("property 0x{:02X} appears more than once", id));
  field = std::move(value);
}

std::uint8_t boolean_byte(Reader& in, unsigned id) {
  auto v = in.u8();
  if (v > 1) protocol_error(fmt::format("property 0x{:02X} must be 0 or 1", id));
  return v;
}

}  // namespace

Properties decode_properties(Reader& in, PropertyContext ctx) {
  Properties p;
  const std::uint32_t length = in.varint();
  if (length > in.remaining()) malformed("property length exceeds packet");
  Reader r(in.bytes(length));
  while (!r.empty()) {
    const std::uint32_t raw_id = r.varint();
    if (raw_id > 0x2A) malformed(fmt::format("unknown property 0x{:X}", raw_id));
    const auto id = static_cast<PropertyId>(raw_id);
    const unsigned ok = allowed_contexts(id);
    if (ok == 0) malformed(fmt::format("unknown property 0x{:02X}", raw_id));
    // MQTT 5.0 2.2.2.2: an Identifier not valid for its packet type makes a
    // Malformed Packet (the rest cannot be trusted to be parsed right), as
    // does a value not of the specified data type: Reader throws that for a
    // value running past the property block.
    if ((ok & bit(ctx)) == 0) malformed(fmt::format("property 0x{:02X} not allowed in this packet", raw_id));
    switch (id) {
      case PropertyId::PayloadFormatIndicator:
        set_once(p.payload_format_indicator, boolean_byte(r, raw_id), raw_id);
        break;
      case PropertyId::MessageExpiryInterval: set_once(p.message_expiry_interval, r.u32(), raw_id); break;
      case PropertyId::ContentType: set_once(p.content_type, r.utf8(), raw_id); break;
      case PropertyId::ResponseTopic: set_once(p.response_topic, r.utf8(), raw_id); break;
      case PropertyId::CorrelationData: set_once(p.correlation_data, r.binary(), raw_id); break;
      case PropertyId::SubscriptionIdentifier: {
        auto v = r.varint();
        if (v == 0) protocol_error("subscription identifier 0");
        if (ctx == C::Subscribe && !p.subscription_identifiers.empty())
          protocol_error("more than one subscription identifier in SUBSCRIBE");
        p.subscription_identifiers.push_back(v);
        break;
      }
      case PropertyId::SessionExpiryInterval: set_once(p.session_expiry_interval, r.u32(), raw_id); break;
      case PropertyId::AssignedClientIdentifier: set_once(p.assigned_client_identifier, r.utf8(), raw_id); break;
      case PropertyId::ServerKeepAlive: set_once(p.server_keep_alive, r.u16(), raw_id); break;
      case PropertyId::AuthenticationMethod: set_once(p.authentication_method, r.utf8(), raw_id); break;
      case PropertyId::AuthenticationData: set_once(p.authentication_data, r.binary(), raw_id); break;
      case PropertyId::RequestProblemInformation:
        set_once(p.request_problem_information, boolean_byte(r, raw_id), raw_id);
        break;
      case PropertyId::WillDelayInterval: set_once(p.will_delay_interval, r.u32(), raw_id); break;
      case PropertyId::RequestResponseInformation:
        set_once(p.request_response_information, boolean_byte(r, raw_id), raw_id);
        break;
      case PropertyId::ResponseInformation: set_once(p.response_information, r.utf8(), raw_id); break;
      case PropertyId::ServerReference: set_once(p.server_reference, r.utf8(), raw_id); break;
      case PropertyId::ReasonString: set_once(p.reason_string, r.utf8(), raw_id); break;
      case PropertyId::ReceiveMaximum: {
        auto v = r.u16();
        if (v == 0) protocol_error("receive maximum 0");
        set_once(p.receive_maximum, v, raw_id);
        break;
      }
      case PropertyId::TopicAliasMaximum: set_once(p.topic_alias_maximum, r.u16(), raw_id); break;
      case PropertyId::TopicAlias: {
        auto v = r.u16();
        if (v == 0) throw ProtocolError(ReasonCode::TopicAliasInvalid, "topic alias 0");
        set_once(p.topic_alias, v, raw_id);
        break;
      }
      case PropertyId::MaximumQoS: {
        auto v = boolean_byte(r, raw_id);
        set_once(p.maximum_qos, v, raw_id);
        break;
      }
      case PropertyId::RetainAvailable: set_once(p.retain_available, boolean_byte(r, raw_id), raw_id); break;
      case PropertyId::UserProperty: {
        auto k = r.utf8();
        auto v = r.utf8();
        p.user_properties.emplace_back(std::move(k), std::move(v));
        break;
      }
      case PropertyId::MaximumPacketSize: {
        auto v = r.u32();
        if (v == 0) protocol_error("maximum packet size 0");
        set_once(p.maximum_packet_size, v, raw_id);
        break;
      }
      case PropertyId::WildcardSubscriptionAvailable:
        set_once(p.wildcard_subscription_available, boolean_byte(r, raw_id), raw_id);
        break;
      case PropertyId::SubscriptionIdentifierAvailable:
        set_once(p.subscription_identifier_available, boolean_byte(r, raw_id), raw_id);
        break;
      case PropertyId::SharedSubscriptionAvailable:
        set_once(p.shared_subscription_available, boolean_byte(r, raw_id), raw_id);
        break;
    }
  }
  return p;
}

namespace {

// Visits every present property in canonical order; `emit(id, kind, value)`.
template <class Sink>
void visit(const Properties& p, Sink&& s) {
  auto byte = [&](PropertyId id, const std::optional<std::uint8_t>& v) {
    if (v) s.u8(id, *v);
  };
  auto u16 = [&](PropertyId id, const std::optional<std::uint16_t>& v) {
    if (v) s.u16(id, *v);
  };
  auto u32 = [&](PropertyId id, const std::optional<std::uint32_t>& v) {
    if (v) s.u32(id, *v);
  };
  auto str = [&](PropertyId id, const std::optional<std::string>& v) {
    if (v) s.str(id, *v);
  };
  byte(PropertyId::PayloadFormatIndicator, p.payload_format_indicator);
  u32(PropertyId::MessageExpiryInterval, p.message_expiry_interval);
  str(PropertyId::ContentType, p.content_type);
  str(PropertyId::ResponseTopic, p.response_topic);
  str(PropertyId::CorrelationData, p.correlation_data);
  for (auto id : p.subscription_identifiers) s.var(PropertyId::SubscriptionIdentifier, id);
  u32(PropertyId::SessionExpiryInterval, p.session_expiry_interval);
  str(PropertyId::AssignedClientIdentifier, p.assigned_client_identifier);
  u16(PropertyId::ServerKeepAlive, p.server_keep_alive);
  str(PropertyId::AuthenticationMethod, p.authentication_method);
  str(PropertyId::AuthenticationData, p.authentication_data);
  byte(PropertyId::RequestProblemInformation, p.request_problem_information);
  u32(PropertyId::WillDelayInterval, p.will_delay_interval);
  byte(PropertyId::RequestResponseInformation, p.request_response_information);
  str(PropertyId::ResponseInformation, p.response_information);
  str(PropertyId::ServerReference, p.server_reference);
  str(PropertyId::ReasonString, p.reason_string);
  u16(PropertyId::ReceiveMaximum, p.receive_maximum);
  u16(PropertyId::TopicAliasMaximum, p.topic_alias_maximum);
  u16(PropertyId::TopicAlias, p.topic_alias);
  byte(PropertyId::MaximumQoS, p.maximum_qos);
  byte(PropertyId::RetainAvailable, p.retain_available);
  for (const auto& [k, v] : p.user_properties) s.pair(PropertyId::UserProperty, k, v);
  u32(PropertyId::MaximumPacketSize, p.maximum_packet_size);
  byte(PropertyId::WildcardSubscriptionAvailable, p.wildcard_subscription_available);
  byte(PropertyId::SubscriptionIdentifierAvailable, p.subscription_identifier_available);
  byte(PropertyId::SharedSubscriptionAvailable, p.shared_subscription_available);
}

struct SizeSink {
  std::size_t n = 0;
  void u8(PropertyId, std::uint8_t) { n += 2; }
  void u16(PropertyId, std::uint16_t) { n += 3; }
  void u32(PropertyId, std::uint32_t) { n += 5; }
  void var(PropertyId, std::uint32_t v) { n += 1 + varint_size(v); }
  void str(PropertyId, const std::string& v) { n += 3 + v.size(); }
  void pair(PropertyId, const std::string& k, const std::string& v) { n += 5 + k.size() + v.size(); }
};

struct WriteSink {
  Writer& w;
  void id(PropertyId i) { w.u8(static_cast<std::uint8_t>(i)); }
  void u8(PropertyId i, std::uint8_t v) {
    id(i);
    w.u8(v);
  }
  void u16(PropertyId i, std::uint16_t v) {
    id(i);
    w.u16(v);
  }
  void u32(PropertyId i, std::uint32_t v) {
    id(i);
    w.u32(v);
  }
  void var(PropertyId i, std::uint32_t v) {
    id(i);
    w.varint(v);
  }
  void str(PropertyId i, const std::string& v) {
    id(i);
    w.string(v);
  }
  void pair(PropertyId i, const std::string& k, const std::string& v) {
    id(i);
    w.string(k);
    w.string(v);
  }
};

}  // namespace

std::size_t properties_length(const Properties& p) {
  SizeSink s;
  visit(p, s);
  return s.n;
}

void encode_properties(Writer& out, const Properties& p) {
  out.varint(static_cast<std::uint32_t>(properties_length(p)));
  WriteSink s{out};
  visit(p, s);
}

}  // namespace petrel::mqtt
