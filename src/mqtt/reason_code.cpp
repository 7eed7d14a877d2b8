#include "mqtt/reason_code.hpp"

namespace petrel::mqtt {

std::string_view to_string(ReasonCode rc) {
  switch (rc) {
    case ReasonCode::Success: return "success";
    case ReasonCode::GrantedQoS1: return "granted QoS 1";
    case ReasonCode::GrantedQoS2: return "granted QoS 2";
    case ReasonCode::DisconnectWithWill: return "disconnect with will message";
    case ReasonCode::NoMatchingSubscribers: return "no matching subscribers";
    case ReasonCode::NoSubscriptionExisted: return "no subscription existed";
    case ReasonCode::ContinueAuthentication: return "continue authentication";
    case ReasonCode::ReAuthenticate: return "re-authenticate";
    case ReasonCode::UnspecifiedError: return "unspecified error";
    case ReasonCode::MalformedPacket: return "malformed packet";
    case ReasonCode::ProtocolError: return "protocol error";
    case ReasonCode::ImplementationSpecificError: return "implementation specific error";
    case ReasonCode::UnsupportedProtocolVersion: return "unsupported protocol version";
    case ReasonCode::ClientIdentifierNotValid: return "client identifier not valid";
    case ReasonCode::BadUserNameOrPassword: return "bad user name or password";
    case ReasonCode::NotAuthorized: return "not authorized";
    case ReasonCode::ServerUnavailable: return "server unavailable";
    case ReasonCode::ServerBusy: return "server busy";
    case ReasonCode::Banned: return "banned";
    case ReasonCode::ServerShuttingDown: return "server shutting down";
    case ReasonCode::BadAuthenticationMethod: return "bad authentication method";
    case ReasonCode::KeepAliveTimeout: return "keep alive timeout";
    case ReasonCode::SessionTakenOver: return "session taken over";
    case ReasonCode::TopicFilterInvalid: return "topic filter invalid";
    case ReasonCode::TopicNameInvalid: return "topic name invalid";
    case ReasonCode::PacketIdentifierInUse: return "packet identifier in use";
    case ReasonCode::PacketIdentifierNotFound: return "packet identifier not found";
    case ReasonCode::ReceiveMaximumExceeded: return "receive maximum exceeded";
    case ReasonCode::TopicAliasInvalid: return "topic alias invalid";
    case ReasonCode::PacketTooLarge: return "packet too large";
    case ReasonCode::MessageRateTooHigh: return "message rate too high";
    case ReasonCode::QuotaExceeded: return "quota exceeded";
    case ReasonCode::AdministrativeAction: return "administrative action";
    case ReasonCode::PayloadFormatInvalid: return "payload format invalid";
    case ReasonCode::RetainNotSupported: return "retain not supported";
    case ReasonCode::QoSNotSupported: return "QoS not supported";
    case ReasonCode::UseAnotherServer: return "use another server";
    case ReasonCode::ServerMoved: return "server moved";
    case ReasonCode::SharedSubscriptionsNotSupported: return "shared subscriptions not supported";
    case ReasonCode::ConnectionRateExceeded: return "connection rate exceeded";
    case ReasonCode::MaximumConnectTime: return "maximum connect time";
    case ReasonCode::SubscriptionIdentifiersNotSupported: return "subscription identifiers not supported";
    case ReasonCode::WildcardSubscriptionsNotSupported: return "wildcard subscriptions not supported";
  }
  return "unknown reason code";
}

ConnackV3 to_v3_connack(ReasonCode rc) {
  switch (rc) {
    case ReasonCode::Success: return ConnackV3::Accepted;
    case ReasonCode::UnsupportedProtocolVersion: return ConnackV3::UnacceptableProtocolVersion;
    case ReasonCode::ClientIdentifierNotValid: return ConnackV3::IdentifierRejected;
    case ReasonCode::BadUserNameOrPassword: return ConnackV3::BadUserNameOrPassword;
    case ReasonCode::NotAuthorized:
    case ReasonCode::Banned:
    case ReasonCode::BadAuthenticationMethod: return ConnackV3::NotAuthorized;
    default: return ConnackV3::ServerUnavailable;
  }
}

}  // namespace petrel::mqtt
