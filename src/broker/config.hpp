// Broker-level settings: the MQTT behaviour an operator can tune. Listener
// and logging settings live in app/config.hpp, which fills this struct.
#pragma once

#include <chrono>
#include <cstdint>

namespace petrel::broker {

struct BrokerConfig {
  // Largest packet accepted from a client, announced as Maximum Packet Size.
  std::uint32_t max_packet_size = 1024 * 1024;
  // Clients asking for a longer keep alive (or 0) are told Server Keep Alive
  // (v5) or refused with "identifier rejected" (v3, as Mosquitto does).
  std::uint16_t max_keep_alive = 65535;
  // Upper bound for the session expiry interval a client may ask for.
  std::uint32_t max_session_expiry = 0xFFFFFFFF;
  // Inbound QoS 1/2 window announced to v5 clients (Receive Maximum).
  std::uint16_t receive_maximum = 1024;
  // Outbound in-flight QoS 1/2 messages per session (also capped by the
  // client's Receive Maximum).
  std::uint16_t max_inflight = 1024;
  // Messages queued per session beyond the in-flight window, for offline and
  // slow clients. When full, the new message is dropped for that session
  // and counted (see docs/architecture.md, "Queues and drops").
  std::uint32_t max_queued_messages = 10000;
  // Whether QoS 0 messages are queued for offline persistent sessions.
  bool queue_qos0_offline = false;
  // Topic aliases accepted from a client (Topic Alias Maximum in CONNACK).
  std::uint16_t topic_alias_maximum = 64;
  // Use topic aliases towards v5 clients that allow them.
  bool topic_alias_to_client = false;
  std::uint8_t max_qos = 2;
  bool retain_available = true;
  bool allow_empty_client_id = true;
  // Accept control characters (U+0001..U+001F, U+007F..U+009F) in topic
  // names and filters, client ids, user names and will topics. Off: such a
  // packet is malformed (v5: 0x81; v3: the connection is closed).
  bool allow_control_characters = false;
  // Bytes (topic + payload) queued per session; 0: no byte limit.
  std::uint64_t max_queued_bytes = 64ull << 20;
  std::uint16_t max_client_id_length = 256;
  std::uint16_t max_topic_length = 65535;
  std::uint16_t max_topic_levels = 128;
  // Subscriptions one session may hold; 0: no limit.
  std::uint32_t max_subscriptions = 10000;
  // Retained topics kept; 0: no limit.
  std::uint64_t max_retained_messages = 0;
  // User properties one packet may carry.
  std::uint16_t max_user_properties = 128;
  // Time allowed between TCP accept and a complete CONNECT.
  std::chrono::milliseconds connect_timeout{10'000};
  // How often $SYS topics are published; 0 disables them.
  std::chrono::seconds sys_interval{10};
};

}  // namespace petrel::broker
