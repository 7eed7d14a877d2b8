// broker::Client: the MQTT protocol state machine of one network connection.
// It turns the bytes a connection receives into packets (through the codec),
// acts on them against the Broker (connect, publish, subscribe, acks), and
// writes its answers and deliveries through the connection's Transport. It
// owns the per-connection state (protocol version, keep alive, topic aliases,
// the peer's limits); the per-client-id state lives in its Session.
//
// A CONNECT is decided by the broker's Authorizer, which may answer later:
// meanwhile the client is Authenticating, further packets wait in the frame
// reader, and the connection stops reading (awaiting_decision()). With
// enhanced authentication the Authorizer may ask for more (AUTH packets)
// before it decides, and a connected client may re-authenticate.
//
// Threading: every method runs on the connection's event loop.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "broker/broker.hpp"
#include "broker/held_back.hpp"
#include "mqtt/codec.hpp"

namespace petrel::broker {

class Client {
 public:
  Client(Broker& broker, Transport& transport);
  ~Client();

  // Bytes from the peer.
  void on_bytes(std::string_view data);
  // Deliver what the session has queued, within the flow-control window.
  void flush();
  // The server ends the connection (takeover, shutdown, an operator).
  void kick(mqtt::ReasonCode reason);
  // The keep-alive or CONNECT deadline passed.
  void on_timeout();
  // The network connection is gone; `why` says how, for the log.
  void on_closed(std::string_view why);
  // An unexpected exception escaped the handling of this connection (a bug,
  // std::bad_alloc): the connection ends as after a protocol error, v5
  // clients get DISCONNECT 0x80, the will is published. The caller (the
  // connection's boundary, net::Connection::dispatch) counts and logs it.
  void on_internal_error(std::string_view what);

  bool connected() const { return state_ == State::Connected; }
  bool closing() const { return state_ == State::Closing; }
  // The CONNECT waits for the authorizer: read nothing more until it answers.
  bool awaiting_decision() const { return state_ == State::Authenticating; }
  // The keep alive in force (0 = none). The connection closes after 1.5x.
  std::uint16_t keep_alive() const { return keep_alive_; }
  // The client id once CONNECT is decoded (assigned, if the client sent none); "" before.
  const std::string& client_id() const;
  // On a listener with identity_as_username, the user name comes from the
  // verified client certificate only (none if the client sent none); the
  // CONNECT's user name is ignored. Set before CONNECT arrives.
  void set_certificate_identity(std::optional<std::string> identity) {
    identity_from_certificate_ = true;
    if (identity) certificate_identity_ = std::make_unique<std::string>(std::move(*identity));
  }
  // Packets held back until the store has committed what they acknowledge;
  // the connection stops reading while too many are.
  std::size_t held_back() const { return held_.size(); }

 private:
  // AuthExchange: enhanced authentication before CONNACK, awaiting the
  // client's next AUTH (Authenticating: awaiting the authorizer).
  enum class State : std::uint8_t { AwaitConnect, Authenticating, AuthExchange, Connected, Closing };
  struct PendingConnect;

  void process();
  void handle(const mqtt::Frame& frame);
  void handle_connect(const mqtt::Frame& frame);
  void on_authenticated(const ConnectDecision& decision);
  // Enhanced authentication (MQTT 5.0 4.12): the AUTH packets of the
  // exchange before CONNACK, and re-authentication once connected.
  void handle_auth_exchange(const mqtt::Frame& frame);
  void on_auth(const mqtt::Auth& a);
  void on_reauthenticated(const ConnectDecision& decision);
  void send_auth(mqtt::ReasonCode reason, const std::optional<std::string>& data);
  // A callback for the authorizer's later answer: runs `then` on this
  // connection's loop (if it is still there), then reads on.
  Authorizer::Later on_loop(void (Client::*then)(const ConnectDecision&));
  void complete_connect(PendingConnect& p);
  void on_publish(mqtt::PublishView& p);
  // A bridge's full queue refused the message (broker/in_process.hpp): not
  // acknowledged as accepted (client_quota.cpp).
  void refuse_publish(const mqtt::PublishView& p);
  void on_puback(const mqtt::AckView& a);
  void on_subscribe(const mqtt::Subscribe& s);
  void on_unsubscribe(const mqtt::Unsubscribe& u);
  void on_disconnect(const mqtt::Disconnect& d);

