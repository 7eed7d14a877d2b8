// The settings of one bridge ([[bridge]] in the configuration file,
// docs/configuration.md): where the remote broker is and how to connect to
// it, the bounds of its offline queue, how to reconnect, and its rules:
// forward (local -> remote) and subscribe (remote -> local). app/config.cpp
// fills and validates them; the bridge layer trusts them.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "mqtt/packets.hpp"

namespace petrel::bridge {

// local -> remote: local messages matching `filter` are published on the
// remote as remote_prefix + topic, at min(message QoS, qos).
struct ForwardRule {
  std::string filter;
  std::string remote_prefix;
  std::uint8_t qos = 1;
  bool retain = true;  // keep the message's retain flag (false: always send retain = 0)
};

// remote -> local: the bridge subscribes to `filter` on the remote; what
// arrives is published locally as local_prefix + topic.
struct SubscribeRule {
  std::string filter;
  std::string local_prefix;
  std::uint8_t qos = 1;
};

// A TLS client: verifies the remote's certificate against `ca_file` (the
// system's CAs when empty) and its name (server_name, or the host), and
// presents cert_file/key_file when given (mutual TLS).
struct TlsClientSettings {
  bool enabled = false;
  std::string ca_file;
  std::string cert_file;
  std::string key_file;
  std::string key_password;
  std::string server_name;  // SNI and the name verified; empty: the host of `address`
};

struct BridgeSettings {
  std::string name;
  std::string host;  // from address = "host:port" ("[v6]:port")
  std::uint16_t port = 1883;
  TlsClientSettings tls;
  mqtt::Version version = mqtt::Version::V5;  // V311 or V5
  std::string client_id;                      // on the remote
  std::optional<std::string> username;
  std::optional<std::string> password;  // password, or read from password_file
  std::uint16_t keep_alive = 60;        // seconds; 0: none
  bool clean_start = false;
  std::uint32_t session_expiry = 3600;  // v5: Session Expiry Interval on the remote
  // The offline queue: petrel's own session for this bridge ($bridge/<name>).
  std::uint32_t max_queued_messages = 100000;
  std::uint64_t max_queued_bytes = 64ull << 20;  // 0: no byte bound
  // QoS 1/2 messages in flight to the remote at most (also bounded by the
  // remote's Receive Maximum).
  std::uint16_t max_inflight = 1024;
  std::chrono::milliseconds connect_timeout{30'000};  // TCP, TLS and CONNACK together
  // Reconnect delays: exponential from min to max, with jitter (bridge/backoff.hpp).
  std::chrono::milliseconds reconnect_delay_min{1'000};
  std::chrono::milliseconds reconnect_delay_max{60'000};
  std::vector<ForwardRule> forward;
  std::vector<SubscribeRule> subscribe;
  std::string origin;  // "FILE:LINE:COLUMN" of the table, for messages
};

// The client id of a bridge's own session in petrel.
inline std::string local_client_id(const std::string& bridge_name) { return "$bridge/" + bridge_name; }

}  // namespace petrel::bridge
