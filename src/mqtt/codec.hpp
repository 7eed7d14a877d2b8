// The MQTT codec: bytes in, packets out, and the reverse. No I/O, no clocks,
// no allocation beyond the packets themselves. Used unchanged by the broker,
// the CLI, the unit tests and the fuzzers.
//
// Framing and decoding are separate steps. FrameReader splits a byte stream
// into whole control packets: it reads the fixed header, checks the declared
// remaining length against a maximum before anything is buffered for it, and
// only ever holds the bytes that have actually arrived. decode() then turns
// one frame into a Packet, strictly: every reserved bit, every string, every
// property is checked, and any violation throws ProtocolError carrying the
// reason code the specification names.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "mqtt/packets.hpp"

namespace petrel::mqtt {

// A complete control packet as it came off the wire.
struct Frame {
  std::uint8_t header = 0;  // first byte: type and flags
  std::string_view body;    // the remaining length bytes (valid until the next FrameReader call)
  std::size_t size = 0;     // total size including the fixed header
  PacketType type() const { return static_cast<PacketType>(header >> 4); }
  std::uint8_t flags() const { return header & 0x0F; }
};

class FrameReader {
 public:
  explicit FrameReader(std::uint32_t max_packet_size) : max_packet_size_(max_packet_size) {}

  // Appends bytes received from the peer (copied).
  void feed(std::string_view bytes) {
    borrow(bytes);
    keep_rest();
  }
  // Makes `bytes` the reader's next input without copying it: complete
  // frames in it are returned as views into it. Call keep_rest() before
  // `bytes` goes away; it copies the part not returned yet (usually an
  // incomplete frame at the end, often nothing). The broker reads this way
  // from its loop's read buffer.
  void borrow(std::string_view bytes);

  // The next complete frame, or nothing if more bytes are needed. Throws
  // ProtocolError: MalformedPacket for a bad remaining length, PacketTooLarge
  // when the declared size exceeds the maximum. The returned frame's body is
  // valid until the next call to next(), feed() or keep_rest().
  std::optional<Frame> next();

  // Keeps what has not been returned as frames from the input; the reader
  // then holds no memory when nothing is left over (an idle connection keeps
  // no buffer).
  void keep_rest();

  // Bytes held or fed that do not yet form a complete frame.
  std::size_t buffered() const { return (held_ ? held_->bytes.size() - held_->consumed : 0) + input_.size(); }

 private:
  // The size of the frame at `p` (`avail` bytes there), or 0 when its fixed
  // header is not complete yet.
  std::size_t frame_size(const char* p, std::size_t avail) const;

