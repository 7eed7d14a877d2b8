#include "mqtt/codec.hpp"

#include <fmt/format.h>

#include <cstring>

#include "mqtt/topic.hpp"
#include "mqtt/utf8.hpp"
#include "mqtt/wire.hpp"

namespace petrel::mqtt {

std::string_view to_string(PacketType t) {
  static constexpr std::string_view names[] = {
      "RESERVED",  "CONNECT", "CONNACK",     "PUBLISH",  "PUBACK",  "PUBREC",   "PUBREL",     "PUBCOMP",
      "SUBSCRIBE", "SUBACK",  "UNSUBSCRIBE", "UNSUBACK", "PINGREQ", "PINGRESP", "DISCONNECT", "AUTH"};
  auto i = static_cast<unsigned>(t);
  return i < 16 ? names[i] : "UNKNOWN";
}

std::string_view to_string(Version v) {
  switch (v) {
    case Version::V31: return "3.1";
    case Version::V311: return "3.1.1";
    case Version::V5: return "5.0";
  }
  return "?";
}

PacketType packet_type(const Packet& p) {
  return std::visit(
      [](const auto& x) -> PacketType {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, Connect>)
          return PacketType::Connect;
        else if constexpr (std::is_same_v<T, Connack>)
          return PacketType::Connack;
        else if constexpr (std::is_same_v<T, Publish>)
          return PacketType::Publish;
        else if constexpr (std::is_same_v<T, PubAck>)
          return x.type;
        else if constexpr (std::is_same_v<T, Subscribe>)
          return PacketType::Subscribe;
        else if constexpr (std::is_same_v<T, Suback>)
          return PacketType::Suback;
        else if constexpr (std::is_same_v<T, Unsubscribe>)
          return PacketType::Unsubscribe;
        else if constexpr (std::is_same_v<T, Unsuback>)
          return PacketType::Unsuback;
        else if constexpr (std::is_same_v<T, Pingreq>)
          return PacketType::Pingreq;
        else if constexpr (std::is_same_v<T, Pingresp>)
          return PacketType::Pingresp;
        else if constexpr (std::is_same_v<T, Disconnect>)
          return PacketType::Disconnect;
        else
          return PacketType::Auth;
      },
      p);
}

// ---------------------------------------------------------------- framing --

void FrameReader::borrow(std::string_view bytes) {
  keep_rest();  // an input not fully consumed before is kept first, in order
  input_ = bytes;
}

void FrameReader::keep_rest() {
  if (input_.empty() && (!held_ || held_->consumed == held_->bytes.size())) {
    held_.reset();  // nothing left over: hold no memory
    return;
  }
  if (!held_) held_ = std::make_unique<Held>();
  auto& h = *held_;
  if (h.consumed > 0) {
    h.bytes.erase(0, h.consumed);
    h.consumed = 0;
  }
  h.bytes.append(input_);
  input_ = {};
}

std::size_t FrameReader::frame_size(const char* data, std::size_t avail) const {
  if (avail < 2) return 0;
  const auto* p = reinterpret_cast<const unsigned char*>(data);
  std::uint32_t length = 0;
  std::size_t i = 1;
  for (;; ++i) {
    if (i > 4) malformed("remaining length longer than 4 bytes");
    if (i >= avail) return 0;
    length |= std::uint32_t{p[i] & 0x7Fu} << (7 * (i - 1));
    if ((p[i] & 0x80) == 0) break;
  }
  const std::size_t total = i + 1 + length;
  if (total > max_packet_size_)
    throw ProtocolError(ReasonCode::PacketTooLarge,
                        fmt::format("packet of {} bytes exceeds maximum packet size {}", total, max_packet_size_));
  return total;
}

namespace {
Frame frame_at(const char* p, std::size_t total) {
  Frame f;
  f.header = static_cast<std::uint8_t>(p[0]);
  std::size_t i = 1;
  while (static_cast<unsigned char>(p[i]) & 0x80) ++i;
  f.body = std::string_view(p + i + 1, total - i - 1);
  f.size = total;
  return f;
}
}  // namespace

