// broker::Authorizer: the core's one question to access control. The broker
// asks it whether a client may connect (on CONNECT), publish to a topic (on
// PUBLISH, and when a will is published), subscribe to a filter (on
// SUBSCRIBE), and receive a message (when a message, retained ones included,
// is queued for a session). The auth layer (src/auth/) implements it from
// password files, ACLs, certificates and external services; without it the
// broker uses AllowAll.
//
// The publish, subscribe and delivery questions are asked on the hot path,
// from any event loop, and delivery with the target session's mutex held:
// they must answer from memory at once (a lookup in a data structure, never
// I/O), must be thread-safe and must not call back into the broker. Only the
// connect decision may take time: authenticate() answers now, or later
// through the callback (from any thread), and the connection waits for it
// (bounded by connect_timeout) while the rest of its loop goes on.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "broker/identity.hpp"
#include "broker/message.hpp"
#include "mqtt/packets.hpp"
#include "mqtt/reason_code.hpp"

namespace petrel::broker {

struct ConnectRequest {
  const ClientIdentity& identity;
  const std::optional<std::string>& password;
  const mqtt::Properties& properties;  // v5 CONNECT properties (authentication method and data)
};

struct ConnectDecision {
  // Success, or the reason code of the refusing CONNACK (v5: 0x86 Bad user
  // name or password, 0x87 Not authorized, 0x8C Bad authentication method;
  // 3.1.x clients get the matching return code).
  mqtt::ReasonCode reason = mqtt::ReasonCode::Success;
  std::string why;  // for the log line of a refusal
  // The authorizer logged the refusal itself (rate-limited): the core logs
  // it at debug level only.
  bool logged = false;
  // On success: attached to the client's identity (ClientIdentity::auth).
  std::shared_ptr<const AuthContext> context;
};

class Authorizer {
 public:
  using Later = std::function<void(ConnectDecision)>;
  virtual ~Authorizer() = default;

  // Returns the decision, or nullopt and calls `later` exactly once, from any
  // thread, with the decision.
  virtual std::optional<ConnectDecision> authenticate(const ConnectRequest& request, Later later) = 0;
  virtual bool may_publish(const ClientIdentity& who, std::string_view topic, std::uint8_t qos, bool retain) = 0;
  virtual bool may_subscribe(const ClientIdentity& who, std::string_view filter, std::uint8_t qos) = 0;
  virtual bool may_receive(const ClientIdentity& who, const Message& message) = 0;
  // Whether may_receive must be asked at all: false lets routing skip the
  // call for every delivery.
  virtual bool checks_delivery() const = 0;
};

// Everyone may do everything: petrel without access control.
class AllowAll final : public Authorizer {
 public:
  std::optional<ConnectDecision> authenticate(const ConnectRequest&, Later) override { return ConnectDecision{}; }
  bool may_publish(const ClientIdentity&, std::string_view, std::uint8_t, bool) override { return true; }
  bool may_subscribe(const ClientIdentity&, std::string_view, std::uint8_t) override { return true; }
  bool may_receive(const ClientIdentity&, const Message&) override { return true; }
  bool checks_delivery() const override { return false; }
};

}  // namespace petrel::broker
