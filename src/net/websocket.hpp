// MQTT over WebSocket (RFC 6455; MQTT 5.0 section 6): the settings of a ws or
// wss listener and the decisions about an HTTP upgrade request, kept apart
// from the I/O in net::Connection so that they can be unit-tested.
//
// An upgrade is accepted only for GET on the configured path, with valid
// WebSocket headers and the subprotocol "mqtt" (or "mqttv3.1", which MQTT 3.1
// clients such as old Paho and MQTT.js with protocolVersion 3 ask for).
// Anything else gets an HTTP error status and a closed connection.
#pragma once

#include <boost/asio/ip/address.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/message.hpp>
#include <cstdint>
#include <string>
#include <vector>

#include "mqtt/reason_code.hpp"

namespace petrel::net {

struct WebSocketSettings {
  std::string path = "/mqtt";
  // Peers whose X-Forwarded-For header is believed (reverse proxies).
  std::vector<boost::asio::ip::address> trusted_proxies;
  // Largest WebSocket message accepted; the server sets it to the MQTT
  // maximum packet size.
  std::uint64_t max_message = 1024 * 1024;
};

using UpgradeRequest = boost::beast::http::request<boost::beast::http::empty_body>;

struct UpgradeDecision {
  unsigned status = 101;    // 101: accept; else the HTTP status to answer with
  std::string label;        // failure label for the listener's metrics
  std::string reason;       // for the log and the response body
  std::string subprotocol;  // the one chosen, when accepted
};

// What to answer to an upgrade request.
UpgradeDecision decide_upgrade(const UpgradeRequest& request, const WebSocketSettings& settings);

// The client address a trusted proxy reports (the last X-Forwarded-For
// entry), or empty if `peer` is not a trusted proxy or the header is absent
// or invalid.
std::string forwarded_for(const UpgradeRequest& request, const boost::asio::ip::address& peer,
                          const WebSocketSettings& settings);

// The WebSocket close status for the MQTT reason a connection ends with:
// 1000 normal, 1001 server going away, 1002 protocol error, 1008 policy
// (authorisation, quotas), 1009 too big, 1011 server error, 1013 try later.
std::uint16_t websocket_close_code(mqtt::ReasonCode reason);

}  // namespace petrel::net