std::optional<Frame> FrameReader::next() {
  if (held_ && held_->consumed < held_->bytes.size()) {
    // A frame that began in an earlier input (or one kept for later):
    // complete it in the buffer with bytes of the input.
    auto& h = *held_;
    std::size_t avail = h.bytes.size() - h.consumed;
    std::size_t total = frame_size(h.bytes.data() + h.consumed, avail);
    while (total == 0 && !input_.empty()) {
      h.bytes.push_back(input_.front());  // the fixed header, byte by byte (at most 5)
      input_.remove_prefix(1);
      ++avail;
      total = frame_size(h.bytes.data() + h.consumed, avail);
    }
    if (total == 0) return std::nullopt;
    if (avail < total) {
      const std::size_t take = std::min(total - avail, input_.size());
      h.bytes.append(input_.substr(0, take));
      input_.remove_prefix(take);
      avail += take;
      if (avail < total) return std::nullopt;
    }
    Frame f = frame_at(h.bytes.data() + h.consumed, total);
    h.consumed += total;
    return f;
  }
  // The common case: whole frames straight from the input, no copy.
  const std::size_t total = frame_size(input_.data(), input_.size());
  if (total == 0 || input_.size() < total) return std::nullopt;
  Frame f = frame_at(input_.data(), total);
  input_.remove_prefix(total);
  return f;
}

// --------------------------------------------------------------- decoding --

namespace {

void expect_flags(const Frame& f, std::uint8_t flags) {
  if (f.flags() != flags) malformed(fmt::format("{} with reserved flags 0x{:X}", to_string(f.type()), f.flags()));
}

// PUBREL, SUBSCRIBE and UNSUBSCRIBE: flags 0010 [MQTT-3.6.1-1] [MQTT-3.8.1-1]
// [MQTT-3.10.1-1]. MQTT 3.1 calls them QoS 1 messages and sets DUP (bit 3)
// when it sends one again, so 3.1 sessions may set that bit.
void expect_qos1_flags(const Frame& f, Version v) {
  const unsigned flags = v == Version::V31 ? f.flags() & ~0x08u : f.flags();
  if (flags != 0x02) malformed(fmt::format("{} with reserved flags 0x{:X}", to_string(f.type()), f.flags()));
}

// A string that names something (topic name or filter, client identifier,
// user name, will topic): UTF-8 as every string, and no control characters
// unless the options allow them (codec.hpp, DecodeOptions).
std::string name_string(Reader& r, const DecodeOptions& o, std::string_view what) {
  std::string s = r.utf8();
  if (!o.allow_control_characters && has_control_characters(s))
    malformed(fmt::format("control character in {}", what));
  return s;
}

// A topic filter in SUBSCRIBE or UNSUBSCRIBE: at least one character
// [MQTT-4.7.3-1]. An empty one is not a filter the broker could refuse alone
// (SUBACK 0x8F) but a packet that breaks the rules for its payload.
std::string filter_string(Reader& r, const DecodeOptions& o) {
  std::string s = name_string(r, o, "topic filter");
  if (s.empty()) malformed("zero-length topic filter");
  return s;
}

// The packet type alone, before the body: reserved types and packets going
// the wrong way are Protocol Errors however their bodies look.
void check_packet_type(const Frame& f, Version v, const DecodeOptions& o) {
  const PacketType t = f.type();
  if (static_cast<unsigned>(t) == 0) protocol_error("reserved packet type 0");
  if (t == PacketType::Auth && v != Version::V5) protocol_error("packet type 15 is reserved before MQTT 5");
  if (o.sender == Sender::Client) {
    switch (t) {
      case PacketType::Connect: protocol_error("second CONNECT");
      case PacketType::Connack:
      case PacketType::Suback:
      case PacketType::Unsuback:
      case PacketType::Pingresp: protocol_error(fmt::format("{} is sent by servers only", to_string(t)));
      case PacketType::Auth:
        if (!o.enhanced_auth) protocol_error("AUTH without enhanced authentication (no Authentication Method)");
        break;
      default: break;
    }
  } else if (o.sender == Sender::Server) {
    switch (t) {
      case PacketType::Connect:
      case PacketType::Subscribe:
      case PacketType::Unsubscribe:
      case PacketType::Pingreq: protocol_error(fmt::format("{} is sent by clients only", to_string(t)));
      default: break;
    }
  }
}

std::uint16_t packet_id(Reader& r) {
  auto id = r.u16();
  if (id == 0) protocol_error("packet identifier 0");
  return id;
}

void expect_end(const Reader& r, PacketType t) {
  if (!r.empty()) malformed(fmt::format("{} has {} trailing bytes", to_string(t), r.remaining()));
}

// A PUBLISH topic in one pass: MQTT UTF-8, control characters, wildcards.
// Most topics are ASCII without anything special: they are checked eight
// bytes at a time; a word with a special byte is looked at byte by byte, and
// the first byte that is not ASCII sends the topic to the full UTF-8 check.
void check_topic_name(std::string_view topic, Version v, const DecodeOptions& o) {
  constexpr std::uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
  auto has_zero = [](std::uint64_t x) { return (x - ones) & ~x & highs; };
  bool wildcard = false;
  auto check_byte = [&](unsigned char c) {
    if (c < 0x20 || c == 0x7F) {
      if (c == 0) malformed("invalid UTF-8 string");  // U+0000 is never allowed
      if (!o.allow_control_characters) malformed("control character in topic name");
    }
    wildcard = wildcard || c == '+' || c == '#';
  };
  std::size_t i = 0;
  bool ascii = true;
  for (; i + 8 <= topic.size(); i += 8) {
    std::uint64_t w;
    std::memcpy(&w, topic.data() + i, 8);
    if (w & highs) {
      ascii = false;
      break;
    }
    const std::uint64_t special = ((w - ones * 0x20) & ~w & highs) | has_zero(w ^ (ones * 0x7F)) |
                                  has_zero(w ^ (ones * '+')) | has_zero(w ^ (ones * '#'));
    if (special)
      for (std::size_t j = i; j < i + 8; ++j) check_byte(static_cast<unsigned char>(topic[j]));
  }
  for (; ascii && i < topic.size(); ++i) {
    const auto c = static_cast<unsigned char>(topic[i]);
    if (c >= 0x80) {
      ascii = false;
      break;
    }
    check_byte(c);
  }
  if (!ascii) {
    if (!valid_mqtt_utf8(topic)) malformed("invalid UTF-8 string");
    if (!o.allow_control_characters && has_control_characters(topic)) malformed("control character in topic name");
    wildcard = wildcard || topic.find_first_of("+#") != std::string_view::npos;
  }
  if (wildcard || (topic.empty() && v != Version::V5))
    throw ProtocolError(ReasonCode::TopicNameInvalid, "invalid topic name in PUBLISH");
}

}  // namespace

