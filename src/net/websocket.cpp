#include "net/websocket.hpp"

#include <boost/beast/websocket/rfc6455.hpp>

namespace petrel::net {

namespace http = boost::beast::http;

namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// The first subprotocol of the client's list that petrel speaks. The header
// may be repeated and each holds a comma-separated list.
std::string pick_subprotocol(const UpgradeRequest& request) {
  const auto [first, last] = request.equal_range(http::field::sec_websocket_protocol);
  for (auto field = first; field != last; ++field) {
    std::string_view list(field->value().data(), field->value().size());
    while (!list.empty()) {
      const auto comma = list.find(',');
      const auto token = trim(list.substr(0, comma));
      if (token == "mqtt" || token == "mqttv3.1") return std::string(token);
      if (comma == std::string_view::npos) break;
      list.remove_prefix(comma + 1);
    }
  }
  return {};
}

}  // namespace

UpgradeDecision decide_upgrade(const UpgradeRequest& request, const WebSocketSettings& settings) {
  if (request.method() != http::verb::get)
    return {405, "bad_method", "method " + std::string(request.method_string()) + " not allowed (use GET)", {}};
  std::string_view target(request.target().data(), request.target().size());
  const std::string_view path = target.substr(0, target.find('?'));
  if (path != settings.path)
    return {404, "wrong_path", "no MQTT endpoint at '" + std::string(path) + "' (try '" + settings.path + "')", {}};
  if (!boost::beast::websocket::is_upgrade(request))
    return {426, "not_websocket", "this is an MQTT over WebSocket endpoint: a WebSocket upgrade is required", {}};
  // Checked here rather than left to Beast, so that every refusal gets the
  // same kind of answer (text body, Connection: close) and label.
  const auto version = request[http::field::sec_websocket_version];
  if (version.empty()) return {400, "bad_upgrade", "missing Sec-WebSocket-Version (petrel speaks version 13)", {}};
  if (version != "13")
    return {426, "bad_upgrade", "unsupported Sec-WebSocket-Version '" + std::string(version) + "' (petrel speaks 13)", {}};
  const auto key = request[http::field::sec_websocket_key];
  // RFC 6455 4.1: the key is 16 random bytes, base64: 24 characters.
  if (key.size() != 24 || key.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=") !=
                              std::string_view::npos)
    return {400, "bad_upgrade", "missing or invalid Sec-WebSocket-Key", {}};
  auto protocol = pick_subprotocol(request);
  if (protocol.empty())
    return {400, "no_subprotocol", "no acceptable Sec-WebSocket-Protocol (petrel speaks 'mqtt' and 'mqttv3.1')", {}};
  return {101, {}, {}, std::move(protocol)};
}

std::string forwarded_for(const UpgradeRequest& request, const boost::asio::ip::address& peer,
                          const WebSocketSettings& settings) {
  bool trusted = false;
  for (const auto& a : settings.trusted_proxies) trusted = trusted || a == peer;
  if (!trusted) return {};
  const auto it = request.find("X-Forwarded-For");
  if (it == request.end()) return {};
  std::string_view list(it->value().data(), it->value().size());
  const auto comma = list.rfind(',');
  const auto last = trim(comma == std::string_view::npos ? list : list.substr(comma + 1));
  boost::system::error_code ec;
  const auto address = boost::asio::ip::make_address(std::string(last), ec);
  if (ec) return {};
  return address.to_string();
}

std::uint16_t websocket_close_code(mqtt::ReasonCode reason) {
  using mqtt::ReasonCode;
  const auto code = static_cast<unsigned>(reason);
  if (code < 0x80) return 1000;
  switch (reason) {
    case ReasonCode::KeepAliveTimeout:
    case ReasonCode::SessionTakenOver:
    case ReasonCode::AdministrativeAction:
      return 1000;
    case ReasonCode::ServerShuttingDown:
    case ReasonCode::UseAnotherServer:
    case ReasonCode::ServerMoved:
      return 1001;
    case ReasonCode::PacketTooLarge:
      return 1009;
    case ReasonCode::BadUserNameOrPassword:
    case ReasonCode::NotAuthorized:
    case ReasonCode::Banned:
    case ReasonCode::BadAuthenticationMethod:
    case ReasonCode::QuotaExceeded:
    case ReasonCode::MessageRateTooHigh:
    case ReasonCode::ConnectionRateExceeded:
    case ReasonCode::MaximumConnectTime:
      return 1008;
    case ReasonCode::ServerUnavailable:
    case ReasonCode::ServerBusy:
      return 1013;
    case ReasonCode::UnspecifiedError:
    case ReasonCode::ImplementationSpecificError:
      return 1011;
    default:
      return 1002;  // malformed packets and every other protocol violation
  }
}

}  // namespace petrel::net
