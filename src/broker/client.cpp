#include "broker/client.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <random>

#include "broker/fault.hpp"
#include "mqtt/topic.hpp"
#include "mqtt/wire.hpp"

namespace petrel::broker {

namespace {
// Encoding buffer, one per thread rather than per connection: an idle
// connection keeps no capacity around.
thread_local std::string scratch;
}  // namespace

using mqtt::ReasonCode;
using mqtt::Version;

namespace {

// Bytes a delivery may hold in the connection's write queue before flush()
// stops pulling from the session queue (back-pressure to the session queue).
constexpr std::size_t kWriteHighWater = 1 << 20;
// Payloads up to this size are copied into the connection's write buffer;
// larger ones are written from the message (no copy, one more iovec).
constexpr std::size_t kCopyPayloadMax = 1024;

std::string assigned_client_id() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  return fmt::format("petrel-{:016x}", rng());
}

bool is_sys_topic(std::string_view topic) { return topic.substr(0, 4) == "$SYS"; }

template <class T>
std::size_t user_property_count(const T& packet) {
  if constexpr (requires { packet.properties; }) {
    return packet.properties.user_properties.size();
  } else {
    return 0;
  }
}

}  // namespace

// A CONNECT accepted by the protocol checks, waiting for access control.
struct Client::PendingConnect {
  mqtt::Connack ack;
  std::uint32_t expiry = 0;
  bool clean_start = true;
  std::optional<WillMessage> will;
  IdentityPtr identity;
};

Client::Client(Broker& broker, Transport& transport)
    : broker_(broker), transport_(transport), reader_(broker.config().max_packet_size) {}

Client::~Client() = default;

const std::string& Client::client_id() const {
  static const std::string unknown;
  if (identity_) return identity_->client_id;
  if (pending_) return pending_->identity->client_id;
  return unknown;
}

// ----------------------------------------------------------------- input --

void Client::on_bytes(std::string_view data) {
  if (state_ == State::Closing) return;
  reader_.borrow(data);
  process();
  reader_.keep_rest();  // `data` is the loop's read buffer: keep only what is left over
}

void Client::process() {
  try {
    // While Authenticating, frames wait in the reader (a client may send
    // packets before it sees its CONNACK).
    while (state_ == State::AwaitConnect || state_ == State::AuthExchange || state_ == State::Connected) {
      auto frame = reader_.next();
      if (!frame) break;
      handle(*frame);
    }
  } catch (const mqtt::ProtocolError& e) {
    fail(e.code(), e.what());
  }
}

void Client::handle(const mqtt::Frame& frame) {
  Stats::add(broker_.stats().messages_received);
  if (state_ == State::AwaitConnect) {
    handle_connect(frame);
    return;
  }
  if (state_ == State::AuthExchange) {
    handle_auth_exchange(frame);
    return;
  }
  const mqtt::DecodeOptions options{.sender = mqtt::Sender::Client,
                                    .enhanced_auth = enhanced_ != nullptr,
                                    .allow_control_characters = broker_.config().allow_control_characters};
  if (frame.type() == mqtt::PacketType::Publish) {
    // The hot path: no Packet variant, topic and payload stay views into the
    // frame until the message is made.
    mqtt::PublishView p = mqtt::decode_publish_view(frame, version_, options);
    fault::check("packet", "PUBLISH");
    if (p.props().user_properties.size() > broker_.config().max_user_properties)
      throw mqtt::ProtocolError(ReasonCode::QuotaExceeded, fmt::format("{} user properties, more than max_user_properties",
                                                                       p.props().user_properties.size()));
    on_publish(p);
    return;
  }
  if (frame.type() >= mqtt::PacketType::Puback && frame.type() <= mqtt::PacketType::Pubcomp) {
    // The other half of the hot path (QoS 1/2): type, packet id and reason,
    // without a Packet or its Properties.
    const mqtt::AckView a = mqtt::decode_ack(frame, version_);
    fault::check("packet", mqtt::to_string(a.type));
    if (a.user_properties > broker_.config().max_user_properties)
      throw mqtt::ProtocolError(ReasonCode::QuotaExceeded,
                                fmt::format("{} user properties, more than max_user_properties", a.user_properties));
    on_puback(a);
    return;
  }
  // Packet types a client never sends (and AUTH, unless the CONNECT started
  // enhanced authentication) are refused from the first byte, before the body.
  mqtt::Packet packet = mqtt::decode(frame, version_, options);
  fault::check("packet", mqtt::to_string(mqtt::packet_type(packet)));
  const std::size_t user_properties = std::visit([](const auto& p) { return user_property_count(p); }, packet);
  if (user_properties > broker_.config().max_user_properties)
    throw mqtt::ProtocolError(ReasonCode::QuotaExceeded,
                              fmt::format("{} user properties, more than max_user_properties", user_properties));
  std::visit(
      [&](auto& p) {
        using T = std::decay_t<decltype(p)>;
        if constexpr (std::is_same_v<T, mqtt::Subscribe>) {
          on_subscribe(p);
        } else if constexpr (std::is_same_v<T, mqtt::Unsubscribe>) {
          on_unsubscribe(p);
        } else if constexpr (std::is_same_v<T, mqtt::Pingreq>) {
          send(mqtt::Pingresp{});
        } else if constexpr (std::is_same_v<T, mqtt::Disconnect>) {
          on_disconnect(p);
        } else if constexpr (std::is_same_v<T, mqtt::Auth>) {
          on_auth(p);
        } else {
          // A second CONNECT, AUTH (without enhanced authentication) and the
          // packets only servers send: the decoder refused them already,
          // from the first byte (DecodeOptions::sender).
          mqtt::protocol_error(fmt::format("unexpected {}", mqtt::to_string(mqtt::packet_type(packet))));
        }
      },
      packet);
}