const Properties& PublishView::props() const {
  static const Properties none;
  return properties ? *properties : none;
}

PublishView decode_publish_view(const Frame& f, Version v, const DecodeOptions& o) {
  PublishView p;
  p.dup = f.flags() & 0x08;
  p.qos = (f.flags() >> 1) & 0x03;
  p.retain = f.flags() & 0x01;
  if (p.qos == 3) malformed("PUBLISH with QoS 3");
  if (p.qos == 0 && p.dup) malformed("PUBLISH with QoS 0 and DUP set");
  Reader r(f.body);
  p.topic = r.bytes(r.u16());
  check_topic_name(p.topic, v, o);
  if (p.qos > 0) p.packet_id = packet_id(r);
  if (v == Version::V5) {
    // Most PUBLISHes carry no properties: a zero length needs no decoding.
    if (r.remaining() > 0 && r.peek() == 0) {
      r.u8();
    } else {
      p.properties = decode_properties(r, PropertyContext::Publish);
    }
    if (p.topic.empty() && !p.props().topic_alias) protocol_error("empty topic without topic alias");
  }
  p.payload = r.rest();
  if (p.props().payload_format_indicator == 1 && !valid_utf8(p.payload))
    throw ProtocolError(ReasonCode::PayloadFormatInvalid, "payload is not UTF-8 although format indicator says so");
  return p;
}

