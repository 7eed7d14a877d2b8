// What the broker core needs from a client's network connection, and nothing
// more. net::Connection implements it for every transport (TCP, TLS,
// WebSocket), so the protocol logic in broker::Client never sees a
// socket. Methods marked thread-safe may be called from any event loop; the
// rest only on the connection's own thread.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

#include "mqtt/reason_code.hpp"

namespace petrel::broker {

class Transport {
 public:
  virtual ~Transport() = default;

  // Queue bytes for writing (copied).
  virtual void send(std::string_view bytes) = 0;
  // Queue a slice of a shared, immutable buffer (not copied).
  virtual void send_shared(const std::shared_ptr<const std::string>& buf, std::size_t offset, std::size_t length) = 0;
  // Bytes queued and not yet written: the back-pressure signal.
  virtual std::size_t pending_bytes() const = 0;
  // Close after the queued bytes are written. `reason` says why, in MQTT
  // terms (Success for a normal end); transports that have a close status of
  // their own (WebSocket) translate it.
  virtual void close(mqtt::ReasonCode reason) = 0;
  virtual const std::string& peer() const = 0;
  // The owning pointer to this transport, for sessions to hold weakly.
  virtual std::shared_ptr<Transport> shared_transport() = 0;

  // Thread-safe: run Client::flush() on the connection's thread soon.
  virtual void wake() = 0;
  // Thread-safe: the server ends this connection (takeover, shutdown); v5
  // clients get DISCONNECT with `reason` first.
  virtual void kick(mqtt::ReasonCode reason) = 0;
};

}  // namespace petrel::broker