// -------------------------------------------------------------- CONNECT --

void Client::handle_connect(const mqtt::Frame& frame) {
  // Which CONNACK format to answer errors in: v5 if the packet says so.
  const bool looks_v5 =
      frame.body.size() > 6 && frame.body.substr(0, 6) == std::string_view("\0\4MQTT", 6) && frame.body[6] == 5;
  mqtt::Connect c;
  try {
    c = mqtt::decode_connect(frame, {.allow_control_characters = broker_.config().allow_control_characters});
  } catch (const mqtt::ProtocolError& e) {
    if (e.code() == ReasonCode::UnsupportedProtocolVersion) {
      refuse_connect(Version::V311, e.code(), e.what());
    } else if (looks_v5) {
      refuse_connect(Version::V5, e.code(), e.what());
    } else {
      end(false, fmt::format("invalid CONNECT: {}", e.what()), e.code());
    }
    return;
  }
  fault::check("packet", "CONNECT");
  version_ = c.version;
  const auto& cfg = broker_.config();
  const bool v5 = version_ == Version::V5;
  if (v5) peer_max_packet_size_ = c.properties.maximum_packet_size.value_or(268'435'460);

  if (c.client_id.empty()) {
    if (version_ == Version::V31 || (version_ == Version::V311 && !c.clean_start) || !cfg.allow_empty_client_id)
      return refuse_connect(version_, ReasonCode::ClientIdentifierNotValid, "empty client identifier");
  }
  if (c.client_id.size() > cfg.max_client_id_length)
    return refuse_connect(version_, ReasonCode::ClientIdentifierNotValid,
                          fmt::format("client identifier of {} bytes, above max_client_id_length {}",
                                      c.client_id.size(), cfg.max_client_id_length));
  if (broker_.in_process(c.client_id))
    return refuse_connect(version_, ReasonCode::ClientIdentifierNotValid, "client identifier of a bridge");
  if (c.properties.user_properties.size() > cfg.max_user_properties ||
      (c.will && c.will->properties.user_properties.size() > cfg.max_user_properties))
    return refuse_connect(version_, ReasonCode::QuotaExceeded, "more user properties than max_user_properties");
  if (c.properties.authentication_method) {
    if (!broker_.authorizer().offers_method(*c.properties.authentication_method))
      return refuse_connect(version_, ReasonCode::BadAuthenticationMethod,
                            fmt::format("unsupported authentication method '{}'", *c.properties.authentication_method));
    enhanced_ = std::make_unique<EnhancedAuth>();
    enhanced_->method = *c.properties.authentication_method;
  }
  if (c.will && (!mqtt::valid_topic_name(c.will->topic) || !within_topic_limits(c.will->topic)))
    return refuse_connect(version_, ReasonCode::TopicNameInvalid, "invalid will topic");
  if (c.will && c.will->properties.response_topic && !mqtt::valid_topic_name(*c.will->properties.response_topic))
    return refuse_connect(version_, ReasonCode::ProtocolError, "will response topic is not a valid topic name");
  if (c.will && c.will->qos > cfg.max_qos)
    return refuse_connect(version_, ReasonCode::QoSNotSupported, "will QoS above maximum QoS");
  if (c.will && c.will->retain && !cfg.retain_available)
    return refuse_connect(version_, ReasonCode::RetainNotSupported, "will retain not supported");

  auto p = std::make_unique<PendingConnect>();
  mqtt::Connack& ack = p->ack;
  keep_alive_ = c.keep_alive;
  if (c.keep_alive > cfg.max_keep_alive || (c.keep_alive == 0 && cfg.max_keep_alive < 65535)) {
    if (!v5) {
      return refuse_connect(version_, ReasonCode::ClientIdentifierNotValid,
                            fmt::format("keep alive {} exceeds the maximum {}", c.keep_alive, cfg.max_keep_alive));
    }
    keep_alive_ = cfg.max_keep_alive;
    ack.properties.server_keep_alive = keep_alive_;
  }

  std::uint32_t expiry = 0;
  if (v5) {
    expiry = c.properties.session_expiry_interval.value_or(0);
    initial_expiry_ = expiry;  // as requested: DISCONNECT may not raise it from 0
    if (expiry > cfg.max_session_expiry) {
      expiry = cfg.max_session_expiry;
      ack.properties.session_expiry_interval = expiry;
    }
    peer_receive_maximum_ = c.properties.receive_maximum.value_or(65535);
    peer_topic_alias_maximum_ = c.properties.topic_alias_maximum.value_or(0);
  } else {
    expiry = c.clean_start ? 0 : std::min<std::uint32_t>(0xFFFFFFFF, cfg.max_session_expiry);
  }
  p->expiry = expiry;
  p->clean_start = c.clean_start;

  const bool assigned = c.client_id.empty();
  std::string client_id = assigned ? assigned_client_id() : std::move(c.client_id);
  if (assigned && v5) ack.properties.assigned_client_identifier = client_id;

  if (c.will) {
    const std::uint32_t delay = c.will->properties.will_delay_interval.value_or(0);
    c.will->properties.will_delay_interval.reset();
    p->will = WillMessage{std::move(*c.will), client_id, delay};
  }

  auto identity = std::make_shared<ClientIdentity>();
  identity->client_id = std::move(client_id);
  if (identity_from_certificate_) {
    if (certificate_identity_) identity->username = *certificate_identity_;
    identity->username_from_certificate = certificate_identity_ != nullptr;
    certificate_identity_.reset();
  } else {
    identity->username = c.username;
  }
  identity->listener = transport_.listener();
  identity->peer = transport_.peer();
  identity->version = version_;
  identity->keep_alive = keep_alive_;
  identity->clean_start = c.clean_start;
  identity->connected_at = std::chrono::system_clock::now();
  p->identity = std::move(identity);

  // Access control decides, now or later (broker/authorizer.hpp). A later
  // answer comes back through the connection's own loop, and only if the
  // connection is still there.
  state_ = State::Authenticating;
  pending_ = std::move(p);
  const ConnectRequest request{*pending_->identity, c.password, c.properties};
  auto decision = broker_.authorizer().authenticate(request, on_loop(&Client::on_authenticated));
  if (decision) on_authenticated(*decision);
}