namespace {

Publish decode_publish(const Frame& f, Version v, const DecodeOptions& o) {
  PublishView view = decode_publish_view(f, v, o);
  Publish p;
  p.topic = std::string(view.topic);
  p.payload = std::string(view.payload);
  p.qos = view.qos;
  p.retain = view.retain;
  p.dup = view.dup;
  p.packet_id = view.packet_id;
  if (view.properties) p.properties = std::move(*view.properties);
  return p;
}

bool valid_ack_reason(PacketType t, std::uint8_t rc) {
  if (t == PacketType::Pubrel || t == PacketType::Pubcomp) return rc == 0x00 || rc == 0x92;
  switch (rc) {
    case 0x00:
    case 0x10:
    case 0x80:
    case 0x83:
    case 0x87:
    case 0x90:
    case 0x91:
    case 0x97:
    case 0x99: return true;
    default: return false;
  }
}

// PUBACK, PUBREC, PUBREL, PUBCOMP; the properties (a Reason String, User
// Properties) go to `props` when it is given, else they are checked and
// dropped.
AckView decode_ack_into(const Frame& f, Version v, Properties* props) {
  AckView a;
  a.type = f.type();
  if (a.type == PacketType::Pubrel) {
    expect_qos1_flags(f, v);
  } else {
    expect_flags(f, 0);
  }
  Reader r(f.body);
  a.packet_id = packet_id(r);
  if (v == Version::V5) {
    if (!r.empty()) {
      auto rc = r.u8();
      if (!valid_ack_reason(a.type, rc))
        protocol_error(fmt::format("invalid reason code 0x{:02X} in {}", rc, to_string(a.type)));
      a.reason = static_cast<ReasonCode>(rc);
    }
    if (!r.empty() && !(r.remaining() == 1 && r.peek() == 0)) {
      Properties decoded = decode_properties(r, PropertyContext::PubAck);
      a.user_properties = decoded.user_properties.size();
      if (props) *props = std::move(decoded);
    } else if (!r.empty()) {
      r.u8();  // an empty property block
    }
  }
  expect_end(r, a.type);
  return a;
}

PubAck decode_puback(const Frame& f, Version v) {
  PubAck a;
  const AckView view = decode_ack_into(f, v, &a.properties);
  a.type = view.type;
  a.packet_id = view.packet_id;
  a.reason = view.reason;
  return a;
}

Subscribe decode_subscribe(const Frame& f, Version v, const DecodeOptions& o) {
  expect_qos1_flags(f, v);
  Subscribe s;
  Reader r(f.body);
  s.packet_id = packet_id(r);
  if (v == Version::V5) s.properties = decode_properties(r, PropertyContext::Subscribe);
  if (r.empty()) protocol_error("SUBSCRIBE without topic filters");
  while (!r.empty()) {
    Subscription sub;
    sub.filter = filter_string(r, o);
    auto o = r.u8();
    sub.options.qos = o & 0x03;
    if (v == Version::V5) {
      if (sub.options.qos == 3) protocol_error("subscription with QoS 3");
      if (o & 0xC0) malformed("reserved bits set in subscription options");
      sub.options.no_local = o & 0x04;
      sub.options.retain_as_published = o & 0x08;
      sub.options.retain_handling = (o >> 4) & 0x03;
      if (sub.options.retain_handling == 3) protocol_error("retain handling 3");
    } else if ((o & 0xFC) || sub.options.qos == 3) {
      malformed("reserved bits set in requested QoS, or QoS 3");
    }
    s.subscriptions.push_back(std::move(sub));
  }
  return s;
}

bool valid_suback_reason(std::uint8_t rc, Version v) {
  if (rc <= 2 || rc == 0x80) return true;
  if (v != Version::V5) return false;
  switch (rc) {
    case 0x83: case 0x87: case 0x8F: case 0x91: case 0x97: case 0x9E: case 0xA1: case 0xA2: return true;
    default: return false;
  }
}

Suback decode_suback(const Frame& f, Version v) {
  expect_flags(f, 0);
  Suback s;
  Reader r(f.body);
  s.packet_id = packet_id(r);
  if (v == Version::V5) s.properties = decode_properties(r, PropertyContext::Suback);
  if (r.empty()) protocol_error("SUBACK without return codes");
  while (!r.empty()) {
    const auto rc = r.u8();
    if (!valid_suback_reason(rc, v)) malformed(fmt::format("invalid SUBACK return code 0x{:02X}", rc));
    s.reasons.push_back(static_cast<ReasonCode>(rc));
  }
  return s;
}

Unsubscribe decode_unsubscribe(const Frame& f, Version v, const DecodeOptions& o) {
  expect_qos1_flags(f, v);
  Unsubscribe u;
  Reader r(f.body);
  u.packet_id = packet_id(r);
  if (v == Version::V5) u.properties = decode_properties(r, PropertyContext::Unsubscribe);
  if (r.empty()) protocol_error("UNSUBSCRIBE without topic filters");
  while (!r.empty()) u.filters.push_back(filter_string(r, o));
  return u;
}

Unsuback decode_unsuback(const Frame& f, Version v) {
  expect_flags(f, 0);
  Unsuback u;
  Reader r(f.body);
  u.packet_id = packet_id(r);
  if (v == Version::V5) {
    u.properties = decode_properties(r, PropertyContext::Unsuback);
    if (r.empty()) protocol_error("UNSUBACK without reason codes");
    while (!r.empty()) {
      const auto rc = r.u8();
      switch (rc) {
        case 0x00: case 0x11: case 0x80: case 0x83: case 0x87: case 0x8F: case 0x91: break;
        default: malformed(fmt::format("invalid UNSUBACK reason code 0x{:02X}", rc));
      }
      u.reasons.push_back(static_cast<ReasonCode>(rc));
    }
  }
  expect_end(r, PacketType::Unsuback);
  return u;
}

Connack decode_connack(const Frame& f, Version v) {
  expect_flags(f, 0);
  Connack c;
  Reader r(f.body);
  auto flags = r.u8();
  if (flags & 0xFE) malformed("reserved CONNACK flags set");
  c.session_present = flags & 1;
  auto rc = r.u8();
  if (v == Version::V5) {
    switch (rc) {
      case 0x00: case 0x80: case 0x81: case 0x82: case 0x83: case 0x84: case 0x85: case 0x86: case 0x87: case 0x88:
      case 0x89: case 0x8A: case 0x8C: case 0x90: case 0x95: case 0x97: case 0x99: case 0x9A: case 0x9B: case 0x9C:
      case 0x9D: case 0x9F: break;
      default: malformed(fmt::format("invalid CONNACK reason code 0x{:02X}", rc));
    }
    c.reason = static_cast<ReasonCode>(rc);
    c.properties = decode_properties(r, PropertyContext::Connack);
  } else {
    switch (static_cast<ConnackV3>(rc)) {
      case ConnackV3::Accepted: c.reason = ReasonCode::Success; break;
      case ConnackV3::UnacceptableProtocolVersion: c.reason = ReasonCode::UnsupportedProtocolVersion; break;
      case ConnackV3::IdentifierRejected: c.reason = ReasonCode::ClientIdentifierNotValid; break;
      case ConnackV3::ServerUnavailable: c.reason = ReasonCode::ServerUnavailable; break;
      case ConnackV3::BadUserNameOrPassword: c.reason = ReasonCode::BadUserNameOrPassword; break;
      case ConnackV3::NotAuthorized: c.reason = ReasonCode::NotAuthorized; break;
      default: malformed("unknown CONNACK return code");
    }
  }
  expect_end(r, PacketType::Connack);
  return c;
}

// DISCONNECT and AUTH: an optional reason code then optional properties.
template <class T>
T decode_reason_packet(const Frame& f, Version v, PropertyContext ctx) {
  expect_flags(f, 0);
  T t;
  Reader r(f.body);
  if (v != Version::V5) {
    expect_end(r, f.type());
    return t;
  }
  if (!r.empty()) t.reason = static_cast<ReasonCode>(r.u8());
  if (!r.empty()) t.properties = decode_properties(r, ctx);
  expect_end(r, f.type());
  return t;
}

bool valid_disconnect_reason(ReasonCode rc) {
  auto v = static_cast<unsigned>(rc);
  if (v == 0x00 || v == 0x04) return true;
  if (v < 0x80 || v > 0xA2) return false;
  switch (rc) {
    case ReasonCode::UnsupportedProtocolVersion:
    case ReasonCode::ClientIdentifierNotValid:
    case ReasonCode::BadUserNameOrPassword:
    case ReasonCode::ServerUnavailable:
    case ReasonCode::Banned:
    case ReasonCode::BadAuthenticationMethod:
    case ReasonCode::PacketIdentifierInUse:
    case ReasonCode::PacketIdentifierNotFound: return false;
    default: return true;
  }
}

}  // namespace

