// Codec unit tests: every packet type of MQTT 3.1.1 and 5.0 against exact
// bytes (encode, and decode back), and malformed input rejected with the
// reason code the specification names.
#include <gtest/gtest.h>

#include <string>

#include "mqtt/codec.hpp"
#include "mqtt/utf8.hpp"

namespace petrel::mqtt {
namespace {

using namespace std::string_literals;

// Decodes exactly one frame from `bytes` (the whole input must be one packet).
Packet decode_one(const std::string& bytes, Version v) {
  FrameReader r(268'435'460);
  r.feed(bytes);
  auto f = r.next();
  EXPECT_TRUE(f.has_value());
  EXPECT_EQ(r.buffered(), 0u);
  if (!f) return Pingreq{};
  if (f->type() == PacketType::Connect) return decode_connect(*f);
  return decode(*f, v);
}

ReasonCode decode_error(const std::string& bytes, Version v, std::uint32_t max = 268'435'460,
                        const DecodeOptions& o = {}) {
  try {
    FrameReader r(max);
    r.feed(bytes);
    auto f = r.next();
    if (!f) return ReasonCode::Success;
    if (f->type() == PacketType::Connect && o.sender != Sender::Client) {
      decode_connect(*f, o);
    } else {
      decode(*f, v, o);
    }
  } catch (const ProtocolError& e) {
    return e.code();
  }
  return ReasonCode::Success;
}

// Both directions: `p` encodes to `bytes`, and `bytes` decode to `p`.
void round_trip(const Packet& p, Version v, const std::string& bytes) {
  EXPECT_EQ(encode(p, v), bytes);
  EXPECT_EQ(decode_one(bytes, v), p);
  EXPECT_EQ(encoded_size(p, v), bytes.size());
}

// ------------------------------------------------------------ MQTT 3.1.1 --

TEST(Codec311, Connect) {
  Connect c;
  c.version = Version::V311;
  c.client_id = "c1";
  c.keep_alive = 60;
  c.clean_start = true;
  round_trip(c, Version::V311,
             "\x10\x0E\x00\x04MQTT\x04\x02\x00\x3C\x00\x02"
             "c1"s);
}

TEST(Codec311, ConnectWithWillUserPassword) {
  Connect c;
  c.version = Version::V311;
  c.client_id = "c";
  c.keep_alive = 10;
  c.clean_start = false;
  c.will = Will{"w", "bye", 1, true, {}};
  c.username = "u";
  c.password = "p";
  // flags: user 0x80 | password 0x40 | will retain 0x20 | will QoS 1 0x08 | will 0x04 = 0xEC
  round_trip(c, Version::V311,
             "\x10\x1B\x00\x04MQTT\x04\xEC\x00\x0A\x00\x01"
             "c"
             "\x00\x01w\x00\x03"
             "bye"
             "\x00\x01u\x00\x01p"s);
}

TEST(Codec31, ConnectMQIsdp) {
  Connect c;
  c.version = Version::V31;
  c.client_id = "x";
  c.keep_alive = 5;
  round_trip(c, Version::V31, "\x10\x0F\x00\x06MQIsdp\x03\x02\x00\x05\x00\x01x"s);
}

TEST(Codec311, Connack) {
  round_trip(Connack{true, ReasonCode::Success, {}}, Version::V311, "\x20\x02\x01\x00"s);
  EXPECT_EQ(encode(Connack{false, ReasonCode::ClientIdentifierNotValid, {}}, Version::V311), "\x20\x02\x00\x02"s);
  EXPECT_EQ(encode(Connack{false, ReasonCode::UnsupportedProtocolVersion, {}}, Version::V311), "\x20\x02\x00\x01"s);
}

TEST(Codec311, PublishQos0) {
  Publish p;
  p.topic = "a/b";
  p.payload = "hi";
  round_trip(p, Version::V311,
             "\x30\x07\x00\x03"
             "a/b"
             "hi"s);
}

TEST(Codec311, PublishQos1RetainDup) {
  Publish p;
  p.topic = "t";
  p.payload = "x";
  p.qos = 1;
  p.retain = true;
  p.dup = true;
  p.packet_id = 0x1234;
  round_trip(p, Version::V311, "\x3B\x06\x00\x01t\x12\x34x"s);
}

TEST(Codec311, PublishQos2PacketIdOffset) {
  Publish p;
  p.topic = "ab";
  p.qos = 2;
  p.packet_id = 7;
  std::string out;
  auto offset = encode_publish(p, Version::V311, out);
  EXPECT_EQ(out,
            "\x34\x06\x00\x02"
            "ab\x00\x07"s);
  EXPECT_EQ(offset, 6u);
}

TEST(Codec311, Acks) {
  round_trip(PubAck{PacketType::Puback, 1, ReasonCode::Success, {}}, Version::V311, "\x40\x02\x00\x01"s);
  round_trip(PubAck{PacketType::Pubrec, 2, ReasonCode::Success, {}}, Version::V311, "\x50\x02\x00\x02"s);
  round_trip(PubAck{PacketType::Pubrel, 3, ReasonCode::Success, {}}, Version::V311, "\x62\x02\x00\x03"s);
  round_trip(PubAck{PacketType::Pubcomp, 4, ReasonCode::Success, {}}, Version::V311, "\x70\x02\x00\x04"s);
}

TEST(Codec311, Subscribe) {
  Subscribe s;
  s.packet_id = 10;
  s.subscriptions = {{"a/+", {1, false, false, 0}}, {"#", {2, false, false, 0}}};
  round_trip(s, Version::V311,
             "\x82\x0C\x00\x0A\x00\x03"
             "a/+\x01\x00\x01#\x02"s);
}

TEST(Codec311, Suback) {
  Suback s;
  s.packet_id = 10;
  s.reasons = {ReasonCode::GrantedQoS1, ReasonCode::Success, static_cast<ReasonCode>(0x80)};
  round_trip(s, Version::V311, "\x90\x05\x00\x0A\x01\x00\x80"s);
  // v5-only failure codes become 0x80 in 3.1.1.
  s.reasons = {ReasonCode::TopicFilterInvalid};
  EXPECT_EQ(encode(s, Version::V311), "\x90\x03\x00\x0A\x80"s);
}

TEST(Codec311, UnsubscribeUnsuback) {
  Unsubscribe u;
  u.packet_id = 3;
  u.filters = {"a", "b/c"};
  round_trip(u, Version::V311,
             "\xA2\x0A\x00\x03\x00\x01"
             "a\x00\x03"
             "b/c"s);
  round_trip(Unsuback{3, {}, {}}, Version::V311, "\xB0\x02\x00\x03"s);
}

TEST(Codec311, PingAndDisconnect) {
  round_trip(Pingreq{}, Version::V311, "\xC0\x00"s);
  round_trip(Pingresp{}, Version::V311, "\xD0\x00"s);
  round_trip(Disconnect{}, Version::V311, "\xE0\x00"s);
}

// --------------------------------------------------------------- MQTT 5.0 --

TEST(Codec5, ConnectWithProperties) {
  Connect c;
  c.version = Version::V5;
  c.client_id = "c";
  c.keep_alive = 30;
  c.properties.session_expiry_interval = 120;
  c.properties.receive_maximum = 10;
  c.will = Will{"w", "x", 0, false, {}};
  c.will->properties.will_delay_interval = 5;
  round_trip(c, Version::V5,
             "\x10\x22\x00\x04MQTT\x05\x06\x00\x1E"
             "\x08\x11\x00\x00\x00\x78\x21\x00\x0A"  // properties: session expiry 120, receive maximum 10
             "\x00\x01"
             "c"
             "\x05\x18\x00\x00\x00\x05"  // will properties: will delay 5
             "\x00\x01w\x00\x01x"s);
}

TEST(Codec5, PasswordWithoutUserNameAllowed) {
  Connect c;
  c.version = Version::V5;
  c.client_id = "c";
  c.password = "pw";
  round_trip(c, Version::V5,
             "\x10\x12\x00\x04MQTT\x05\x42\x00\x00\x00\x00\x01"
             "c\x00\x02pw"s);
}

TEST(Codec5, ConnackWithProperties) {
  Connack c;
  c.session_present = false;
  c.reason = ReasonCode::Success;
  c.properties.assigned_client_identifier = "id";
  c.properties.server_keep_alive = 20;
  c.properties.topic_alias_maximum = 10;
  round_trip(c, Version::V5, "\x20\x0E\x00\x00\x0B\x12\x00\x02id\x13\x00\x14\x22\x00\x0A"s);
  round_trip(Connack{false, ReasonCode::BadAuthenticationMethod, {}}, Version::V5, "\x20\x03\x00\x8C\x00"s);
}

TEST(Codec5, PublishWithProperties) {
  Publish p;
  p.topic = "t";
  p.payload = "v";
  p.qos = 1;
  p.packet_id = 1;
  p.properties.payload_format_indicator = 1;
  p.properties.content_type = "c";
  p.properties.subscription_identifiers = {1, 200};
  p.properties.user_properties = {{"k", "v"}, {"k", "w"}};
  round_trip(p, Version::V5,
             "\x32\x20\x00\x01t\x00\x01"
             "\x19\x01\x01\x03\x00\x01"
             "c"
             "\x0B\x01\x0B\xC8\x01"
             "\x26\x00\x01k\x00\x01v\x26\x00\x01k\x00\x01w"
             "v"s);
}

TEST(Codec5, AckShortFormsAndReasonCodes) {
  // Reason code 0 and no properties: the short 2-byte form.
  round_trip(PubAck{PacketType::Puback, 5, ReasonCode::Success, {}}, Version::V5, "\x40\x02\x00\x05"s);
  round_trip(PubAck{PacketType::Puback, 5, ReasonCode::NoMatchingSubscribers, {}}, Version::V5,
             "\x40\x03\x00\x05\x10"s);
  round_trip(PubAck{PacketType::Pubrel, 5, ReasonCode::PacketIdentifierNotFound, {}}, Version::V5,
             "\x62\x03\x00\x05\x92"s);
  PubAck with_reason{PacketType::Pubrec, 6, ReasonCode::UnspecifiedError, {}};
  with_reason.properties.reason_string = "no";
  round_trip(with_reason, Version::V5, "\x50\x09\x00\x06\x80\x05\x1F\x00\x02no"s);
  // A 4-byte PUBACK (reason + empty property length) decodes to the same packet.
  EXPECT_EQ(decode_one("\x40\x04\x00\x05\x10\x00"s, Version::V5),
            Packet(PubAck{PacketType::Puback, 5, ReasonCode::NoMatchingSubscribers, {}}));
}

TEST(Codec5, SubscribeOptionsAndIdentifier) {
  Subscribe s;
  s.packet_id = 2;
  s.properties.subscription_identifiers = {7};
  s.subscriptions = {{"a/#", {2, true, true, 2}}};
  // options: QoS 2 | no local 0x04 | retain as published 0x08 | retain handling 2 << 4 = 0x2E
  round_trip(s, Version::V5,
             "\x82\x0B\x00\x02\x02\x0B\x07\x00\x03"
             "a/#\x2E"s);
}

TEST(Codec5, SubackUnsubackReasonCodes) {
  round_trip(Suback{2, {ReasonCode::GrantedQoS2, ReasonCode::TopicFilterInvalid}, {}}, Version::V5,
             "\x90\x05\x00\x02\x00\x02\x8F"s);
  round_trip(Unsuback{3, {ReasonCode::Success, ReasonCode::NoSubscriptionExisted}, {}}, Version::V5,
             "\xB0\x05\x00\x03\x00\x00\x11"s);
}

TEST(Codec5, DisconnectAndAuth) {
  round_trip(Disconnect{}, Version::V5, "\xE0\x00"s);
  round_trip(Disconnect{ReasonCode::SessionTakenOver, {}}, Version::V5, "\xE0\x01\x8E"s);
  Disconnect d{ReasonCode::DisconnectWithWill, {}};
  d.properties.session_expiry_interval = 0;
  round_trip(d, Version::V5, "\xE0\x07\x04\x05\x11\x00\x00\x00\x00"s);
  Auth a{ReasonCode::ContinueAuthentication, {}};
  a.properties.authentication_method = "m";
  round_trip(a, Version::V5, "\xF0\x06\x18\x04\x15\x00\x01m"s);
}

// -------------------------------------------------------------- malformed --

TEST(CodecMalformed, RemainingLengthOfFiveBytes) {
  EXPECT_EQ(decode_error("\x30\xFF\xFF\xFF\xFF\x01"s, Version::V5), ReasonCode::MalformedPacket);
}

TEST(CodecMalformed, DeclaredLengthIsNotAllocatedBeforeTheBytesArrive) {
  FrameReader r(268'435'460);
  r.feed("\x30\xFF\xFF\xFF\x7F"s);  // declares 268,435,455 bytes
  EXPECT_FALSE(r.next().has_value());
  EXPECT_EQ(r.buffered(), 5u);
}

TEST(CodecMalformed, PacketOverMaximumSize) {
  EXPECT_EQ(decode_error("\x30\x80\x08"s, Version::V5, 1024), ReasonCode::PacketTooLarge);
}

TEST(CodecMalformed, SplitAcrossFeeds) {
  const std::string bytes =
      "\x30\x07\x00\x03"
      "a/b"
      "hi"s;
  FrameReader r(1024);
  for (std::size_t i = 0; i + 1 < bytes.size(); ++i) {
    r.feed(bytes.substr(i, 1));
    EXPECT_FALSE(r.next().has_value()) << "after byte " << i;
  }
  r.feed(bytes.substr(bytes.size() - 1));
  auto f = r.next();
  ASSERT_TRUE(f.has_value());
  EXPECT_EQ(std::get<Publish>(decode(*f, Version::V311)).payload, "hi");
}

TEST(CodecMalformed, Qos3) {
  EXPECT_EQ(decode_error("\x36\x05\x00\x01t\x00\x01"s, Version::V311), ReasonCode::MalformedPacket);
}

TEST(CodecMalformed, DupWithQos0) {
  EXPECT_EQ(decode_error("\x38\x03\x00\x01t"s, Version::V311), ReasonCode::MalformedPacket);
}

TEST(CodecMalformed, ReservedFlags) {
  EXPECT_EQ(decode_error("\x82\x06\x00\x01\x00\x01"
                         "a\x00"s,
                         Version::V311),
            ReasonCode::Success);
  EXPECT_EQ(decode_error("\x80\x06\x00\x01\x00\x01"
                         "a\x00"s,
                         Version::V311),
            ReasonCode::MalformedPacket);                                                    // SUBSCRIBE
  EXPECT_EQ(decode_error("\x60\x02\x00\x01"s, Version::V311), ReasonCode::MalformedPacket);  // PUBREL
  EXPECT_EQ(decode_error("\x41\x02\x00\x01"s, Version::V311), ReasonCode::MalformedPacket);  // PUBACK
  EXPECT_EQ(decode_error("\xC1\x00"s, Version::V311), ReasonCode::MalformedPacket);          // PINGREQ
}

TEST(CodecMalformed, WildcardInPublishTopic) {
  EXPECT_EQ(decode_error("\x30\x03\x00\x01+"s, Version::V311), ReasonCode::TopicNameInvalid);
  EXPECT_EQ(decode_error("\x30\x05\x00\x03"
                         "a/#"s,
                         Version::V5),
            ReasonCode::TopicNameInvalid);
}

TEST(CodecMalformed, EmptyTopicWithoutAlias) {
  EXPECT_EQ(decode_error("\x30\x02\x00\x00"s, Version::V311), ReasonCode::TopicNameInvalid);
  EXPECT_EQ(decode_error("\x30\x03\x00\x00\x00"s, Version::V5), ReasonCode::ProtocolError);
}

TEST(CodecMalformed, PacketIdentifierZero) {
  EXPECT_EQ(decode_error("\x32\x05\x00\x01t\x00\x00"s, Version::V311), ReasonCode::ProtocolError);
  EXPECT_EQ(decode_error("\x40\x02\x00\x00"s, Version::V311), ReasonCode::ProtocolError);
  EXPECT_EQ(decode_error("\x82\x06\x00\x00\x00\x01"
                         "a\x00"s,
                         Version::V311),
            ReasonCode::ProtocolError);
}

TEST(CodecMalformed, InvalidUtf8) {
  EXPECT_EQ(decode_error("\x30\x03\x00\x01\xFF"s, Version::V311), ReasonCode::MalformedPacket);
  EXPECT_EQ(decode_error("\x30\x03\x00\x01\x00"s, Version::V311), ReasonCode::MalformedPacket);          // U+0000
  EXPECT_EQ(decode_error("\x30\x05\x00\x03\xED\xA0\x80"s, Version::V311), ReasonCode::MalformedPacket);  // surrogate
  EXPECT_EQ(decode_error("\x30\x04\x00\x02\xC0\x80"s, Version::V311), ReasonCode::MalformedPacket);      // overlong NUL
  EXPECT_EQ(decode_error("\x30\x05\x00\x03\xE2\x82\xAC"s, Version::V311), ReasonCode::Success);          // U+20AC
}

TEST(CodecMalformed, StringLongerThanPacket) {
  EXPECT_EQ(decode_error("\x30\x03\x00\x05t"s, Version::V311), ReasonCode::MalformedPacket);
}

TEST(CodecMalformed, TrailingBytes) {
  EXPECT_EQ(decode_error("\xC0\x01\x00"s, Version::V311), ReasonCode::MalformedPacket);
  EXPECT_EQ(decode_error("\x40\x03\x00\x01\x00"s, Version::V311), ReasonCode::MalformedPacket);
}

TEST(CodecMalformed, ConnectFlags) {
  // Reserved bit 0 set.
  EXPECT_EQ(decode_error("\x10\x0D\x00\x04MQTT\x04\x03\x00\x3C\x00\x01x"s, Version::V311), ReasonCode::MalformedPacket);
  // Will QoS without will flag.
  EXPECT_EQ(decode_error("\x10\x0D\x00\x04MQTT\x04\x0A\x00\x3C\x00\x01x"s, Version::V311), ReasonCode::MalformedPacket);
  // Password without user name in 3.1.1.
  EXPECT_EQ(decode_error("\x10\x10\x00\x04MQTT\x04\x42\x00\x3C\x00\x01x\x00\x01p"s, Version::V311),
            ReasonCode::MalformedPacket);
}

TEST(CodecMalformed, UnsupportedProtocolLevel) {
  EXPECT_EQ(decode_error("\x10\x0D\x00\x04MQTT\x06\x02\x00\x3C\x00\x01x"s, Version::V311),
            ReasonCode::UnsupportedProtocolVersion);
  EXPECT_EQ(decode_error("\x10\x0D\x00\x04MQTX\x04\x02\x00\x3C\x00\x01x"s, Version::V311), ReasonCode::ProtocolError);
}

TEST(CodecMalformed, SubscribeWithoutFiltersAndBadOptions) {
  EXPECT_EQ(decode_error("\x82\x02\x00\x01"s, Version::V311), ReasonCode::ProtocolError);
  EXPECT_EQ(decode_error("\x82\x06\x00\x01\x00\x01"
                         "a\x04"s,
                         Version::V311),
            ReasonCode::MalformedPacket);  // reserved bits
  EXPECT_EQ(decode_error("\x82\x06\x00\x01\x00\x01"
                         "a\x03"s,
                         Version::V311),
            ReasonCode::MalformedPacket);  // QoS 3
  EXPECT_EQ(decode_error("\x82\x07\x00\x01\x00\x00\x01"
                         "a\x30"s,
                         Version::V5),
            ReasonCode::ProtocolError);  // retain handling 3
  EXPECT_EQ(decode_error("\x82\x07\x00\x01\x00\x00\x01"
                         "a\x40"s,
                         Version::V5),
            ReasonCode::MalformedPacket);  // reserved
}

TEST(CodecMalformed, PropertiesV5) {
  // Session Expiry Interval is not allowed in PUBLISH: malformed (MQTT 5.0 2.2.2.2).
  EXPECT_EQ(decode_error("\x30\x09\x00\x01t\x05\x11\x00\x00\x00\x01"s, Version::V5), ReasonCode::MalformedPacket);
  // Content Type twice.
  EXPECT_EQ(decode_error("\x30\x0B\x00\x01t\x07\x03\x00\x01"
                         "a\x03\x00\x00"s,
                         Version::V5),
            ReasonCode::ProtocolError);
  // Unknown property 0x7F.
  EXPECT_EQ(decode_error("\x30\x05\x00\x01t\x01\x7F"s, Version::V5), ReasonCode::MalformedPacket);
  // Property length past the end.
  EXPECT_EQ(decode_error("\x30\x04\x00\x01t\x09"s, Version::V5), ReasonCode::MalformedPacket);
  // Topic alias 0.
  EXPECT_EQ(decode_error("\x30\x07\x00\x01t\x03\x23\x00\x00"s, Version::V5), ReasonCode::TopicAliasInvalid);
  // Payload format indicator 1 with a non-UTF-8 payload.
  EXPECT_EQ(decode_error("\x30\x07\x00\x01t\x02\x01\x01\xFF"s, Version::V5), ReasonCode::PayloadFormatInvalid);
  // Receive Maximum 0 in CONNECT.
  EXPECT_EQ(decode_error("\x10\x10\x00\x04MQTT\x05\x02\x00\x3C\x03\x21\x00\x00\x00\x00"s, Version::V5),
            ReasonCode::ProtocolError);
}

TEST(CodecMalformed, AuthIsReservedBeforeV5) {
  // Type 15 is reserved in 3.1.1 (2.2.1): a Protocol Error from the first byte, whatever the body.
  EXPECT_EQ(decode_error("\xF0\x00"s, Version::V311), ReasonCode::ProtocolError);
  EXPECT_EQ(decode_error("\xF3\x01\xFF"s, Version::V311), ReasonCode::ProtocolError);
  EXPECT_EQ(decode_error("\xF0\x00"s, Version::V31), ReasonCode::ProtocolError);
  EXPECT_EQ(decode_error("\xF0\x02\x05\x00"s, Version::V5), ReasonCode::ProtocolError);  // bad reason
}

TEST(CodecMalformed, ReservedPacketTypeZero) {
  EXPECT_EQ(decode_error("\x00\x00"s, Version::V311), ReasonCode::ProtocolError);
  // Decided from the first byte: a body that would not parse does not turn it into 0x81.
  EXPECT_EQ(decode_error("\x0F\x03\xFF\xFF\xFF"s, Version::V5), ReasonCode::ProtocolError);
}

// ------------------------------------------------- packets built from parts --

// A whole packet: first byte, Remaining Length, body.
std::string frame(std::uint8_t first, const std::string& body) {
  std::string out(1, static_cast<char>(first));
  std::size_t n = body.size();
  do {
    auto b = static_cast<char>(n & 0x7F);
    n >>= 7;
    if (n) b = static_cast<char>(b | 0x80);
    out.push_back(b);
  } while (n);
  return out + body;
}

// A length-prefixed string.
std::string str(const std::string& s) {
  return std::string{static_cast<char>(s.size() >> 8), static_cast<char>(s.size() & 0xFF)} + s;
}

// A CONNECT: protocol name and level of `v`, `flags`, keep alive 60, then
// (v5) the property block `props` and the payload as given.
std::string connect(Version v, std::uint8_t flags, const std::string& payload, const std::string& props = "\x00"s,
                    std::uint8_t first = 0x10) {
  std::string body = v == Version::V31 ? str("MQIsdp") : str("MQTT");
  body += static_cast<char>(v);
  body += static_cast<char>(flags);
  body += "\x00\x3C"s;
  if (v == Version::V5) body += props;
  return frame(first, body + payload);
}

// -------------------------------------------------------------- properties --

TEST(CodecProperties, NotAllowedInPacketIsMalformed) {
  // MQTT 5.0 2.2.2.2: "A Control Packet which contains an Identifier which is not valid for its packet type
  // ... is a Malformed Packet."
  // Topic Alias in UNSUBSCRIBE.
  EXPECT_EQ(decode_error(frame(0xA2, "\x00\x01\x03\x23\x00\x01"s + str("a")), Version::V5), ReasonCode::MalformedPacket);
  // Payload Format Indicator in PUBACK.
  EXPECT_EQ(decode_error(frame(0x40, "\x00\x01\x00\x02\x01\x01"s), Version::V5), ReasonCode::MalformedPacket);
  // Subscription Identifier in PUBREL.
  EXPECT_EQ(decode_error(frame(0x62, "\x00\x01\x00\x02\x0B\x01"s), Version::V5), ReasonCode::MalformedPacket);
  // Server Keep Alive in SUBSCRIBE.
  EXPECT_EQ(decode_error(frame(0x82, "\x00\x01\x03\x13\x00\x0A"s + str("a") + "\x00"s), Version::V5),
            ReasonCode::MalformedPacket);
  // Topic Alias in DISCONNECT.
  EXPECT_EQ(decode_error(frame(0xE0, "\x00\x03\x23\x00\x01"s), Version::V5), ReasonCode::MalformedPacket);
  // Topic Alias in CONNECT, Session Expiry Interval in the will properties.
  EXPECT_EQ(decode_error(connect(Version::V5, 0x02, str("c"), "\x03\x23\x00\x01"s), Version::V5),
            ReasonCode::MalformedPacket);
  EXPECT_EQ(decode_error(connect(Version::V5, 0x06, str("c") + "\x05\x11\x00\x00\x00\x05"s + str("w") + str("x")),
                         Version::V5),
            ReasonCode::MalformedPacket);
  // The same properties where they belong decode.
  EXPECT_EQ(decode_error(frame(0x30, str("t") + "\x03\x23\x00\x01"s), Version::V5), ReasonCode::Success);
  EXPECT_EQ(decode_error(frame(0xE0, "\x00\x05\x11\x00\x00\x00\x05"s), Version::V5), ReasonCode::Success);
}

TEST(CodecProperties, ValueNotOfItsDataTypeIsMalformed) {
  // MQTT 5.0 2.2.2.2: a value not of the specified data type is malformed. Values cut short by the end of the
  // property block: a Two Byte Integer of one byte, a Four Byte Integer of two, a string longer than what is
  // left, a User Property without its value.
  EXPECT_EQ(decode_error(frame(0x30, str("t") + "\x02\x23\x00"s), Version::V5), ReasonCode::MalformedPacket);
  EXPECT_EQ(decode_error(connect(Version::V5, 0x02, str("c"), "\x03\x11\x00\x00"s), Version::V5),
            ReasonCode::MalformedPacket);
  EXPECT_EQ(decode_error(frame(0x30, str("t") + "\x04\x03\x00\x05a"s), Version::V5), ReasonCode::MalformedPacket);
  EXPECT_EQ(decode_error(frame(0x30, str("t") + "\x04\x26\x00\x01k"s), Version::V5), ReasonCode::MalformedPacket);
  // A string property that is not UTF-8.
  EXPECT_EQ(decode_error(frame(0x30, str("t") + "\x04\x03\x00\x01\xFF"s), Version::V5), ReasonCode::MalformedPacket);
}

TEST(CodecProperties, RepeatedOrOutOfRangeValuesStayProtocolErrors) {
  // Well-formed properties the specification calls Protocol Errors: Request Problem Information 2
  // (3.1.2.11.7), Receive Maximum 0 (3.1.2.11.3), Topic Alias Maximum twice (3.1.2.11.5).
  EXPECT_EQ(decode_error(connect(Version::V5, 0x02, str("c"), "\x02\x17\x02"s), Version::V5),
            ReasonCode::ProtocolError);
  EXPECT_EQ(decode_error(connect(Version::V5, 0x02, str("c"), "\x03\x21\x00\x00"s), Version::V5),
            ReasonCode::ProtocolError);
  EXPECT_EQ(decode_error(connect(Version::V5, 0x02, str("c"), "\x06\x22\x00\x01\x22\x00\x02"s), Version::V5),
            ReasonCode::ProtocolError);
}

// ------------------------------------------------------ direction of flow --

TEST(CodecDirection, ServerPacketsFromAClientAreProtocolErrorsWhateverTheirBody) {
  const DecodeOptions client{.sender = Sender::Client};
  const std::uint32_t max = 268'435'460;
  for (auto v : {Version::V311, Version::V5}) {
    // Well-formed and malformed bodies alike: the type decides (MQTT 5.0 2.1.2, 3.1.1 2.2.1).
    for (const auto& bytes : {"\x20\x02\x00\x00"s, "\x20\x01\xFF"s, "\x90\x03\x00\x01\x00"s, "\x90\x03\x00\x01\x03"s,
                              "\xB0\x02\x00\x01"s, "\xB1\x00"s, "\xD0\x00"s, "\xD0\x01\x00"s})
      EXPECT_EQ(decode_error(bytes, v, max, client), ReasonCode::ProtocolError) << testing::PrintToString(bytes);
    // A CONNECT on an established connection is a second CONNECT [MQTT-3.1.0-2].
    EXPECT_EQ(decode_error(connect(v, 0x02, str("c")), v, max, client), ReasonCode::ProtocolError);
    EXPECT_EQ(decode_error("\x10\x01\x00"s, v, max, client), ReasonCode::ProtocolError);
    // What clients do send still decodes.
    EXPECT_EQ(decode_error("\xC0\x00"s, v, max, client), ReasonCode::Success);
    EXPECT_EQ(decode_error("\x40\x02\x00\x01"s, v, max, client), ReasonCode::Success);
  }
  // Without a sender, the body is what is checked.
  EXPECT_EQ(decode_error("\x20\x01\xFF"s, Version::V5), ReasonCode::MalformedPacket);
  EXPECT_EQ(decode_error("\xD0\x01\x00"s, Version::V5), ReasonCode::MalformedPacket);
  EXPECT_EQ(decode_error("\x20\x02\x00\x00"s, Version::V311), ReasonCode::Success);
}

TEST(CodecDirection, AuthWithoutEnhancedAuthenticationIsAProtocolError) {
  const std::uint32_t max = 268'435'460;
  const DecodeOptions client{.sender = Sender::Client};
  const DecodeOptions authenticating{.sender = Sender::Client, .enhanced_auth = true};
  // MQTT 5.0 4.12: AUTH belongs to enhanced authentication; without it, any AUTH (even one with bad flags) is a
  // Protocol Error.
  EXPECT_EQ(decode_error("\xF0\x02\x18\x00"s, Version::V5, max, client), ReasonCode::ProtocolError);
  EXPECT_EQ(decode_error("\xF1\x00"s, Version::V5, max, client), ReasonCode::ProtocolError);
  EXPECT_EQ(decode_error("\xF0\x02\x18\x00"s, Version::V5, max, authenticating), ReasonCode::Success);
  EXPECT_EQ(decode_error("\xF1\x00"s, Version::V5, max, authenticating), ReasonCode::MalformedPacket);
}

TEST(CodecDirection, ClientPacketsFromAServerAreProtocolErrors) {
  const std::uint32_t max = 268'435'460;
  const DecodeOptions server{.sender = Sender::Server};
  EXPECT_EQ(decode_error("\x82\x06\x00\x01\x00\x01"
                         "a\x00"s,
                         Version::V311, max, server),
            ReasonCode::ProtocolError);
  EXPECT_EQ(decode_error("\xA2\x05\x00\x01\x00\x01"
                         "a"s,
                         Version::V311, max, server),
            ReasonCode::ProtocolError);
  EXPECT_EQ(decode_error("\xC0\x00"s, Version::V311, max, server), ReasonCode::ProtocolError);
  EXPECT_EQ(decode_error("\x20\x02\x00\x00"s, Version::V311, max, server), ReasonCode::Success);
  EXPECT_EQ(decode_error("\xD0\x00"s, Version::V311, max, server), ReasonCode::Success);
}

// ------------------------------------------------------- control characters --

TEST(Utf8, ControlCharacters) {
  for (const auto& s : {"\x01"s, "a\x1F"s, "\x7F"s, "a\xC2\x80"s, "\xC2\x9F"
                                                                   "b"s})
    EXPECT_TRUE(has_control_characters(s)) << testing::PrintToString(s);
  // U+0020, U+007E, U+00A0 (C2 A0), U+0100 (C4 80), U+20AC (E2 82 AC): not controls.
  for (const auto& s : {""s, " ~"s, "\xC2\xA0"s, "\xC4\x80"s, "\xE2\x82\xAC"s, "a/b"s})
    EXPECT_FALSE(has_control_characters(s)) << testing::PrintToString(s);
}

const std::string kControls[] = {"\x01"s, "\x09"s, "\x1F"s, "\x7F"s, "\xC2\x80"s, "\xC2\x9F"s};

TEST(CodecControlCharacters, InTopicNameAreMalformedUnlessAllowed) {
  const DecodeOptions allow{.allow_control_characters = true};
  for (const auto& cc : kControls) {
    EXPECT_EQ(decode_error(frame(0x30, str("a/" + cc) + "x"), Version::V311), ReasonCode::MalformedPacket);
    EXPECT_EQ(decode_error(frame(0x30, str("a/" + cc) + "\x00x"s), Version::V5), ReasonCode::MalformedPacket);
    EXPECT_EQ(decode_error(frame(0x30, str("a/" + cc) + "x"), Version::V311, 268'435'460, allow),
              ReasonCode::Success);
  }
  // U+00A0 is printable.
  EXPECT_EQ(decode_error(frame(0x30, str("a/\xC2\xA0") + "x"), Version::V311), ReasonCode::Success);
}

TEST(CodecControlCharacters, InTopicFiltersAreMalformedUnlessAllowed) {
  const DecodeOptions allow{.allow_control_characters = true};
  const std::uint32_t max = 268'435'460;
  for (const auto& cc : kControls) {
    const std::string sub = frame(0x82, "\x00\x01"s + str("ok") + "\x00"s + str("a" + cc) + "\x00"s);
    const std::string unsub = frame(0xA2, "\x00\x01"s + str("a" + cc));
    EXPECT_EQ(decode_error(sub, Version::V311), ReasonCode::MalformedPacket);
    EXPECT_EQ(decode_error(unsub, Version::V311), ReasonCode::MalformedPacket);
    EXPECT_EQ(decode_error(sub, Version::V311, max, allow), ReasonCode::Success);
    EXPECT_EQ(decode_error(unsub, Version::V311, max, allow), ReasonCode::Success);
  }
}

TEST(CodecControlCharacters, InConnectNamesAreMalformedUnlessAllowed) {
  const DecodeOptions allow{.allow_control_characters = true};
  const std::uint32_t max = 268'435'460;
  const std::string cc = "\x01"s;
  for (auto v : {Version::V31, Version::V311, Version::V5}) {
    const std::string will_props = v == Version::V5 ? "\x00"s : ""s;
    const std::string client_id = connect(v, 0x02, str("c" + cc));
    const std::string user = connect(v, 0x82, str("c") + str("u" + cc));
    const std::string will = connect(v, 0x06, str("c") + will_props + str("w" + cc) + str("x"));
    for (const auto& bytes : {client_id, user, will}) {
      EXPECT_EQ(decode_error(bytes, v), ReasonCode::MalformedPacket) << testing::PrintToString(bytes);
      EXPECT_EQ(decode_error(bytes, v, max, allow), ReasonCode::Success) << testing::PrintToString(bytes);
    }
    // Password (binary data) and will payload are not strings: control characters are theirs to carry.
    EXPECT_EQ(decode_error(connect(v, 0xC2, str("c") + str("u") + str("\x01\x1F\x7F")), v), ReasonCode::Success);
    EXPECT_EQ(decode_error(connect(v, 0x06, str("c") + will_props + str("w") + str("\x01")), v), ReasonCode::Success);
  }
}

TEST(CodecControlCharacters, PayloadsAndOtherStringsAreUntouched) {
  // PUBLISH payload; User Property, Content Type and Response Topic strings.
  EXPECT_EQ(decode_error(frame(0x30, str("t") + "\x01\x1F\x7F"s), Version::V311), ReasonCode::Success);
  EXPECT_EQ(decode_error(frame(0x30, str("t") + "\x0C\x26"s + str("k\x01") + str("\x1F") + "\x03"s + str("\x7F")),
                         Version::V5),
            ReasonCode::Success);
}

// ------------------------------------------------------ zero-length filters --

TEST(CodecMalformed, ZeroLengthTopicFilter) {
  // [MQTT-4.7.3-1] Topic Filters must be at least one character long: an empty one makes the SUBSCRIBE or
  // UNSUBSCRIBE malformed, also after a valid filter.
  for (auto v : {Version::V31, Version::V311}) {
    EXPECT_EQ(decode_error(frame(0x82, "\x00\x01"s + str("") + "\x00"s), v), ReasonCode::MalformedPacket);
    EXPECT_EQ(decode_error(frame(0x82, "\x00\x01"s + str("a") + "\x00"s + str("") + "\x00"s), v),
              ReasonCode::MalformedPacket);
    EXPECT_EQ(decode_error(frame(0xA2, "\x00\x01"s + str("a") + str("")), v), ReasonCode::MalformedPacket);
  }
  EXPECT_EQ(decode_error(frame(0x82, "\x00\x01\x00"s + str("") + "\x00"s), Version::V5), ReasonCode::MalformedPacket);
  EXPECT_EQ(decode_error(frame(0xA2, "\x00\x01\x00"s + str("")), Version::V5), ReasonCode::MalformedPacket);
  // An invalid but non-empty filter is the broker's to refuse per filter (SUBACK 0x8F / 0x80).
  EXPECT_EQ(decode_error(frame(0x82, "\x00\x01"s + str("a/#/b") + "\x00"s), Version::V311), ReasonCode::Success);
  EXPECT_EQ(decode_error(frame(0x82, "\x00\x01"s + str("$share/g/") + "\x00"s), Version::V311), ReasonCode::Success);
}

// ------------------------------------------------------------ MQTT 3.1 --

TEST(Codec31, DupOnRetransmittedQos1Packets) {
  // MQTT 3.1 PUBREL, SUBSCRIBE and UNSUBSCRIBE are QoS 1 messages that set DUP when sent again.
  EXPECT_EQ(decode_one("\x6A\x02\x00\x07"s, Version::V31), Packet(PubAck{PacketType::Pubrel, 7, ReasonCode::Success, {}}));
  EXPECT_EQ(decode_error(frame(0x8A, "\x00\x01"s + str("a") + "\x01"s), Version::V31), ReasonCode::Success);
  EXPECT_EQ(decode_error(frame(0xAA, "\x00\x01"s + str("a")), Version::V31), ReasonCode::Success);
  // The QoS bits still say 1, and 3.1.1 and 5.0 reserve DUP there [MQTT-3.6.1-1] [MQTT-3.8.1-1] [MQTT-3.10.1-1].
  EXPECT_EQ(decode_error("\x60\x02\x00\x07"s, Version::V31), ReasonCode::MalformedPacket);
  EXPECT_EQ(decode_error("\x6B\x02\x00\x07"s, Version::V31), ReasonCode::MalformedPacket);
  for (auto v : {Version::V311, Version::V5}) {
    EXPECT_EQ(decode_error("\x6A\x02\x00\x07"s, v), ReasonCode::MalformedPacket);
    EXPECT_EQ(decode_error(frame(0x8A, "\x00\x01"s + (v == Version::V5 ? "\x00"s : ""s) + str("a") + "\x01"s), v),
              ReasonCode::MalformedPacket);
    EXPECT_EQ(decode_error(frame(0xAA, "\x00\x01"s + (v == Version::V5 ? "\x00"s : ""s) + str("a")), v),
              ReasonCode::MalformedPacket);
  }
}

TEST(Codec31, ConnectMayLeaveReservedBitsSet) {
  // MQTT 3.1: CONNECT's fixed-header DUP/QoS/RETAIN are "not used", connect flag bit 0 is not reserved.
  auto c = std::get<Connect>(decode_one(connect(Version::V31, 0x03, str("x"), "", 0x1F), Version::V31));
  EXPECT_EQ(c.version, Version::V31);
  EXPECT_TRUE(c.clean_start);
  EXPECT_EQ(c.client_id, "x");
  // 3.1.1 and 5.0 reserve both [MQTT-2.2.2-1] [MQTT-3.1.2-3].
  for (auto v : {Version::V311, Version::V5}) {
    EXPECT_EQ(decode_error(connect(v, 0x02, str("x"), "\x00"s, 0x1F), v), ReasonCode::MalformedPacket);
    EXPECT_EQ(decode_error(connect(v, 0x03, str("x")), v), ReasonCode::MalformedPacket);
  }
}

}  // namespace
}  // namespace petrel::mqtt