  // A frame that spans inputs, or frames kept for later; allocated only
  // while there is one (every idle connection has a reader).
  struct Held {
    std::string bytes;
    std::size_t consumed = 0;  // bytes already returned as frames
  };
  std::unique_ptr<Held> held_;
  std::string_view input_;  // what borrow() gave and next() has not returned yet
  std::uint32_t max_packet_size_;
};

// Who sent the packets being decoded. Each packet type has one direction of
// flow (MQTT 5.0 2.1.2, 3.1.1 2.2.1); a packet going the wrong way is a
// Protocol Error, decided from the first byte before the body is parsed, so
// that a body that happens to be malformed does not hide the real fault.
enum class Sender : std::uint8_t {
  Any,     // decode every packet type (tests, fuzzers, tools)
  Client,  // a server reading its client: CONNACK, SUBACK, UNSUBACK, PINGRESP, CONNECT (a second one) refused
  Server,  // a client reading its server: CONNECT, SUBSCRIBE, UNSUBSCRIBE, PINGREQ refused
};

struct DecodeOptions {
  Sender sender = Sender::Any;
  // With Sender::Client: whether the client's CONNECT started enhanced
  // authentication (MQTT 5.0 4.12). Without it AUTH is a Protocol Error,
  // whatever its flags and body.
  bool enhanced_auth = false;
  // Control characters (U+0001..U+001F, U+007F..U+009F) in a topic name,
  // topic filter, client identifier, user name or will topic make the packet
  // malformed unless this is set. The specifications say they SHOULD NOT be
  // sent and let a receiver treat them as malformed (MQTT 5.0 1.5.4, 3.1.1
  // 1.5.3); Mosquitto does. Payloads, properties and passwords are not checked.
  bool allow_control_characters = false;
};

// Decodes CONNECT, whatever the protocol version (it is inside the packet).
// Throws ProtocolError; UnsupportedProtocolVersion for an unknown name/level.
// MQTT 3.1 CONNECTs may leave the fixed-header flags and the reserved connect
// flag (bit 0) unzeroed; 3.1.1 and 5.0 reserve them [MQTT-2.2.2-1] [MQTT-3.1.2-3].
Connect decode_connect(const Frame& f, const DecodeOptions& o = {});

// Decodes any packet for an established connection of version `v`. Checks
// the packet type before the body: a reserved type (0; 15 before MQTT 5) or
// one going the wrong way (o.sender) is a Protocol Error.
// A CONNECT is decoded with decode_connect unless o.sender is Client (on an
// established connection it is a second CONNECT, a Protocol Error).
Packet decode(const Frame& f, Version v, const DecodeOptions& o = {});

// Appends the encoding of `p` for version `v` to `out`.
void encode(const Packet& p, Version v, std::string& out);
std::string encode(const Packet& p, Version v);

// Appends the encoding of a PUBLISH; returns the offset of its 2-byte packet
// identifier (0 for QoS 0).
std::size_t encode_publish(const Publish& p, Version v, std::string& out);

// A PUBLISH as it arrived, without copies: topic and payload are views into
// the frame's bytes (valid as long as the frame is). The broker's hot path
// decodes PUBLISH this way and copies topic and payload once, into the
// message it routes.
struct PublishView {
  std::string_view topic;  // empty with a topic alias (v5)
  std::string_view payload;
  std::uint8_t qos = 0;
  bool retain = false;
  bool dup = false;
  std::uint16_t packet_id = 0;
  // v5: the properties, when the property block is not empty (most are:
  // an empty Properties still costs its construction and destruction).
  std::optional<Properties> properties;
  const Properties& props() const;  // an empty Properties when there are none
};
// Decodes a PUBLISH with every check decode() makes.
PublishView decode_publish_view(const Frame& f, Version v, const DecodeOptions& options = {});

// PUBACK, PUBREC, PUBREL or PUBCOMP without its properties (the broker acts
// on type, packet id and reason only; properties are still checked).
struct AckView {
  PacketType type = PacketType::Puback;
  std::uint16_t packet_id = 0;
  ReasonCode reason = ReasonCode::Success;
  std::size_t user_properties = 0;  // how many it carried
};
AckView decode_ack(const Frame& f, Version v);

// What a sender puts in front of a payload it already holds: the PUBLISH
// packet up to the payload, assembled per receiver (its packet identifier,
// topic alias, subscription identifiers, the expiry left), around parts the
// message keeps encoded (its pass-through properties).
struct PublishHead {
  std::string_view topic;  // may be empty when topic_alias is set (v5)
  std::uint8_t qos = 0;
  bool retain = false;
  bool dup = false;
  std::uint16_t packet_id = 0;
  // v5 only:
  std::string_view properties;  // encoded properties without their length prefix
  std::optional<std::uint32_t> message_expiry;
  std::optional<std::uint16_t> topic_alias;
  const std::vector<std::uint32_t>* subscription_ids = nullptr;
};
// Appends the PUBLISH's fixed header, topic, packet identifier and properties
// for a payload of `payload_size` bytes (which the caller appends or sends
// next); returns the size of the whole packet.
std::size_t encode_publish_head(const PublishHead& h, Version v, std::size_t payload_size, std::string& out);
// The size of that whole packet, without encoding it.
std::size_t publish_size(const PublishHead& h, Version v, std::size_t payload_size);

// Size of the encoded packet without encoding it.
std::size_t encoded_size(const Packet& p, Version v);

}  // namespace petrel::mqtt