Connect decode_connect(const Frame& f, const DecodeOptions& o) {
  if (f.type() != PacketType::Connect) protocol_error("first packet is not CONNECT");
  Reader r(f.body);
  Connect c;
  const std::string name = r.utf8();
  const std::uint8_t level = r.u8();
  // MQTT 3.1 has DUP, QoS and RETAIN bits in every fixed header and leaves
  // them "not used" in CONNECT, and does not reserve connect flag bit 0 as
  // 3.1.1 does: 3.1 clients may send either unzeroed (Mosquitto accepts
  // them). 3.1.1 and 5.0 reserve both [MQTT-2.2.2-1] [MQTT-3.1.2-3].
  const bool v31 = name == "MQIsdp" && level == 3;
  if (!v31) expect_flags(f, 0);
  if (name == "MQTT" && (level == 4 || level == 5)) {
    c.version = static_cast<Version>(level);
  } else if (name == "MQIsdp" && level == 3) {
    c.version = Version::V31;
  } else if (name == "MQTT" || name == "MQIsdp") {
    throw ProtocolError(ReasonCode::UnsupportedProtocolVersion,
                        fmt::format("unsupported protocol level {} for '{}'", level, name));
  } else {
    protocol_error(fmt::format("unknown protocol name '{}'", name));
  }
  const std::uint8_t flags = r.u8();
  if ((flags & 0x01) && !v31) malformed("reserved CONNECT flag set");
  c.clean_start = flags & 0x02;
  const bool will = flags & 0x04;
  const std::uint8_t will_qos = (flags >> 3) & 0x03;
  const bool will_retain = flags & 0x20;
  const bool has_password = flags & 0x40;
  const bool has_username = flags & 0x80;
  if (!will && (will_qos != 0 || will_retain)) malformed("will QoS or retain set without will flag");
  if (will_qos == 3) malformed("will QoS 3");
  if (has_password && !has_username && c.version != Version::V5) malformed("password flag without user name flag");
  c.keep_alive = r.u16();
  if (c.version == Version::V5) {
    c.properties = decode_properties(r, PropertyContext::Connect);
    if (c.properties.authentication_data && !c.properties.authentication_method)
      protocol_error("authentication data without authentication method");
  }
  c.client_id = name_string(r, o, "client identifier");
  if (will) {
    Will w;
    w.qos = will_qos;
    w.retain = will_retain;
    if (c.version == Version::V5) w.properties = decode_properties(r, PropertyContext::Will);
    w.topic = name_string(r, o, "will topic");
    w.payload = r.binary();
    if (w.properties.payload_format_indicator == 1 && !valid_utf8(w.payload))
      throw ProtocolError(ReasonCode::PayloadFormatInvalid,
                          "will payload is not UTF-8 although format indicator says so");
    c.will = std::move(w);
  }
  if (has_username) c.username = name_string(r, o, "user name");
  if (has_password) c.password = r.binary();
  expect_end(r, PacketType::Connect);
  return c;
}