Authorizer::Later Client::on_loop(void (Client::*then)(const ConnectDecision&)) {
  return [link = std::weak_ptr<SessionLink>(transport_.shared_link()), this, then](ConnectDecision d) {
    if (auto l = link.lock()) {
      l->post([this, then, d = std::move(d)] {
        (this->*then)(d);
        process();  // packets that arrived while the decision was pending
      });
    }
  };
}

void Client::on_authenticated(const ConnectDecision& decision) {
  if (state_ != State::Authenticating) return;
  if (decision.reason == ReasonCode::ContinueAuthentication && enhanced_) {
    // Enhanced authentication goes on: the client answers with AUTH.
    enhanced_->exchange = decision.context;
    state_ = State::AuthExchange;
    send_auth(ReasonCode::ContinueAuthentication, decision.auth_data);
    return;
  }
  if (enhanced_) enhanced_->exchange.reset();
  auto p = std::move(pending_);
  if (decision.reason != ReasonCode::Success) {
    Stats::add(broker_.stats().connect_denied);
    return refuse_connect(version_, decision.reason,
                          decision.why.empty() ? std::string("refused by access control") : decision.why,
                          !decision.logged);
  }
  if (decision.context || decision.username) {
    // The identity is immutable once shared: attach the context to a copy.
    auto identity = std::make_shared<ClientIdentity>(*p->identity);
    identity->auth = decision.context;
    if (decision.username) identity->username = decision.username;
    p->identity = std::move(identity);
  }
  if (enhanced_) {
    p->ack.properties.authentication_method = enhanced_->method;
    p->ack.properties.authentication_data = decision.auth_data;
  }
  complete_connect(*p);
}

// ------------------------------------------------- enhanced authentication --

void Client::send_auth(ReasonCode reason, const std::optional<std::string>& data) {
  mqtt::Auth a{reason, {}};
  a.properties.authentication_method = enhanced_->method;  // only sent with enhanced authentication
  a.properties.authentication_data = data;
  send(a);
}

void Client::handle_auth_exchange(const mqtt::Frame& frame) {
  // Before CONNACK a client may send only AUTH and DISCONNECT (MQTT 5.0 4.12);
  // anything else is a Protocol Error, answered with CONNACK.
  try {
    mqtt::Packet packet = mqtt::decode(frame, version_,
                                       {.sender = mqtt::Sender::Client,
                                        .enhanced_auth = true,
                                        .allow_control_characters = broker_.config().allow_control_characters});
    if (std::holds_alternative<mqtt::Disconnect>(packet)) {
      end(false, "client sent DISCONNECT during authentication");
      return;
    }
    const auto* a = std::get_if<mqtt::Auth>(&packet);
    if (!a) mqtt::protocol_error(fmt::format("{} during authentication", mqtt::to_string(mqtt::packet_type(packet))));
    if (a->reason != ReasonCode::ContinueAuthentication)
      mqtt::protocol_error("AUTH during authentication must continue it (0x18)");
    if (a->properties.authentication_method != enhanced_->method)
      mqtt::protocol_error("AUTH with another Authentication Method than the CONNECT's");
    state_ = State::Authenticating;
    const AuthStep step{*pending_->identity, enhanced_->exchange, enhanced_->method, a->properties.authentication_data,
                        false};
    auto decision = broker_.authorizer().authenticate_step(step, on_loop(&Client::on_authenticated));
    if (decision) on_authenticated(*decision);
  } catch (const mqtt::ProtocolError& e) {
    Stats::add(broker_.stats().protocol_errors);
    refuse_connect(Version::V5, e.code() == ReasonCode::MalformedPacket ? e.code() : ReasonCode::ProtocolError,
                   e.what());
  }
}

void Client::on_auth(const mqtt::Auth& a) {
  // Re-authentication (MQTT 5.0 4.12.1): with the CONNECT's method, started
  // by 0x19, continued by 0x18 while the server is asking.
  // (The codec refuses AUTH from a client that did not use enhanced authentication.)
  if (!enhanced_ || a.properties.authentication_method != enhanced_->method)
    mqtt::protocol_error("AUTH with another Authentication Method than the CONNECT's");
  auto& e = *enhanced_;
  if (a.reason == ReasonCode::ReAuthenticate) {
    if (e.reauthenticating) mqtt::protocol_error("re-authentication already in progress");
    e.reauthenticating = true;
    e.exchange.reset();
  } else if (a.reason != ReasonCode::ContinueAuthentication || !e.reauthenticating || !e.exchange) {
    mqtt::protocol_error("AUTH outside a re-authentication");
  }
  const std::shared_ptr<const AuthContext> exchange = std::exchange(e.exchange, nullptr);
  const AuthStep step{*identity_, exchange, e.method, a.properties.authentication_data, true};
  auto decision = broker_.authorizer().authenticate_step(step, on_loop(&Client::on_reauthenticated));
  if (decision) on_reauthenticated(*decision);
}

