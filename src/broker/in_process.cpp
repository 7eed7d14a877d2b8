// The in-flight half of an in-process client (broker/in_process.hpp), and
// the broker's registry of session policies.
#include "broker/in_process.hpp"

#include "broker/broker.hpp"
#include "broker/persistence.hpp"

namespace petrel::broker {

using mqtt::PacketType;

bool forget_inflight(Session& session, std::uint16_t packet_id, SessionStore& store) {
  auto it = session.inflight.find(packet_id);
  if (it == session.inflight.end()) return false;
  if (it->second.delivery.store_id)
    store.delivery_removed(it->second.delivery.store_id, *it->second.delivery.message);
  session.inflight.erase(it);
  return true;
}

AckResult acknowledge(Session& session, PacketType type, std::uint16_t packet_id, mqtt::ReasonCode reason,
                      SessionStore& store, Delivery* completed) {
  auto it = session.inflight.find(packet_id);
  if (it == session.inflight.end()) return AckResult::UnknownId;
  auto done = [&] {
    if (completed) *completed = it->second.delivery;
    if (it->second.delivery.store_id)
    store.delivery_removed(it->second.delivery.store_id, *it->second.delivery.message);
    session.inflight.erase(it);
    return AckResult::Completed;
  };
  const OutState state = it->second.state;
  switch (type) {
    case PacketType::Puback:
      return state == OutState::AwaitPuback ? done() : AckResult::WrongKind;
    case PacketType::Pubrec:
      if (state == OutState::AwaitPuback) return AckResult::WrongKind;
      if (static_cast<unsigned>(reason) >= 0x80) return done();  // the receiver refused it: the flow ends
      // PUBREC (again, after PUBREL was sent): PUBREL (again).
      it->second.state = OutState::AwaitPubcomp;
      if (it->second.delivery.store_id)
        store.delivery_state(it->second.delivery.store_id, packet_id, OutState::AwaitPubcomp);
      return AckResult::SendPubrel;
    case PacketType::Pubcomp:
      return state == OutState::AwaitPubcomp ? done() : AckResult::WrongKind;
    default:
      return AckResult::WrongKind;
  }
}

// ------------------------------------------------------------- policies --

void Broker::add_in_process(const std::string& client_id, std::shared_ptr<SessionPolicy> policy) {
  if (client_id.empty() || client_id.front() != '$')
    throw std::invalid_argument("an in-process client id must start with '$': " + client_id);
  in_process_[client_id] = std::move(policy);
}

bool Broker::in_process(std::string_view client_id) const {
  return !client_id.empty() && client_id.front() == '$' && in_process_.find(client_id) != in_process_.end();
}

SessionPolicy* Broker::policy_of(const Session& s) const {
  const std::string& id = s.client_id();
  if (in_process_.empty() || id.empty() || id.front() != '$') return nullptr;
  auto it = in_process_.find(std::string_view(id));
  return it == in_process_.end() ? nullptr : it->second.get();
}

}  // namespace petrel::broker