Packet decode(const Frame& f, Version v, const DecodeOptions& o) {
  check_packet_type(f, v, o);
  switch (f.type()) {
    case PacketType::Connect: return decode_connect(f, o);
    case PacketType::Connack: return decode_connack(f, v);
    case PacketType::Publish: return decode_publish(f, v, o);
    case PacketType::Puback:
    case PacketType::Pubrec:
    case PacketType::Pubrel:
    case PacketType::Pubcomp: return decode_puback(f, v);
    case PacketType::Subscribe: return decode_subscribe(f, v, o);
    case PacketType::Suback: return decode_suback(f, v);
    case PacketType::Unsubscribe: return decode_unsubscribe(f, v, o);
    case PacketType::Unsuback: return decode_unsuback(f, v);
    case PacketType::Pingreq:
    case PacketType::Pingresp:
      expect_flags(f, 0);
      if (!f.body.empty()) malformed(fmt::format("{} with a body", to_string(f.type())));
      if (f.type() == PacketType::Pingreq) return Pingreq{};
      return Pingresp{};
    case PacketType::Disconnect: {
      auto d = decode_reason_packet<Disconnect>(f, v, PropertyContext::Disconnect);
      if (!valid_disconnect_reason(d.reason))
        protocol_error(fmt::format("invalid DISCONNECT reason code 0x{:02X}", static_cast<unsigned>(d.reason)));
      return d;
    }
    case PacketType::Auth: {
      auto a = decode_reason_packet<Auth>(f, v, PropertyContext::Auth);
      if (a.reason != ReasonCode::Success && a.reason != ReasonCode::ContinueAuthentication &&
          a.reason != ReasonCode::ReAuthenticate)
        protocol_error("invalid AUTH reason code");
      return a;
    }
  }
  protocol_error("reserved packet type 0");  // not reached: check_packet_type refused it
}

// --------------------------------------------------------------- encoding --

namespace {

void header(std::string& out, std::uint8_t first, std::size_t remaining) {
  Writer w(out);
  w.u8(first);
  w.varint(static_cast<std::uint32_t>(remaining));
}

std::size_t props_size(const Properties& p) {
  auto n = properties_length(p);
  return varint_size(static_cast<std::uint32_t>(n)) + n;
}

std::uint8_t v3_suback_code(ReasonCode rc) {
  auto v = static_cast<std::uint8_t>(rc);
  return v <= 2 ? v : 0x80;
}

struct BodyEncoder {
  Version v;
  bool v5() const { return v == Version::V5; }

  std::uint8_t first_byte(const Packet& p) const {
    auto t = static_cast<std::uint8_t>(packet_type(p)) << 4;
    switch (packet_type(p)) {
      case PacketType::Pubrel:
      case PacketType::Subscribe:
      case PacketType::Unsubscribe: return static_cast<std::uint8_t>(t | 0x02);
      case PacketType::Publish: {
        const auto& x = std::get<Publish>(p);
        return static_cast<std::uint8_t>(t | (x.dup ? 0x08 : 0) | (x.qos << 1) | (x.retain ? 1 : 0));
      }
      default: return static_cast<std::uint8_t>(t);
    }
  }