void Client::on_reauthenticated(const ConnectDecision& decision) {
  if (state_ != State::Connected || !enhanced_ || !enhanced_->reauthenticating) return;
  if (decision.reason == ReasonCode::ContinueAuthentication) {
    enhanced_->exchange = decision.context;
    send_auth(ReasonCode::ContinueAuthentication, decision.auth_data);
    return;
  }
  enhanced_->reauthenticating = false;
  enhanced_->exchange.reset();
  if (decision.reason == ReasonCode::Success) {
    spdlog::info("client re-authenticated: id={} peer={}", client_id(), transport_.peer());
    send_auth(ReasonCode::Success, decision.auth_data);
    return;
  }
  // A failed re-authentication ends the connection (MQTT 5.0 4.12.1).
  Stats::add(broker_.stats().connect_denied);
  send(mqtt::Disconnect{decision.reason, {}});
  end(true, fmt::format("re-authentication refused: {}", decision.why), decision.reason);
}

void Client::complete_connect(PendingConnect& p) {
  const auto& cfg = broker_.config();
  const bool v5 = version_ == Version::V5;
  mqtt::Connack& ack = p.ack;
  if (v5) {
    if (cfg.receive_maximum != 65535) ack.properties.receive_maximum = cfg.receive_maximum;
    ack.properties.maximum_packet_size = cfg.max_packet_size;
    if (cfg.topic_alias_maximum) ack.properties.topic_alias_maximum = cfg.topic_alias_maximum;
    if (cfg.max_qos < 2) ack.properties.maximum_qos = cfg.max_qos;
    if (!cfg.retain_available) ack.properties.retain_available = 0;
  }
  // A CONNACK that cannot fit the client's Maximum Packet Size even without
  // its Reason String and User Properties cannot be sent at all: the client
  // is closed before it is attached to a session, instead of waiting for an
  // answer that never comes.
  if (!encode_fitting(ack)) {
    spdlog::warn("connection refused: peer={} id={}: the CONNACK ({} bytes) exceeds the client's Maximum Packet "
                 "Size {}",
                 transport_.peer(), client_id(), scratch.size(), peer_max_packet_size_);
    state_ = State::Closing;
    transport_.close(ReasonCode::PacketTooLarge);
    return;
  }
  identity_ = p.identity;
  const std::uint64_t mark = store_mark();
  auto attached = broker_.attach(identity_, p.clean_start, p.expiry, std::move(p.will), transport_.shared_link());
  session_ = attached.session;
  generation_ = attached.generation;
  state_ = State::Connected;
  ack.session_present = attached.session_present;
  // A persistent session is acknowledged once it is stored: a client told
  // "session present" after a crash must find what it was told about.
  if (p.expiry > 0) {
    hold_if_stored_since(mark);
    connack_held_ = !held_.empty();
  }
  if (!send(ack)) return;
  spdlog::info("client connected: id={} peer={} protocol={} clean_start={} keep_alive={} session_present={}{}",
               client_id(), transport_.peer(), mqtt::to_string(version_), p.clean_start, keep_alive_,
               attached.session_present,
               identity_->username ? fmt::format(" user={}", *identity_->username) : std::string());
  if (attached.session_present) resend_inflight();
  flush();
}

bool Client::within_topic_limits(std::string_view topic) const {
  const auto& cfg = broker_.config();
  if (topic.size() > cfg.max_topic_length) return false;
  // A topic of n bytes has at most n + 1 levels: short ones need no count.
  if (topic.size() + 1 <= cfg.max_topic_levels) return true;
  return static_cast<std::size_t>(std::count(topic.begin(), topic.end(), '/')) + 1 <= cfg.max_topic_levels;
}

void Client::refuse_connect(Version v, ReasonCode rc, std::string_view why, bool log) {
  mqtt::Connack ack;
  ack.reason = rc;
  std::string out;
  mqtt::encode(ack, v, out);
  // Even a refusal may not exceed the client's Maximum Packet Size
  // [MQTT-3.1.2-24]; sending it is only a MAY: close without it.
  if (out.size() <= peer_max_packet_size_) this->out(out);
  Stats::add(broker_.stats().protocol_errors);
  spdlog::log(log ? spdlog::level::warn : spdlog::level::debug,
              "connection refused: peer={} id={} reason={} (0x{:02X}): {}", transport_.peer(), client_id(),
              mqtt::to_string(rc), static_cast<unsigned>(rc), why);
  state_ = State::Closing;
  transport_.close(rc);
}

// -------------------------------------------------------------- PUBLISH --