  bool within_topic_limits(std::string_view topic) const;
  // `log`: at warn level (false: the authorizer logged it already, rate-limited).
  void refuse_connect(mqtt::Version v, mqtt::ReasonCode rc, std::string_view why, bool log = true);
  void fail(mqtt::ReasonCode rc, std::string_view why);
  void end(bool publish_will, std::string_view why, mqtt::ReasonCode reason = mqtt::ReasonCode::Success);
  // Encodes and sends a packet other than a delivery; false if even without
  // its optional properties it exceeds the client's Maximum Packet Size (the
  // connection is then closed).
  bool send(const mqtt::Packet& p);
  // PUBACK, PUBREC, PUBREL or PUBCOMP without properties, the common case.
  void send_ack(mqtt::PacketType type, std::uint16_t packet_id, mqtt::ReasonCode reason);
  // Encodes `p` into the scratch buffer, without its Reason String and User
  // Properties if it must to fit the client's Maximum Packet Size; false if
  // it does not fit even so.
  bool encode_fitting(const mqtt::Packet& p);
  // Every byte for the peer goes through these: straight to the transport,
  // or behind packets held back for durability (the peer sees them in order).
  void out(std::string_view bytes);
  void out_payload(const MessagePtr& message, std::string_view bytes);

  // Durability, in one place: take a mark of the store's journal before
  // acting on a packet, then hold_if_stored_since(mark): if acting reported
  // changes to a store whose acknowledgements wait for commits, what is sent
  // from then on (the ack) waits until they are committed.
  std::uint64_t store_mark() const { return broker_.session_store().thread_ticket(); }
  void hold_if_stored_since(std::uint64_t mark);
  // What is sent from now on waits until the store has committed `ticket`.
  void hold_until(std::uint64_t ticket);
  void release_held();
  // A connection that ends while its CONNACK is held back sends it anyway
  // (with what queued behind it, none of which waits for the disk): a
  // client must see CONNACK before DISCONNECT, and a taken-over or
  // shut-down session has nothing left to promise.
  void send_held_connack();
  void send_publish(const Delivery& d, std::uint16_t packet_id, bool dup);
  void resend_inflight();

  Broker& broker_;
  Transport& transport_;
  mqtt::FrameReader reader_;
  // The small fields together: one Client per connection pays for padding.
  State state_ = State::AwaitConnect;
  mqtt::Version version_ = mqtt::Version::V311;
  bool identity_from_certificate_ = false;
  bool connack_held_ = false;  // held_.front() starts with the CONNACK
  std::uint16_t keep_alive_ = 0;
  // The peer's limits (MQTT 5 CONNECT properties).
  std::uint16_t peer_receive_maximum_ = 65535;
  std::uint16_t peer_topic_alias_maximum_ = 0;
  std::uint32_t peer_max_packet_size_ = 268'435'460;
  std::uint32_t initial_expiry_ = 0;
  std::unique_ptr<std::string> certificate_identity_;  // until CONNECT (TLS listeners with identity_as_username)
  IdentityPtr identity_;  // once CONNECT is accepted
  SessionPtr session_;
  std::uint64_t generation_ = 0;
  // The CONNECT while the authorizer decides.
  std::unique_ptr<PendingConnect> pending_;
  // Enhanced authentication: the CONNECT's method, the state of the exchange
  // in progress, and whether a re-authentication is. Allocated only for a
  // CONNECT with an Authentication Method: every idle connection would pay
  // 56 bytes for what few use.
  struct EnhancedAuth {
    std::string method;
    std::shared_ptr<const AuthContext> exchange;
    bool reauthenticating = false;
  };
  std::unique_ptr<EnhancedAuth> enhanced_;
  // Topic aliases: from the peer (alias -> topic) and to the peer (topic -> alias).
  // Allocated on first use: most connections never use topic aliases, and
  // two empty maps would cost every connection 112 bytes.
  struct Aliases {
    std::unordered_map<std::uint16_t, std::string> inbound;
    std::unordered_map<std::string, std::uint16_t> outbound;
  };
  std::unique_ptr<Aliases> aliases_;
  Aliases& aliases() {
    if (!aliases_) aliases_ = std::make_unique<Aliases>();
    return *aliases_;
  }
  HeldBack held_;
};

}  // namespace petrel::broker