  void body(Writer& w, const Connect& c) const {
    if (c.version == Version::V31) {
      w.string("MQIsdp");
    } else {
      w.string("MQTT");
    }
    w.u8(static_cast<std::uint8_t>(c.version));
    std::uint8_t flags = 0;
    if (c.clean_start) flags |= 0x02;
    if (c.will) flags |= static_cast<std::uint8_t>(0x04 | (c.will->qos << 3) | (c.will->retain ? 0x20 : 0));
    if (c.password) flags |= 0x40;
    if (c.username) flags |= 0x80;
    w.u8(flags);
    w.u16(c.keep_alive);
    if (c.version == Version::V5) encode_properties(w, c.properties);
    w.string(c.client_id);
    if (c.will) {
      if (c.version == Version::V5) encode_properties(w, c.will->properties);
      w.string(c.will->topic);
      w.string(c.will->payload);
    }
    if (c.username) w.string(*c.username);
    if (c.password) w.string(*c.password);
  }
  void body(Writer& w, const Connack& c) const {
    // MQTT 3.1 has no Session Present flag: the byte is reserved there.
    w.u8(c.session_present && v != Version::V31 ? 1 : 0);
    if (v5()) {
      w.u8(static_cast<std::uint8_t>(c.reason));
      encode_properties(w, c.properties);
    } else {
      w.u8(static_cast<std::uint8_t>(to_v3_connack(c.reason)));
    }
  }
  void body(Writer& w, const Publish& p) const {
    w.string(p.topic);
    if (p.qos > 0) w.u16(p.packet_id);
    if (v5()) encode_properties(w, p.properties);
    w.raw(p.payload);
  }
  void body(Writer& w, const PubAck& a) const {
    w.u16(a.packet_id);
    if (!v5()) return;
    const bool props = a.properties != Properties{};
    if (a.reason == ReasonCode::Success && !props) return;
    w.u8(static_cast<std::uint8_t>(a.reason));
    if (props) encode_properties(w, a.properties);
  }
  void body(Writer& w, const Subscribe& s) const {
    w.u16(s.packet_id);
    if (v5()) encode_properties(w, s.properties);
    for (const auto& sub : s.subscriptions) {
      w.string(sub.filter);
      std::uint8_t o = sub.options.qos;
      if (v5()) {
        if (sub.options.no_local) o |= 0x04;
        if (sub.options.retain_as_published) o |= 0x08;
        o |= static_cast<std::uint8_t>(sub.options.retain_handling << 4);
      }
      w.u8(o);
    }
  }
  void body(Writer& w, const Suback& s) const {
    w.u16(s.packet_id);
    if (v5()) encode_properties(w, s.properties);
    for (auto rc : s.reasons) w.u8(v5() ? static_cast<std::uint8_t>(rc) : v3_suback_code(rc));
  }
  void body(Writer& w, const Unsubscribe& u) const {
    w.u16(u.packet_id);
    if (v5()) encode_properties(w, u.properties);
    for (const auto& f : u.filters) w.string(f);
  }
  void body(Writer& w, const Unsuback& u) const {
    w.u16(u.packet_id);
    if (!v5()) return;
    encode_properties(w, u.properties);
    for (auto rc : u.reasons) w.u8(static_cast<std::uint8_t>(rc));
  }
  void body(Writer&, const Pingreq&) const {}
  void body(Writer&, const Pingresp&) const {}
  template <class T>
  void reason_body(Writer& w, const T& d) const {
    if (!v5()) return;
    const bool props = d.properties != Properties{};
    if (d.reason == ReasonCode::Success && !props) return;
    w.u8(static_cast<std::uint8_t>(d.reason));
    if (props) encode_properties(w, d.properties);
  }
  void body(Writer& w, const Disconnect& d) const { reason_body(w, d); }
  void body(Writer& w, const Auth& a) const { reason_body(w, a); }
};

}  // namespace

void encode(const Packet& p, Version v, std::string& out) {
  BodyEncoder enc{v};
  std::string body;
  Writer bw(body);
  std::visit([&](const auto& x) { enc.body(bw, x); }, p);
  header(out, enc.first_byte(p), body.size());
  out.append(body);
}

std::string encode(const Packet& p, Version v) {
  std::string out;
  encode(p, v, out);
  return out;
}