void Client::on_publish(mqtt::PublishView& p) {
  const auto& cfg = broker_.config();
  Stats::add(broker_.stats().publish_received);
  if (p.qos > cfg.max_qos) throw mqtt::ProtocolError(ReasonCode::QoSNotSupported, "QoS above maximum QoS");
  if (p.retain && !cfg.retain_available)
    throw mqtt::ProtocolError(ReasonCode::RetainNotSupported, "retain not supported");
  if (!within_topic_limits(p.topic))
    throw mqtt::ProtocolError(ReasonCode::TopicNameInvalid, "topic longer or deeper than the configured limits");
  if (!p.props().subscription_identifiers.empty())
    mqtt::protocol_error("subscription identifier in a PUBLISH from a client");  // [MQTT-3.3.4-6]
  if (p.props().response_topic && !mqtt::valid_topic_name(*p.props().response_topic))
    mqtt::protocol_error("response topic is not a valid topic name");  // [MQTT-3.3.2-14]
  if (auto alias = p.props().topic_alias) {
    if (*alias > cfg.topic_alias_maximum)
      throw mqtt::ProtocolError(ReasonCode::TopicAliasInvalid,
                                fmt::format("topic alias {} above maximum {}", *alias, cfg.topic_alias_maximum));
    if (p.topic.empty()) {
      auto& inbound = aliases().inbound;
      auto it = inbound.find(*alias);
      if (it == inbound.end()) mqtt::protocol_error(fmt::format("unknown topic alias {}", *alias));
      p.topic = it->second;  // the map is not changed again while this packet is handled
    } else {
      aliases().inbound[*alias] = std::string(p.topic);
    }
  }

  if (p.retain && !p.payload.empty() && broker_.retained_quota_exceeded(p.topic)) {
    // Storing it would exceed max_retained_messages: refuse the publish.
    spdlog::warn("client {}: retained message on '{}' refused: max_retained_messages reached", client_id(), p.topic);
    if (p.qos > 0) send_ack(p.qos == 1 ? mqtt::PacketType::Puback : mqtt::PacketType::Pubrec, p.packet_id,
                            ReasonCode::QuotaExceeded);
    return;
  }
  if (!broker_.authorizer().may_publish(*identity_, p.topic, p.qos, p.retain)) {
    // As Mosquitto does: acknowledged and dropped (v5: with 0x87).
    Stats::add(broker_.stats().publish_denied);
    spdlog::debug("client {}: PUBLISH to '{}' not authorized, dropped", client_id(), p.topic);
    if (p.qos > 0) send_ack(p.qos == 1 ? mqtt::PacketType::Puback : mqtt::PacketType::Pubrec, p.packet_id,
                            ReasonCode::NotAuthorized);
    return;
  }
  // With a durable store, the ack waits until what this PUBLISH changed
  // (deliveries to persistent sessions, the retained message, the QoS 2
  // packet id) is committed.
  auto& store = broker_.session_store();
  const bool acks_wait = p.qos > 0 && store.acks_wait();
  const std::uint64_t mark = store_mark();
  // A QoS 2 packet id and the deliveries it routed are committed together:
  // after a crash the resent PUBLISH is either known with all its
  // deliveries, or unknown and routed again (and none was sent).
  struct Group {
    SessionStore& store;
    std::uint64_t id;
    ~Group() {
      if (id) store.end_group(id);
    }
  } group{store, p.qos == 2 && acks_wait ? store.begin_group() : 0};
  if (p.qos == 2) {
    std::lock_guard lock(session_->mutex);
    if (session_->inbound_qos2.contains(p.packet_id)) {
      // A retransmission of a message already received: acknowledge only.
      send_ack(mqtt::PacketType::Pubrec, p.packet_id, ReasonCode::Success);
      return;
    }
    if (version_ == Version::V5 && session_->inbound_qos2.size() >= cfg.receive_maximum)
      throw mqtt::ProtocolError(ReasonCode::ReceiveMaximumExceeded,
                                "more QoS 2 messages in flight than Receive Maximum");
    session_->inbound_qos2.insert(p.packet_id);
    if (session_->persistent()) store.inbound_qos2_added(client_id(), p.packet_id);
  }

  Broker::Routed routed;
  if (!is_sys_topic(p.topic)) {
    // The one copy of topic and payload, into the message every receiver shares.
    auto message = p.properties ? Message::create(p.topic, p.payload, p.qos, p.retain, *p.properties, client_id())
                                : Message::create(p.topic, p.payload, p.qos, p.retain, client_id());
    routed = broker_.route(message);
  }
  const std::size_t receivers = routed.receivers;
  if (routed.refused && p.qos > 0) return refuse_publish(p);

  if (p.qos > 0) {
    hold_if_stored_since(mark);
    send_ack(p.qos == 1 ? mqtt::PacketType::Puback : mqtt::PacketType::Pubrec, p.packet_id,
             receivers == 0 ? ReasonCode::NoMatchingSubscribers : ReasonCode::Success);
  }
}

void Client::send_ack(mqtt::PacketType type, std::uint16_t packet_id, ReasonCode reason) {
  // PUBACK, PUBREC, PUBREL, PUBCOMP without properties: 4 bytes (v5: 5 with a
  // reason code other than 0), built here rather than through the generic
  // encoder, once per QoS 1/2 message.
  const bool v5 = version_ == Version::V5;
  const bool with_reason = v5 && reason != ReasonCode::Success;
  const std::uint8_t first = static_cast<std::uint8_t>(static_cast<unsigned>(type) << 4) |
                             (type == mqtt::PacketType::Pubrel ? 0x02 : 0x00);
  const char bytes[5] = {static_cast<char>(first), static_cast<char>(with_reason ? 3 : 2),
                         static_cast<char>(packet_id >> 8), static_cast<char>(packet_id & 0xFF),
                         static_cast<char>(reason)};
  out(std::string_view(bytes, with_reason ? 5 : 4));
  Stats::add(broker_.stats().messages_sent);
}

