// In-process sessions: what a client of the broker that lives inside petrel
// (a bridge, src/bridge/) needs from the core beyond SessionLink.
//
// Such a client holds an ordinary session through Broker::attach (so the
// session store persists its queue and in-flight window like any other),
// drains it with Session::drain, and completes what it sent with
// acknowledge() below when its own receiver acknowledges, as broker::Client
// does for a network connection. What differs is decided per client id by a
// SessionPolicy registered before serving (Broker::add_in_process):
//
// - its queue has bounds of its own (not [mqtt] max_queued_*);
// - when the queue is full, QoS 0 still goes first (the oldest queued QoS 0
//   message is evicted), but a QoS 1/2 message that finds no room is
//   refused to its publisher (Broker::Routed::refused: v5 publishers get
//   0x97 Quota exceeded) instead of being dropped silently: what petrel
//   acknowledges, it forwards;
// - access control does not filter what is queued for it (the operator's
//   configuration chose what it receives);
// - network clients may not use its client id (CONNACK 0x85).
//
// In-process client ids start with '$' (as "$bridge/<name>"): the publish
// path looks a policy up only for sessions whose id does.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "broker/session.hpp"
#include "broker/stats.hpp"

namespace petrel::broker {

class SessionStore;

struct SessionPolicy {
  std::uint32_t max_queued_messages = 10000;
  std::uint64_t max_queued_bytes = 0;  // 0: no byte bound
  // Counted by the broker while routing: messages not queued (or evicted)
  // because the queue was full, and of those the QoS 1/2 ones refused to
  // their publisher. Sharded (broker::Counter): every loop routes.
  Counter dropped;
  Counter refused;
};

// What an acknowledgement from the receiver did to a delivery in flight.
enum class AckResult : std::uint8_t {
  Completed,  // PUBACK, PUBCOMP, or a refusing PUBREC (reason >= 0x80): the delivery is done and forgotten
  SendPubrel,   // PUBREC: the QoS 2 flow moved on (stored); answer PUBREL
  UnknownId,    // no delivery in flight with that id: a late PUBACK/PUBCOMP is ignored, a PUBREC gets PUBREL 0x92
  WrongKind,    // an acknowledgement that does not fit the delivery's state: a protocol violation
};

// Applies PUBACK, PUBREC or PUBCOMP `type` for `packet_id` with `reason` to
// the session's in-flight window, reporting to `store` as Client::on_puback
// does (docs/architecture.md, "Acknowledgements of the wrong kind"). Call
// with the session's mutex held, from the holder of its current generation.
// With `completed`, the delivery that a Completed result finished.
AckResult acknowledge(Session& session, mqtt::PacketType type, std::uint16_t packet_id, mqtt::ReasonCode reason,
                      SessionStore& store, Delivery* completed = nullptr);

// Forgets one delivery in flight (sent at QoS 0 after all, or a QoS 2 flow
// the receiver lost with its session); false if none has that id. Mutex held.
bool forget_inflight(Session& session, std::uint16_t packet_id, SessionStore& store);

}  // namespace petrel::broker