std::size_t encoded_size(const Packet& p, Version v) {
  if (const auto* pub = std::get_if<Publish>(&p)) {
    std::size_t n = 2 + pub->topic.size() + (pub->qos ? 2 : 0) + pub->payload.size();
    if (v == Version::V5) n += props_size(pub->properties);
    return 1 + varint_size(static_cast<std::uint32_t>(n)) + n;
  }
  return encode(p, v).size();
}

namespace {

std::size_t head_properties_length(const PublishHead& h) {
  std::size_t n = h.properties.size();
  if (h.message_expiry) n += 5;
  if (h.topic_alias) n += 3;
  if (h.subscription_ids)
    for (auto id : *h.subscription_ids) n += 1 + varint_size(id);
  return n;
}

std::size_t head_remaining(const PublishHead& h, Version v, std::size_t payload_size, std::size_t props) {
  std::size_t n = 2 + h.topic.size() + (h.qos ? 2 : 0) + payload_size;
  if (v == Version::V5) n += varint_size(static_cast<std::uint32_t>(props)) + props;
  return n;
}

}  // namespace

std::size_t publish_size(const PublishHead& h, Version v, std::size_t payload_size) {
  const std::size_t n = head_remaining(h, v, payload_size, v == Version::V5 ? head_properties_length(h) : 0);
  return 1 + varint_size(static_cast<std::uint32_t>(n)) + n;
}

std::size_t encode_publish_head(const PublishHead& h, Version v, std::size_t payload_size, std::string& out) {
  const std::size_t props = v == Version::V5 ? head_properties_length(h) : 0;
  const std::size_t n = head_remaining(h, v, payload_size, props);
  const std::size_t start = out.size();
  out.reserve(start + 5 + n - payload_size);
  // Fixed header and topic length in one append, then the topic, then the
  // packet id and the property length in one more.
  char head[8];
  std::size_t k = 0;
  head[k++] = static_cast<char>((3 << 4) | (h.dup ? 0x08 : 0) | (h.qos << 1) | (h.retain ? 1 : 0));
  for (auto rest = static_cast<std::uint32_t>(n);;) {
    auto b = static_cast<std::uint8_t>(rest & 0x7F);
    rest >>= 7;
    head[k++] = static_cast<char>(rest ? b | 0x80 : b);
    if (!rest) break;
  }
  head[k++] = static_cast<char>(h.topic.size() >> 8);
  head[k++] = static_cast<char>(h.topic.size() & 0xFF);
  out.append(head, k);
  out.append(h.topic);
  k = 0;
  if (h.qos > 0) {
    head[k++] = static_cast<char>(h.packet_id >> 8);
    head[k++] = static_cast<char>(h.packet_id & 0xFF);
  }
  if (v == Version::V5 && props == 0) head[k++] = 0;
  out.append(head, k);
  Writer w(out);
  if (v == Version::V5 && props > 0) {
    w.varint(static_cast<std::uint32_t>(props));
    if (h.message_expiry) {
      w.u8(static_cast<std::uint8_t>(PropertyId::MessageExpiryInterval));
      w.u32(*h.message_expiry);
    }
    if (h.topic_alias) {
      w.u8(static_cast<std::uint8_t>(PropertyId::TopicAlias));
      w.u16(*h.topic_alias);
    }
    if (h.subscription_ids) {
      for (auto id : *h.subscription_ids) {
        w.u8(static_cast<std::uint8_t>(PropertyId::SubscriptionIdentifier));
        w.varint(id);
      }
    }
    w.raw(h.properties);
  }
  return out.size() - start + payload_size;
}

std::size_t encode_publish(const Publish& p, Version v, std::string& out) {
  std::size_t n = 2 + p.topic.size() + (p.qos ? 2 : 0) + p.payload.size();
  if (v == Version::V5) n += props_size(p.properties);
  out.reserve(out.size() + 5 + n);
  header(out, BodyEncoder{v}.first_byte(p), n);
  Writer w(out);
  w.string(p.topic);
  std::size_t id_offset = 0;
  if (p.qos > 0) {
    id_offset = out.size();
    w.u16(p.packet_id);
  }
  if (v == Version::V5) encode_properties(w, p.properties);
  w.raw(p.payload);
  return id_offset;
}

AckView decode_ack(const Frame& f, Version v) {
  check_packet_type(f, v, DecodeOptions{.sender = Sender::Client});
  return decode_ack_into(f, v, nullptr);
}

}  // namespace petrel::mqtt