void Client::on_puback(const mqtt::AckView& a) {
  using mqtt::PacketType;
  std::optional<mqtt::PubAck> reply;
  auto& store = broker_.session_store();
  const std::uint64_t mark = store_mark();
  {
    std::lock_guard lock(session_->mutex);
    if (session_->generation != generation_) return;
    const bool persistent = session_->persistent();
    auto forget = [&](std::map<std::uint16_t, Inflight>::iterator it) {
      if (it->second.delivery.store_id)
        store.delivery_removed(it->second.delivery.store_id, *it->second.delivery.message);
      session_->inflight.erase(it);
    };
    if (a.type == PacketType::Pubrel) {
      const bool known = session_->inbound_qos2.erase(a.packet_id) > 0;
      if (known && persistent) store.inbound_qos2_removed(client_id(), a.packet_id);
      reply = mqtt::PubAck{
          PacketType::Pubcomp, a.packet_id, known ? ReasonCode::Success : ReasonCode::PacketIdentifierNotFound, {}};
    } else {
      auto it = session_->inflight.find(a.packet_id);
      const bool found = it != session_->inflight.end();
      // An acknowledgement of the wrong kind for a message in flight leaves
      // its state half-done: a protocol violation (docs/architecture.md,
      // "Acknowledgements"). An unknown packet id is not: PUBREC gets PUBREL
      // 0x92, and a late PUBACK or PUBCOMP is ignored.
      auto wrong = [&](std::string_view expected) {
        mqtt::protocol_error(fmt::format("{} for packet id {}, which awaits {}", mqtt::to_string(a.type),
                                         a.packet_id, expected));
      };
      auto awaited = [&] {
        switch (it->second.state) {
          case OutState::AwaitPuback: return "PUBACK";
          case OutState::AwaitPubrec: return "PUBREC";
          case OutState::AwaitPubcomp: return "PUBCOMP";
        }
        return "?";
      };
      switch (a.type) {
        case PacketType::Puback:
          if (found && it->second.state != OutState::AwaitPuback) wrong(awaited());
          if (found) forget(it);
          break;
        case PacketType::Pubrec:
          if (!found) {
            reply = mqtt::PubAck{PacketType::Pubrel, a.packet_id, ReasonCode::PacketIdentifierNotFound, {}};
          } else if (it->second.state == OutState::AwaitPuback) {
            wrong("PUBACK");
          } else if (static_cast<unsigned>(a.reason) >= 0x80) {
            forget(it);  // the receiver refused it: the flow ends here
          } else {
            // PUBREC again after PUBREL was sent: PUBREL again.
            it->second.state = OutState::AwaitPubcomp;
            if (it->second.delivery.store_id)
              store.delivery_state(it->second.delivery.store_id, a.packet_id, OutState::AwaitPubcomp);
            reply = mqtt::PubAck{PacketType::Pubrel, a.packet_id, ReasonCode::Success, {}};
          }
          break;
        case PacketType::Pubcomp:
          if (found && it->second.state != OutState::AwaitPubcomp) wrong(awaited());
          if (found) forget(it);
          break;
        default: break;
      }
    }
  }
  if (reply) {
    // PUBREL (our QoS 2 delivery moved on) and PUBCOMP (an inbound id
    // released) go out once that state is stored; else a crash would make
    // petrel resend a PUBLISH the receiver has released, or take a new
    // PUBLISH reusing the id for a resend.
    hold_if_stored_since(mark);
    send_ack(reply->type, reply->packet_id, reply->reason);
  }
  flush();
}

// ------------------------------------------------------------ SUBSCRIBE --

void Client::on_subscribe(const mqtt::Subscribe& s) {
  const auto& cfg = broker_.config();
  const std::uint32_t sub_id =
      s.properties.subscription_identifiers.empty() ? 0 : s.properties.subscription_identifiers[0];
  mqtt::Suback ack;
  ack.packet_id = s.packet_id;
  const std::uint64_t mark = store_mark();
  std::vector<std::pair<const mqtt::Subscription*, mqtt::SubscribeOptions>> retained;
  for (const auto& sub : s.subscriptions) {
    auto shared = mqtt::parse_shared(sub.filter);
    const bool valid = (shared ? mqtt::valid_shared_filter(*shared) : mqtt::valid_topic_filter(sub.filter)) &&
                       within_topic_limits(shared ? shared->filter : std::string_view(sub.filter));
    if (!valid) {
      ack.reasons.push_back(ReasonCode::TopicFilterInvalid);
      continue;
    }
    if (shared && sub.options.no_local) mqtt::protocol_error("no local on a shared subscription");
    auto options = sub.options;
    options.qos = std::min(options.qos, cfg.max_qos);
    if (!broker_.authorizer().may_subscribe(*identity_, sub.filter, options.qos)) {
      Stats::add(broker_.stats().subscribe_denied);
      spdlog::debug("client {}: subscription to '{}' not authorized", client_id(), sub.filter);
      ack.reasons.push_back(ReasonCode::NotAuthorized);
      continue;
    }
    const auto result = broker_.subscribe(session_, sub.filter, options, sub_id);
    if (result == Broker::SubscribeResult::QuotaExceeded) {
      ack.reasons.push_back(ReasonCode::QuotaExceeded);
      continue;
    }
    const bool existed = result == Broker::SubscribeResult::Replaced;
    ack.reasons.push_back(static_cast<ReasonCode>(options.qos));
    if (!shared && (options.retain_handling == 0 || (options.retain_handling == 1 && !existed)))
      retained.emplace_back(&sub, options);
  }
  // A subscription of a persistent session is acknowledged once stored.
  hold_if_stored_since(mark);
  send(ack);
  for (const auto& [sub, options] : retained)
    broker_.send_retained(session_, sub->filter, SubscriptionEntry{options, sub_id});
}

