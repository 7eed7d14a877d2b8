// Who a client is, as the broker knows it once its CONNECT is accepted: the
// facts access control decides on (client id, user name, where it came
// from) and the operator API shows. One immutable object per connection,
// shared by the connection and its session (Session::identity), so that
// checks made when a message is delivered to an offline or busy session
// still know who the subscriber is.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "mqtt/packets.hpp"

namespace petrel::broker {

// What access control attaches to a connection it accepted (its policy, how
// the client authenticated, per-connection grants), opaque to the core: the
// Authorizer that set it reads it back on each check, so those checks need no
// lookup by name. Null for a session restored from the store.
struct AuthContext {
  virtual ~AuthContext() = default;
};

struct ClientIdentity {
  std::string client_id;
  // The user name access control sees: the CONNECT's, or on a listener with
  // identity_as_username the verified client certificate's (and then only it).
  std::optional<std::string> username;
  std::string listener;  // the listener's name (a restored session: as stored; "" if stored before schema 2)
  std::string peer;      // address:port; empty for a restored session
  std::chrono::system_clock::time_point connected_at{};
  std::shared_ptr<const AuthContext> auth;  // set from ConnectDecision::context
  // (The small fields last: one object per connection pays for padding.)
  bool username_from_certificate = false;
  mqtt::Version version = mqtt::Version::V311;
  std::uint16_t keep_alive = 0;
  bool clean_start = true;
};

using IdentityPtr = std::shared_ptr<const ClientIdentity>;

}  // namespace petrel::broker
