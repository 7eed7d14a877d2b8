// One struct per MQTT control packet. The same structs serve MQTT 3.1, 3.1.1
// and 5.0: fields that only exist in 5.0 (properties, most reason codes) are
// ignored when encoding for 3.x and left empty when decoding 3.x.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "mqtt/properties.hpp"
#include "mqtt/reason_code.hpp"

namespace petrel::mqtt {

enum class Version : std::uint8_t { V31 = 3, V311 = 4, V5 = 5 };

enum class PacketType : std::uint8_t {
  Connect = 1,
  Connack,
  Publish,
  Puback,
  Pubrec,
  Pubrel,
  Pubcomp,
  Subscribe,
  Suback,
  Unsubscribe,
  Unsuback,
  Pingreq,
  Pingresp,
  Disconnect,
  Auth
};

std::string_view to_string(PacketType t);
std::string_view to_string(Version v);

struct Will {
  std::string topic;
  std::string payload;
  std::uint8_t qos = 0;
  bool retain = false;
  Properties properties;
  bool operator==(const Will&) const = default;
};

struct Connect {
  Version version = Version::V311;
  std::string client_id;
  bool clean_start = true;
  std::uint16_t keep_alive = 0;
  std::optional<std::string> username;
  std::optional<std::string> password;
  std::optional<Will> will;
  Properties properties;
  bool operator==(const Connect&) const = default;
};

struct Connack {
  bool session_present = false;
  ReasonCode reason = ReasonCode::Success;  // v3 encodes to_v3_connack(reason)
  Properties properties;
  bool operator==(const Connack&) const = default;
};

struct Publish {
  std::string topic;
  std::string payload;
  std::uint8_t qos = 0;
  bool retain = false;
  bool dup = false;
  std::uint16_t packet_id = 0;
  Properties properties;
  bool operator==(const Publish&) const = default;
};

// PUBACK, PUBREC, PUBREL and PUBCOMP share one shape.
struct PubAck {
  PacketType type = PacketType::Puback;
  std::uint16_t packet_id = 0;
  ReasonCode reason = ReasonCode::Success;
  Properties properties;
  bool operator==(const PubAck&) const = default;
};

struct SubscribeOptions {
  std::uint8_t qos = 0;
  bool no_local = false;
  bool retain_as_published = false;
  std::uint8_t retain_handling = 0;
  bool operator==(const SubscribeOptions&) const = default;
};

struct Subscription {
  std::string filter;
  SubscribeOptions options;
  bool operator==(const Subscription&) const = default;
};

struct Subscribe {
  std::uint16_t packet_id = 0;
  std::vector<Subscription> subscriptions;
  Properties properties;
  bool operator==(const Subscribe&) const = default;
};

struct Suback {
  std::uint16_t packet_id = 0;
  std::vector<ReasonCode> reasons;  // v3: 0, 1, 2 or 0x80
  Properties properties;
  bool operator==(const Suback&) const = default;
};

struct Unsubscribe {
  std::uint16_t packet_id = 0;
  std::vector<std::string> filters;
  Properties properties;
  bool operator==(const Unsubscribe&) const = default;
};

struct Unsuback {
  std::uint16_t packet_id = 0;
  std::vector<ReasonCode> reasons;  // v5 only
  Properties properties;
  bool operator==(const Unsuback&) const = default;
};

struct Pingreq {
  bool operator==(const Pingreq&) const = default;
};
struct Pingresp {
  bool operator==(const Pingresp&) const = default;
};

struct Disconnect {
  ReasonCode reason = ReasonCode::Success;
  Properties properties;
  bool operator==(const Disconnect&) const = default;
};

struct Auth {
  ReasonCode reason = ReasonCode::Success;
  Properties properties;
  bool operator==(const Auth&) const = default;
};

using Packet = std::variant<Connect, Connack, Publish, PubAck, Subscribe, Suback, Unsubscribe, Unsuback, Pingreq,
                            Pingresp, Disconnect, Auth>;

PacketType packet_type(const Packet& p);

}  // namespace petrel::mqtt