void Client::on_unsubscribe(const mqtt::Unsubscribe& u) {
  mqtt::Unsuback ack;
  ack.packet_id = u.packet_id;
  const std::uint64_t mark = store_mark();
  for (const auto& filter : u.filters) {
    auto shared = mqtt::parse_shared(filter);
    const bool valid = shared ? mqtt::valid_shared_filter(*shared) : mqtt::valid_topic_filter(filter);
    if (!valid) {
      ack.reasons.push_back(ReasonCode::TopicFilterInvalid);
      continue;
    }
    const bool existed = broker_.unsubscribe(session_, filter);
    ack.reasons.push_back(existed ? ReasonCode::Success : ReasonCode::NoSubscriptionExisted);
  }
  hold_if_stored_since(mark);
  send(ack);
}

// ----------------------------------------------------------- DISCONNECT --

void Client::on_disconnect(const mqtt::Disconnect& d) {
  if (auto expiry = d.properties.session_expiry_interval) {
    if (initial_expiry_ == 0 && *expiry != 0)
      mqtt::protocol_error("DISCONNECT sets a session expiry interval after CONNECT set 0");
    std::lock_guard lock(session_->mutex);
    if (session_->generation == generation_)
      session_->expiry_interval = std::min(*expiry, broker_.config().max_session_expiry);
  }
  const bool with_will = d.reason == ReasonCode::DisconnectWithWill;
  end(with_will, fmt::format("client sent DISCONNECT ({})", mqtt::to_string(d.reason)));
}

void Client::kick(ReasonCode reason) {
  if (state_ == State::Closing) return;
  if (state_ == State::Connected && version_ == Version::V5) send(mqtt::Disconnect{reason, {}});
  end(true, fmt::format("disconnected by server: {}", mqtt::to_string(reason)), reason);
}

void Client::on_timeout() {
  if (state_ == State::Closing) return;
  if (state_ != State::Connected) {
    // No CONNACK yet (the CONNECT, the authorizer's answer or an enhanced
    // authentication exchange took too long): closed without one.
    end(false, state_ == State::AwaitConnect ? "no CONNECT within the connect timeout"
                                             : "authentication not complete within the connect timeout");
    return;
  }
  if (version_ == Version::V5) send(mqtt::Disconnect{ReasonCode::KeepAliveTimeout, {}});
  end(true, fmt::format("keep alive timeout ({} s x 1.5)", keep_alive_), ReasonCode::KeepAliveTimeout);
}

void Client::on_closed(std::string_view why) {
  if (state_ == State::Closing) return;
  end(true, why);
}

void Client::on_internal_error(std::string_view what) {
  if (state_ == State::Closing) return;
  if (state_ == State::Connected && version_ == Version::V5) {
    mqtt::Disconnect d{ReasonCode::UnspecifiedError, {}};
    d.properties.reason_string = "internal error";
    send(d);
  }
  end(true, fmt::format("internal error: {}", what), ReasonCode::UnspecifiedError);
}

void Client::fail(ReasonCode rc, std::string_view why) {
  Stats::add(broker_.stats().protocol_errors);
  if (state_ == State::Closing) return;
  if (state_ == State::Connected && version_ == Version::V5) {
    mqtt::Disconnect d{rc, {}};
    d.properties.reason_string = std::string(why);
    send(d);
  } else if (state_ == State::AwaitConnect && rc != ReasonCode::MalformedPacket && version_ == Version::V5) {
    refuse_connect(Version::V5, rc, why);
    return;
  }
  end(true, fmt::format("{} (0x{:02X}): {}", mqtt::to_string(rc), static_cast<unsigned>(rc), why), rc);
}

void Client::end(bool publish_will, std::string_view why, ReasonCode reason) {
  const bool was_connected = state_ == State::Connected;
  state_ = State::Closing;
  send_held_connack();
  if (was_connected) {
    broker_.detach(session_, generation_, publish_will);
    spdlog::info("client disconnected: id={} peer={} reason={}", client_id(), transport_.peer(), why);
  } else {
    // Failures before CONNECT (handshakes, timeouts) are logged, rate-limited,
    // by the listener's connection; this line is for debugging.
    spdlog::debug("connection closed before CONNECT: peer={} reason={}", transport_.peer(), why);
  }
  transport_.close(reason);
}

// --------------------------------------------------------------- output --

bool Client::encode_fitting(const mqtt::Packet& p) {
  scratch.clear();
  mqtt::encode(p, version_, scratch);
  if (scratch.size() <= peer_max_packet_size_) return true;
  // MQTT 5.0 3.1.2.11.4, 3.2.2.3.x: leave out Reason String and User
  // Properties rather than exceed the client's Maximum Packet Size.
  mqtt::Packet trimmed = p;
  std::visit(
      [](auto& x) {
        if constexpr (requires { x.properties; }) {
          x.properties.reason_string.reset();
          x.properties.user_properties.clear();
        }
      },
      trimmed);
  scratch.clear();
  mqtt::encode(trimmed, version_, scratch);
  return scratch.size() <= peer_max_packet_size_;
}

bool Client::send(const mqtt::Packet& p) {
  if (!encode_fitting(p)) {
    // No packet may exceed the client's Maximum Packet Size [MQTT-3.1.2-24],
    // and this one cannot be left out: the connection cannot go on.
    spdlog::warn("client {} (peer {}): a {} of {} bytes does not fit its Maximum Packet Size {}, closing", client_id(),
                 transport_.peer(), mqtt::to_string(mqtt::packet_type(p)), scratch.size(), peer_max_packet_size_);
    if (state_ != State::Closing) end(true, "a packet did not fit the client's Maximum Packet Size",
                                      ReasonCode::PacketTooLarge);
    return false;
  }
  if (std::holds_alternative<mqtt::Disconnect>(p)) {
    // The last packet: it does not wait for held-back acks, which the
    // closing connection drops (the client resends what it had not seen
    // acknowledged).
    send_held_connack();
    transport_.send(scratch);
  } else {
    out(scratch);
  }
  Stats::add(broker_.stats().messages_sent);
  return true;
}

