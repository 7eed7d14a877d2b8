// What the broker core needs from whoever holds a session online, and from
// a client's network connection, and nothing more.
//
// SessionLink is the session's side: a way to wake its holder when
// deliveries are queued, to end it, and to run code on its thread. A network
// connection is one (through Transport); an in-process client of the broker
// (a bridge) can be another, with no socket and no bytes.
//
// Transport adds the wire: net::Connection implements it for every
// transport (TCP, TLS, WebSocket), so the protocol logic in broker::Client
// never sees a socket. Methods marked thread-safe may be called from any
// event loop; the rest only on the connection's own thread.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "broker/message.hpp"
#include "mqtt/reason_code.hpp"

namespace petrel::broker {

class SessionLink {
 public:
  virtual ~SessionLink() = default;
  // Thread-safe: drain the session soon (Client::flush), on the holder's thread.
  virtual void wake() = 0;
  // Thread-safe: the server ends this holder (takeover, shutdown, an
  // operator); v5 clients get DISCONNECT with `reason` first.
  virtual void kick(mqtt::ReasonCode reason) = 0;
  // Thread-safe: run `fn` on the holder's thread, unless it has closed by
  // then (an asynchronous answer coming back, e.g. an authorizer's).
  virtual void post(std::function<void()> fn) = 0;
};

class Transport : public SessionLink {
 public:

  // Queue bytes for writing (copied).
  virtual void send(std::string_view bytes) = 0;
  // Queue bytes that belong to `message` (its payload) without copying them;
  // the message is kept alive until they are written.
  virtual void send_payload(const MessagePtr& message, std::string_view bytes) = 0;
  // Bytes queued and not yet written: the back-pressure signal.
  virtual std::size_t pending_bytes() const = 0;
  // Close after the queued bytes are written. `reason` says why, in MQTT
  // terms (Success for a normal end); transports that have a close status of
  // their own (WebSocket) translate it.
  virtual void close(mqtt::ReasonCode reason) = 0;
  // The peer's address ("203.0.113.7:50000", "[::1]:50000").
  virtual const std::string& peer() const = 0;
  // The name of the listener the connection came in on.
  virtual const std::string& listener() const = 0;
  // The owning pointer to this connection, for sessions to hold weakly.
  virtual std::shared_ptr<SessionLink> shared_link() = 0;
};

}  // namespace petrel::broker
