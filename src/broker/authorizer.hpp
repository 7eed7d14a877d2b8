// broker::Authorizer: the core's one question to access control. The broker
// asks it whether a client may connect (on CONNECT), publish to a topic (on
// PUBLISH, and when a will is published), subscribe to a filter (on
// SUBSCRIBE), and receive a message (when a message, retained ones included,
// is queued for a session). The auth layer (src/auth/) implements it from
// password files, ACLs, certificates and external services; without it the
// broker uses AllowAll.
//
// Enhanced authentication (MQTT 5.0 4.12) runs through the same decisions: a
// CONNECT naming an Authentication Method the authorizer offers
// (offers_method) is answered ContinueAuthentication with Authentication
// Data for an AUTH packet; the client's AUTH comes back to the authorizer
// (authenticate_step) with the exchange state it attached, until it answers
// Success (CONNACK with the final data) or a refusal. Re-authentication
// (AUTH 0x19 on an established connection) is the same exchange; success
// ends it with AUTH 0x00, failure with DISCONNECT.
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
  // Success; ContinueAuthentication (enhanced authentication goes on: the
  // client gets AUTH 0x18 with `auth_data`); or the reason code of the
  // refusing CONNACK (v5: 0x86 Bad user name or password, 0x87 Not
  // authorized, 0x8C Bad authentication method; 3.1.x clients get the
  // matching return code), or of the DISCONNECT ending a failed
  // re-authentication.
  mqtt::ReasonCode reason = mqtt::ReasonCode::Success;
  std::string why;  // for the log line of a refusal
  // The authorizer logged the refusal itself (rate-limited): the core logs
  // it at debug level only.
  bool logged = false;
  // On success: attached to the client's identity (ClientIdentity::auth).
  // With ContinueAuthentication: the exchange's state, handed back with the
  // client's next AUTH (AuthStep::exchange).
  std::shared_ptr<const AuthContext> context;
  // Enhanced authentication: the Authentication Data to send (in AUTH 0x18
  // with ContinueAuthentication; in CONNACK, or AUTH 0x00 after a
  // re-authentication, with Success).
  std::optional<std::string> auth_data;
  // On success of an initial exchange: the user name it authenticated,
  // which replaces the CONNECT's (access control decides as that user).
  std::optional<std::string> username;
};

// A client's AUTH packet during enhanced authentication.
struct AuthStep {
  const ClientIdentity& identity;  // the CONNECT's (initial exchange) or the connection's (re-authentication)
  const std::shared_ptr<const AuthContext>& exchange;  // from the last ContinueAuthentication; null when an AUTH 0x19 starts a re-authentication
  const std::string& method;
  const std::optional<std::string>& data;
  bool reauthentication = false;
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

  // Enhanced authentication: whether `method` is offered (a CONNECT naming
  // another gets CONNACK 0x8C).
  virtual bool offers_method(std::string_view method) const {
    (void)method;
    return false;
  }
  // The next step of an exchange (see above). Answers like authenticate().
  virtual std::optional<ConnectDecision> authenticate_step(const AuthStep& step, Later later) {
    (void)step;
    (void)later;
    ConnectDecision d;
    d.reason = mqtt::ReasonCode::BadAuthenticationMethod;
    d.why = "enhanced authentication is not offered";
    return d;
  }
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