void Client::out(std::string_view bytes) {
  if (held_.empty()) {
    transport_.send(bytes);
  } else {
    held_.append(bytes);
  }
}

void Client::out_payload(const MessagePtr& message, std::string_view bytes) {
  if (held_.empty()) {
    transport_.send_payload(message, bytes);
  } else {
    held_.append(bytes);
  }
}

void Client::hold_if_stored_since(std::uint64_t mark) {
  auto& store = broker_.session_store();
  if (!store.acks_wait()) return;
  const std::uint64_t ticket = store.thread_ticket();
  if (ticket != mark) hold_until(ticket);
}

void Client::hold_until(std::uint64_t ticket) {
  auto& store = broker_.session_store();
  if (store.committed() >= ticket) return;
  if (held_.hold(ticket)) broker_.wake_when_committed(ticket, transport_.shared_link());  // one at a time (held_back.hpp)
}

void Client::send_held_connack() {
  if (!connack_held_) return;
  connack_held_ = false;
  transport_.send(held_.take_front());
}

void Client::release_held() {
  if (held_.empty()) return;
  const auto r = held_.release(broker_.session_store().committed(),
                               [&](const std::string& bytes) { transport_.send(bytes); });
  if (r.entries) connack_held_ = false;
  if (r.wait_for) broker_.wake_when_committed(r.wait_for, transport_.shared_link());
}

void Client::send_publish(const Delivery& d, std::uint16_t packet_id, bool dup) {
  const Message& m = *d.message;
  const bool v5 = version_ == Version::V5;
  Stats::add(broker_.stats().publish_sent);
  Stats::add(broker_.stats().messages_sent);
  mqtt::PublishHead h;
  h.topic = m.topic();
  h.qos = d.qos;
  h.retain = d.retain;
  h.dup = dup;
  h.packet_id = packet_id;
  if (v5) {
    h.properties = m.encoded_properties();
    if (m.has_expiry()) h.message_expiry = m.remaining_expiry(Clock::now());
    if (!d.subscription_ids.empty()) h.subscription_ids = &d.subscription_ids;
    if (broker_.config().topic_alias_to_client && peer_topic_alias_maximum_ > 0) {
      // An alias adds 3 bytes (and saves the topic once it is known): use it
      // only where the packet still fits the client's Maximum Packet Size.
      const std::size_t size = mqtt::publish_size(h, version_, m.payload().size());
      auto& outbound = aliases().outbound;
      auto it = outbound.find(std::string(h.topic));
      if (it != outbound.end() && size + 4 - h.topic.size() <= peer_max_packet_size_) {
        h.topic_alias = it->second;
        h.topic = {};
      } else if (it == outbound.end() && outbound.size() < peer_topic_alias_maximum_ &&
                 size + 4 <= peer_max_packet_size_) {
        const auto alias = static_cast<std::uint16_t>(outbound.size() + 1);
        outbound.emplace(std::string(h.topic), alias);
        h.topic_alias = alias;
      }
    }
  }
  scratch.clear();
  mqtt::encode_publish_head(h, version_, m.payload().size(), scratch);
  // A small payload is copied behind its head (one contiguous write chunk);
  // a large one is sent from the message itself, which the connection keeps
  // alive until it is written.
  if (m.payload().size() <= kCopyPayloadMax) {
    scratch.append(m.payload());
    out(scratch);
  } else {
    out(scratch);
    out_payload(d.message, m.payload());
  }
}

void Client::resend_inflight() {
  std::vector<std::pair<std::uint16_t, Inflight>> pending;
  {
    std::lock_guard lock(session_->mutex);
    if (session_->generation != generation_) return;
    pending.assign(session_->inflight.begin(), session_->inflight.end());
  }
  std::sort(pending.begin(), pending.end(),
            [](const auto& a, const auto& b) { return a.second.order < b.second.order; });
  for (const auto& [id, f] : pending) {
    if (f.state == OutState::AwaitPubcomp) {
      send(mqtt::PubAck{mqtt::PacketType::Pubrel, id, ReasonCode::Success, {}});
    } else {
      send_publish(f.delivery, id, true);
    }
  }
}

void Client::flush() {
  if (state_ != State::Connected) return;
  release_held();
  thread_local std::vector<Outgoing> batch;
  batch.clear();
  const auto& cfg = broker_.config();
  const std::size_t pending = transport_.pending_bytes();
  const DrainLimits limits{std::min<std::size_t>(cfg.max_inflight, peer_receive_maximum_),
                           pending < kWriteHighWater ? kWriteHighWater - pending : 0, peer_max_packet_size_,
                           version_};
  const std::uint64_t mark = store_mark();
  DrainResult r;
  {
    std::lock_guard lock(session_->mutex);
    if (session_->generation != generation_) return;
    session_->wake_pending = false;
    r = session_->drain(limits, Clock::now(), broker_.session_store(), batch);
  }
  if (r.dropped) Stats::add(broker_.stats().publish_dropped, r.dropped);
  if (r.hold) hold_if_stored_since(mark);
  for (const auto& o : batch) send_publish(o.delivery, o.packet_id, false);
  batch.clear();
}

}  // namespace petrel::broker
