// MQTT reason codes (MQTT 5.0 section 2.4) and the CONNACK return codes of
// MQTT 3.1/3.1.1, plus ProtocolError: the exception the codec and the broker
// throw when a peer breaks the protocol. It carries the reason code the spec
// names for that breach, so the code that closes the connection knows what to
// send (CONNACK before CONNECT completed, DISCONNECT after, nothing in v3).
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>

namespace petrel::mqtt {

enum class ReasonCode : std::uint8_t {
  Success = 0x00,  // also Normal disconnection, Granted QoS 0
  GrantedQoS1 = 0x01,
  GrantedQoS2 = 0x02,
  DisconnectWithWill = 0x04,
  NoMatchingSubscribers = 0x10,
  NoSubscriptionExisted = 0x11,
  ContinueAuthentication = 0x18,
  ReAuthenticate = 0x19,
  UnspecifiedError = 0x80,
  MalformedPacket = 0x81,
  ProtocolError = 0x82,
  ImplementationSpecificError = 0x83,
  UnsupportedProtocolVersion = 0x84,
  ClientIdentifierNotValid = 0x85,
  BadUserNameOrPassword = 0x86,
  NotAuthorized = 0x87,
  ServerUnavailable = 0x88,
  ServerBusy = 0x89,
  Banned = 0x8A,
  ServerShuttingDown = 0x8B,
  BadAuthenticationMethod = 0x8C,
  KeepAliveTimeout = 0x8D,
  SessionTakenOver = 0x8E,
  TopicFilterInvalid = 0x8F,
  TopicNameInvalid = 0x90,
  PacketIdentifierInUse = 0x91,
  PacketIdentifierNotFound = 0x92,
  ReceiveMaximumExceeded = 0x93,
  TopicAliasInvalid = 0x94,
  PacketTooLarge = 0x95,
  MessageRateTooHigh = 0x96,
  QuotaExceeded = 0x97,
  AdministrativeAction = 0x98,
  PayloadFormatInvalid = 0x99,
  RetainNotSupported = 0x9A,
  QoSNotSupported = 0x9B,
  UseAnotherServer = 0x9C,
  ServerMoved = 0x9D,
  SharedSubscriptionsNotSupported = 0x9E,
  ConnectionRateExceeded = 0x9F,
  MaximumConnectTime = 0xA0,
  SubscriptionIdentifiersNotSupported = 0xA1,
  WildcardSubscriptionsNotSupported = 0xA2,
};

// MQTT 3.1 / 3.1.1 CONNACK return codes.
enum class ConnackV3 : std::uint8_t {
  Accepted = 0,
  UnacceptableProtocolVersion = 1,
  IdentifierRejected = 2,
  ServerUnavailable = 3,
  BadUserNameOrPassword = 4,
  NotAuthorized = 5,
};

std::string_view to_string(ReasonCode rc);

// The v3 CONNACK return code that best expresses a v5 reason code.
ConnackV3 to_v3_connack(ReasonCode rc);

class ProtocolError : public std::runtime_error {
 public:
  ProtocolError(ReasonCode code, const std::string& what) : std::runtime_error(what), code_(code) {}
  ReasonCode code() const { return code_; }

 private:
  ReasonCode code_;
};

[[noreturn]] inline void malformed(const std::string& what) {
  throw ProtocolError(ReasonCode::MalformedPacket, what);
}
[[noreturn]] inline void protocol_error(const std::string& what) {
  throw ProtocolError(ReasonCode::ProtocolError, what);
}

}  // namespace petrel::mqtt
