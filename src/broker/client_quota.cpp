// Client::refuse_publish: a QoS 1/2 PUBLISH that an in-process session (a
// bridge whose offline queue is full, broker/in_process.hpp) had no room
// for. petrel promises that what it acknowledges reaches the bridge's
// remote, so this message is not acknowledged as accepted: a v5 publisher
// gets PUBACK/PUBREC 0x97 Quota exceeded; MQTT 3.1.1 has no negative
// acknowledgement, so a 3.x publisher's connection is closed without one
// and the publisher sends the message again after it reconnects. Other
// subscribers that had room got the message (docs/bridges.md).
// Kept apart from client.cpp, the hot path, which this rare path only calls.
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "broker/client.hpp"

namespace petrel::broker {

void Client::refuse_publish(const mqtt::PublishView& p) {
  if (p.qos == 2) {
    // The flow ends with this PUBREC (or the connection): the packet id
    // must not stay awaiting a PUBREL, or the publisher's next message with
    // that id would be taken for a resend and not routed.
    std::lock_guard lock(session_->mutex);
    if (session_->inbound_qos2.erase(p.packet_id) && session_->persistent())
      broker_.session_store().inbound_qos2_removed(client_id(), p.packet_id);
  }
  if (version_ == mqtt::Version::V5) {
    spdlog::debug("client {}: QoS {} PUBLISH to '{}' refused (0x97): a bridge's queue is full", client_id(), p.qos,
                  p.topic);
    send_ack(p.qos == 1 ? mqtt::PacketType::Puback : mqtt::PacketType::Pubrec, p.packet_id,
             mqtt::ReasonCode::QuotaExceeded);
    return;
  }
  end(true,
      fmt::format("QoS {} PUBLISH to '{}' refused: a bridge's queue is full, and MQTT 3.1.1 has no negative "
                  "acknowledgement",
                  p.qos, p.topic),
      mqtt::ReasonCode::QuotaExceeded);
}

}  // namespace petrel::broker
