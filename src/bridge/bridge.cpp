#include "bridge/bridge.hpp"

#include <fmt/format.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/connect.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/asio/write.hpp>
#include <cerrno>
#include <cstring>

#include "broker/persistence.hpp"
#include "mqtt/topic.hpp"

namespace petrel::bridge {

namespace asio = boost::asio;
using broker::Clock;
using mqtt::PacketType;
using mqtt::ReasonCode;
using mqtt::Version;

namespace {

// A bridge stops draining its session while this many bytes wait to be
// written: the backlog waits in the session queue (bounded, stored), not in
// a socket buffer.
constexpr std::size_t kWriteHighWater = 1 << 20;
constexpr std::size_t kReadBuffer = 64 * 1024;

std::string seconds(std::chrono::milliseconds d) { return fmt::format("{:.1f} s", static_cast<double>(d.count()) / 1000); }

std::string describe(ReasonCode rc, Version v) {
  if (v == Version::V5) return fmt::format("{} (0x{:02X})", mqtt::to_string(rc), static_cast<unsigned>(rc));
  return fmt::format("{} (return code {})", mqtt::to_string(rc), static_cast<unsigned>(mqtt::to_v3_connack(rc)));
}

}  // namespace

std::shared_ptr<asio::ssl::context> make_client_tls_context(const TlsClientSettings& t) {
  auto ctx = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_client);
  boost::system::error_code ec;
  auto readable = [](const std::string& path, const char* what) {
    if (::access(path.c_str(), R_OK) != 0)
      throw std::runtime_error(fmt::format("cannot read {} '{}': {}", what, path, std::strerror(errno)));
  };
  SSL_CTX_set_min_proto_version(ctx->native_handle(), TLS1_2_VERSION);
  ctx->set_verify_mode(asio::ssl::verify_peer);
  if (t.ca_file.empty()) {
    ctx->set_default_verify_paths(ec);
  } else {
    readable(t.ca_file, "ca_file");
    ctx->load_verify_file(t.ca_file, ec);
    if (ec) throw std::runtime_error(fmt::format("cannot load ca_file '{}': {}", t.ca_file, ec.message()));
  }
  if (!t.cert_file.empty()) {
    readable(t.cert_file, "cert_file");
    const std::string key = t.key_file.empty() ? t.cert_file : t.key_file;
    readable(key, "key_file");
    if (!t.key_password.empty()) {
      ctx->set_password_callback([pw = t.key_password](std::size_t, asio::ssl::context::password_purpose) { return pw; });
    }
    ctx->use_certificate_chain_file(t.cert_file, ec);
    if (ec) throw std::runtime_error(fmt::format("cannot load cert_file '{}': {}", t.cert_file, ec.message()));
    ctx->use_private_key_file(key, asio::ssl::context::pem, ec);
    if (ec) throw std::runtime_error(fmt::format("cannot load key_file '{}': {}", key, ec.message()));
  }
  return ctx;
}

Bridge::Bridge(BridgeSettings settings, broker::Broker& broker, asio::io_context& loop)
    : settings_(std::move(settings)),
      local_id_(local_client_id(settings_.name)),
      broker_(broker),
      loop_(loop),
      topics_(settings_.forward, settings_.subscribe),
      policy_(std::make_shared<broker::SessionPolicy>()),
      resolver_(loop),
      connect_timer_(loop),
      retry_timer_(loop),
      keep_alive_timer_(loop),
      backoff_(settings_.reconnect_delay_min, settings_.reconnect_delay_max),
      reader_(broker.config().max_packet_size) {
  policy_->max_queued_messages = settings_.max_queued_messages;
  policy_->max_queued_bytes = settings_.max_queued_bytes;
  broker_.add_in_process(local_id_, policy_);
  if (settings_.tls.enabled) tls_context_ = make_client_tls_context(settings_.tls);
}

Bridge::~Bridge() = default;

// -------------------------------------------------------------- local --

void Bridge::start() {
  attach_local();
  asio::post(loop_, [w = weak_from_this()] {
    if (auto self = w.lock()) self->connect();
  });
}

void Bridge::attach_local() {
  auto identity = std::make_shared<broker::ClientIdentity>();
  identity->client_id = local_id_;
  identity->listener = "bridge:" + settings_.name;
  identity->peer = fmt::format("{}:{}", settings_.host, settings_.port);
  identity->version = settings_.version;
  identity->clean_start = false;
  identity->connected_at = std::chrono::system_clock::now();
  // Never expires: the queue must outlive any outage (it is bounded instead).
  auto attached = broker_.attach(identity, false, 0xFFFFFFFF, std::nullopt,
                                 std::static_pointer_cast<broker::SessionLink>(shared_from_this()));
  {
    std::lock_guard lock(status_mutex_);
    session_ = attached.session;
  }
  generation_ = attached.generation;
  // The session's subscriptions are exactly the forward rules' filters:
  // ones left from an earlier configuration go.
  std::vector<std::string> stale;
  {
    std::lock_guard lock(session_->mutex);
    if (const auto* subs = session_->subscriptions.peek())
      for (const auto& [filter, _] : *subs) {
        bool configured = false;
        for (const auto& r : settings_.forward) configured = configured || r.filter == filter;
        if (!configured) stale.push_back(filter);
      }
  }
  for (const auto& f : stale) broker_.unsubscribe(session_, f);
  for (const auto& r : settings_.forward) {
    mqtt::SubscribeOptions o;
    o.qos = r.qos;
    o.no_local = true;  // what this bridge received from its remote never goes back there
    o.retain_as_published = r.retain;
    o.retain_handling = 2;  // forward what is published from now on, not the retained state
    broker_.subscribe(session_, r.filter, o, 0);
  }
  std::size_t queued = 0, inflight = 0;
  {
    std::lock_guard lock(session_->mutex);
    queued = session_->queue.size();
    inflight = session_->inflight.size();
  }
  spdlog::info("bridge '{}': local session '{}' {} ({} queued, {} in flight), {} forward and {} subscribe rules",
               settings_.name, local_id_, attached.session_present ? "resumed" : "created", queued, inflight,
               settings_.forward.size(), settings_.subscribe.size());
}

void Bridge::wake() {
  if (wake_posted_.exchange(true)) return;
  asio::post(loop_, [w = weak_from_this()] {
    if (auto self = w.lock()) {
      self->wake_posted_ = false;
      self->flush();
    }
  });
}

void Bridge::kick(ReasonCode reason) {
  // Called with broker locks held: act later, on the loop.
  asio::post(loop_, [w = weak_from_this(), reason] {
    if (auto self = w.lock()) self->on_kicked(reason);
  });
}

void Bridge::post(std::function<void()> fn) {
  asio::post(loop_, [w = weak_from_this(), fn = std::move(fn)] {
    if (w.lock()) fn();
  });
}

void Bridge::on_kicked(ReasonCode reason) {
  if (state_ == State::Stopped) return;
  if (reason != ReasonCode::ServerShuttingDown) {
    // An operator disconnected or deleted the bridge's session: it comes
    // back at once (a deleted one, new and empty).
    spdlog::warn("bridge '{}': local session ended by the server ({}), attaching again", settings_.name,
                 mqtt::to_string(reason));
    broker_.detach(session_, generation_, false);
    attach_local();
    flush();
    return;
  }
  spdlog::info("bridge '{}': stopping", settings_.name);
  const bool connected = state_ == State::Connected;
  set_state(State::Stopped);
  connected_ = false;
  retry_timer_.cancel();
  connect_timer_.cancel();
  keep_alive_timer_.cancel();
  resolver_.cancel();
  broker_.detach(session_, generation_, false);
  if (connected) {
    // A normal DISCONNECT keeps the remote session (and publishes no will);
    // held-back acknowledgements are dropped: the remote sends those
    // messages again.
    held_.clear();
    std::string bytes;
    mqtt::encode(mqtt::Disconnect{}, settings_.version, bytes);
    out_.append(bytes);
    closing_after_write_ = true;
    write();
    return;
  }
  ++epoch_;
  close_transport();
}

// ------------------------------------------------------------- remote --

void Bridge::set_state(State s) {
  state_ = s;
  const char* name = s == State::Connected ? "connected"
                     : s == State::Stopped ? "stopped"
                     : s == State::Waiting ? "waiting"
                                           : "connecting";
  std::lock_guard lock(status_mutex_);
  if (state_name_ != name) {
    state_name_ = name;
    since_ = std::chrono::system_clock::now();
  }
}

void Bridge::set_error(const std::string& why) {
  std::lock_guard lock(status_mutex_);
  last_error_ = why;
  last_error_at_ = std::chrono::system_clock::now();
}

void Bridge::connect() {
  if (state_ == State::Stopped) return;
  set_state(State::Connecting);
  const std::uint64_t epoch = ++epoch_;
  connect_timer_.expires_after(settings_.connect_timeout);
  connect_timer_.async_wait([w = weak_from_this(), epoch](const boost::system::error_code& ec) {
    auto self = w.lock();
    if (ec || !self || self->epoch_ != epoch) return;
    self->drop(self->state_ == State::AwaitConnack
                   ? fmt::format("no CONNACK within connect_timeout ({})", seconds(self->settings_.connect_timeout))
                   : fmt::format("could not connect within connect_timeout ({})",
                                 seconds(self->settings_.connect_timeout)));
  });
  resolver_.async_resolve(settings_.host, std::to_string(settings_.port),
                          [w = weak_from_this(), epoch](const boost::system::error_code& ec,
                                                        const asio::ip::tcp::resolver::results_type& r) {
                            if (auto self = w.lock()) self->on_resolved(epoch, ec, r);
                          });
}

void Bridge::on_resolved(std::uint64_t epoch, const boost::system::error_code& ec,
                         const asio::ip::tcp::resolver::results_type& endpoints) {
  if (epoch != epoch_) return;
  if (ec) return drop(fmt::format("cannot resolve '{}': {}", settings_.host, ec.message()));
  conn_ = std::make_shared<Conn>();
  conn_->tcp = std::make_unique<asio::ip::tcp::socket>(loop_);
  asio::async_connect(*conn_->tcp, endpoints,
                      [w = weak_from_this(), epoch, conn = conn_](const boost::system::error_code& e,
                                                                  const asio::ip::tcp::endpoint&) {
                        if (auto self = w.lock()) self->on_tcp_connected(epoch, e);
                      });
}

void Bridge::on_tcp_connected(std::uint64_t epoch, const boost::system::error_code& ec) {
  if (epoch != epoch_) return;
  if (ec) return drop(fmt::format("cannot connect: {}", ec.message()));
  boost::system::error_code ignored;
  auto& c = *conn_;
  c.tcp->set_option(asio::ip::tcp::no_delay(true), ignored);
  if (!tls_context_) return on_transport_ready(epoch);
  c.tls = std::make_unique<asio::ssl::stream<asio::ip::tcp::socket>>(std::move(*c.tcp), *tls_context_);
  c.tcp.reset();
  const std::string& name = settings_.tls.server_name.empty() ? settings_.host : settings_.tls.server_name;
  SSL_set_tlsext_host_name(c.tls->native_handle(), name.c_str());
  c.tls->set_verify_callback(asio::ssl::host_name_verification(name));
  c.tls->async_handshake(asio::ssl::stream_base::client, [w = weak_from_this(), epoch,
                                                          conn = conn_](const boost::system::error_code& e) {
    auto self = w.lock();
    if (!self || epoch != self->epoch_) return;
    if (e) {
      const long v = SSL_get_verify_result(conn->tls->native_handle());
      if (v != X509_V_OK)
        return self->drop(fmt::format("TLS certificate verification failed: {}", X509_verify_cert_error_string(v)));
      return self->drop(fmt::format("TLS handshake failed: {}", e.message()));
    }
    self->on_transport_ready(epoch);
  });
}

void Bridge::on_transport_ready(std::uint64_t epoch) {
  (void)epoch;
  state_ = State::AwaitConnack;
  reader_ = mqtt::FrameReader(broker_.config().max_packet_size);
  conn_->read_buffer.resize(kReadBuffer);
  mqtt::Connect c;
  c.version = settings_.version;
  c.client_id = settings_.client_id;
  c.clean_start = settings_.clean_start;
  c.keep_alive = settings_.keep_alive;
  c.username = settings_.username;
  c.password = settings_.password;
  if (settings_.version == Version::V5) {
    if (settings_.session_expiry) c.properties.session_expiry_interval = settings_.session_expiry;
    const auto& cfg = broker_.config();
    if (cfg.receive_maximum != 65535) c.properties.receive_maximum = cfg.receive_maximum;
    c.properties.maximum_packet_size = cfg.max_packet_size;
  }
  send_packet(c);
  read();
}

void Bridge::read() {
  auto handler = [w = weak_from_this(), epoch = epoch_, conn = conn_](const boost::system::error_code& ec,
                                                                        std::size_t n) {
    if (auto self = w.lock()) self->on_read(epoch, ec, n);
  };
  auto& c = *conn_;
  auto buffer = asio::buffer(c.read_buffer.data(), c.read_buffer.size());
  if (c.tls) {
    c.tls->async_read_some(buffer, handler);
  } else {
    c.tcp->async_read_some(buffer, handler);
  }
}

void Bridge::on_read(std::uint64_t epoch, const boost::system::error_code& ec, std::size_t n) {
  if (epoch != epoch_) return;
  if (ec) {
    if (ec == asio::error::eof || ec == asio::ssl::error::stream_truncated)
      return drop("connection closed by the remote");
    return drop(fmt::format("connection lost: {}", ec.message()));
  }
  last_received_ = std::chrono::steady_clock::now();
  reader_.borrow(std::string_view(conn_->read_buffer.data(), n));
  try {
    while (epoch == epoch_) {
      auto frame = reader_.next();
      if (!frame) break;
      handle(*frame);
    }
  } catch (const mqtt::ProtocolError& e) {
    if (epoch == epoch_)
      drop(fmt::format("protocol error by the remote: {} ({})", e.what(), mqtt::to_string(e.code())));
    return;
  }
  if (epoch != epoch_) return;  // dropped while handling
  reader_.keep_rest();
  read();
}

void Bridge::close_transport() {
  boost::system::error_code ignored;
  if (conn_) {
    if (conn_->tls) conn_->tls->next_layer().close(ignored);
    if (conn_->tcp) conn_->tcp->close(ignored);
  }
  conn_.reset();  // its pending operations' handlers hold it until they complete
  out_.clear();
  write_in_flight_ = false;
  held_.clear();
  ping_outstanding_ = false;
}

void Bridge::drop(const std::string& why, bool refusal) {
  if (state_ == State::Stopped) return;
  const bool was_connected = state_ == State::Connected;
  ++epoch_;
  connected_ = false;
  receive_maximum_seen_ = 0;
  connect_timer_.cancel();
  keep_alive_timer_.cancel();
  resolver_.cancel();
  // The asynchronous operations still pending complete with an error into
  // handlers whose epoch is stale; the sockets go now.
  close_transport();
  set_error(why);
  const double unit = std::uniform_real_distribution<double>(0.0, 1.0)(rng_);
  const auto delay = refusal ? backoff_.next_refusal(unit) : backoff_.next_failure(unit);
  const std::string where = fmt::format("{}:{}", settings_.host, settings_.port);
  if (was_connected) {
    spdlog::warn("bridge '{}': connection to {} lost: {}; reconnecting in {}", settings_.name, where, why,
                 seconds(delay));
  } else {
    spdlog::warn("bridge '{}': cannot connect to {}: {}; retrying in {}", settings_.name, where, why,
                 seconds(delay));
  }
  schedule_retry(delay);
}

void Bridge::schedule_retry(std::chrono::milliseconds delay) {
  set_state(State::Waiting);
  retry_timer_.expires_after(delay);
  retry_timer_.async_wait([w = weak_from_this(), epoch = epoch_](const boost::system::error_code& ec) {
    auto self = w.lock();
    if (ec || !self || self->epoch_ != epoch) return;
    self->connect();
  });
}

void Bridge::start_keep_alive() {
  if (!keep_alive_) return;
  // Ping when nothing was sent for half the keep alive; a ping unanswered
  // for a whole keep alive means the remote (or the path to it) is gone.
  const auto tick = std::chrono::milliseconds(keep_alive_ * 500);
  keep_alive_timer_.expires_after(tick);
  keep_alive_timer_.async_wait([w = weak_from_this(), epoch = epoch_, tick](const boost::system::error_code& ec) {
    auto self = w.lock();
    if (ec || !self || self->epoch_ != epoch || self->state_ != State::Connected) return;
    const auto now = std::chrono::steady_clock::now();
    if (self->ping_outstanding_ && now - self->ping_sent_ >= 2 * tick)
      return self->drop(fmt::format("no PINGRESP within keep alive ({} s)", self->keep_alive_));
    if (!self->ping_outstanding_ && now - self->last_sent_ >= tick) {
      self->ping_outstanding_ = true;
      self->ping_sent_ = now;
      self->send_packet(mqtt::Pingreq{});
    }
    self->start_keep_alive();
  });
}

// ------------------------------------------------------------ packets --

void Bridge::handle(const mqtt::Frame& frame) {
  const mqtt::DecodeOptions options{.sender = mqtt::Sender::Server,
                                    .allow_control_characters = broker_.config().allow_control_characters};
  if (state_ == State::AwaitConnack) {
    if (frame.type() != PacketType::Connack)
      mqtt::protocol_error(fmt::format("{} before CONNACK", mqtt::to_string(frame.type())));
    on_connack(std::get<mqtt::Connack>(mqtt::decode(frame, settings_.version, options)));
    return;
  }
  switch (frame.type()) {
    case PacketType::Publish: {
      mqtt::PublishView p = mqtt::decode_publish_view(frame, settings_.version, options);
      on_publish(p);
      return;
    }
    case PacketType::Puback:
    case PacketType::Pubrec:
    case PacketType::Pubrel:
    case PacketType::Pubcomp:
      on_ack(mqtt::decode_ack(frame, settings_.version));
      return;
    default: break;
  }
  mqtt::Packet packet = mqtt::decode(frame, settings_.version, options);
  if (auto* s = std::get_if<mqtt::Suback>(&packet)) return on_suback(*s);
  if (std::holds_alternative<mqtt::Pingresp>(packet)) {
    ping_outstanding_ = false;
    return;
  }
  if (std::holds_alternative<mqtt::Unsuback>(packet)) return;
  if (auto* d = std::get_if<mqtt::Disconnect>(&packet)) {
    std::string why = fmt::format("the remote sent DISCONNECT {}", describe(d->reason, settings_.version));
    if (d->properties.reason_string) why += fmt::format(": {}", *d->properties.reason_string);
    return drop(why);
  }
  mqtt::protocol_error(fmt::format("unexpected {}", mqtt::to_string(mqtt::packet_type(packet))));
}

void Bridge::on_connack(const mqtt::Connack& ack) {
  connect_timer_.cancel();
  if (ack.reason != ReasonCode::Success) {
    std::string why = fmt::format("the remote refused the connection: {}", describe(ack.reason, settings_.version));
    if (ack.properties.reason_string) why += fmt::format(": {}", *ack.properties.reason_string);
    return drop(why, true);
  }
  const auto& p = ack.properties;
  remote_receive_maximum_ = p.receive_maximum.value_or(65535);
  remote_max_packet_size_ = p.maximum_packet_size.value_or(268'435'460);
  remote_max_qos_ = p.maximum_qos.value_or(2);
  remote_retain_available_ = p.retain_available.value_or(1) != 0;
  keep_alive_ = p.server_keep_alive.value_or(settings_.keep_alive);
  backoff_.reset();
  set_state(State::Connected);
  connected_ = true;
  receive_maximum_seen_ = remote_receive_maximum_;
  connects_.fetch_add(1, std::memory_order_relaxed);
  spdlog::info("bridge '{}': connected to {}:{} ({}{}, client id '{}', session present {}, receive maximum {})",
               settings_.name, settings_.host, settings_.port, mqtt::to_string(settings_.version),
               conn_ && conn_->tls ? " over TLS" : "", settings_.client_id, ack.session_present ? 1 : 0, remote_receive_maximum_);
  if (!settings_.subscribe.empty()) {
    mqtt::Subscribe s;
    s.packet_id = next_subscribe_id_;
    next_subscribe_id_ = static_cast<std::uint16_t>(next_subscribe_id_ == 65535 ? 1 : next_subscribe_id_ + 1);
    for (const auto& r : settings_.subscribe) {
      mqtt::SubscribeOptions o;
      o.qos = r.qos;
      // What this bridge forwards never comes back to it (v5; 3.1.1 has no
      // No Local: docs/bridges.md, "Loops").
      o.no_local = settings_.version == Version::V5;
      o.retain_as_published = settings_.version == Version::V5;
      s.subscriptions.push_back({r.filter, o});
    }
    send_packet(s);
  }
  resend_inflight(ack.session_present);
  start_keep_alive();
  flush();
}

void Bridge::on_suback(const mqtt::Suback& s) {
  for (std::size_t i = 0; i < s.reasons.size() && i < settings_.subscribe.size(); ++i) {
    const auto rc = s.reasons[i];
    if (static_cast<unsigned>(rc) >= 0x80) {
      const std::string why = fmt::format("the remote refused the subscription to '{}': {}",
                                          settings_.subscribe[i].filter, describe(rc, Version::V5));
      spdlog::warn("bridge '{}': {}", settings_.name, why);
      set_error(why);
    }
  }
}

void Bridge::on_publish(mqtt::PublishView& p) {
  auto& store = broker_.session_store();
  const bool v5 = settings_.version == Version::V5;
  const PacketType ack_type = p.qos == 2 ? PacketType::Pubrec : PacketType::Puback;
  auto local = topics_.local_topic(p.topic);
  if (!local || local->starts_with("$SYS")) {
    // Nothing the bridge subscribed to (left in the remote session by an
    // earlier configuration), or a topic petrel keeps for itself: not routed.
    spdlog::debug("bridge '{}': message on '{}' from the remote matches no subscribe rule, dropped", settings_.name,
                  p.topic);
    if (p.qos) send_ack(ack_type, p.packet_id, ReasonCode::Success);
    return;
  }
  const std::uint64_t mark = store_mark();
  struct Group {
    broker::SessionStore& store;
    std::uint64_t id;
    ~Group() {
      if (id) store.end_group(id);
    }
  } group{store, p.qos == 2 && store.acks_wait() ? store.begin_group() : 0};
  if (p.qos == 2) {
    std::lock_guard lock(session_->mutex);
    if (session_->inbound_qos2.contains(p.packet_id)) {
      // Sent again by the remote (after a reconnect): acknowledged, not routed twice.
      send_ack(PacketType::Pubrec, p.packet_id, ReasonCode::Success);
      return;
    }
    session_->inbound_qos2.insert(p.packet_id);
    store.inbound_qos2_added(local_id_, p.packet_id);
  }
  auto message = p.properties ? broker::Message::create(*local, p.payload, p.qos, p.retain, *p.properties, local_id_)
                              : broker::Message::create(*local, p.payload, p.qos, p.retain, local_id_);
  const auto routed = broker_.route(message);
  received_.fetch_add(1, std::memory_order_relaxed);
  if (routed.refused && p.qos > 0) {
    if (p.qos == 2) {
      std::lock_guard lock(session_->mutex);
      if (session_->inbound_qos2.erase(p.packet_id)) store.inbound_qos2_removed(local_id_, p.packet_id);
    }
    if (v5) return send_ack(ack_type, p.packet_id, ReasonCode::QuotaExceeded);
    return drop(fmt::format("a message on '{}' was refused by a full bridge queue, and MQTT 3.1.1 has no negative "
                            "acknowledgement",
                            *local));
  }
  if (p.qos > 0) {
    hold_if_stored_since(mark);
    send_ack(ack_type, p.packet_id, ReasonCode::Success);
  }
}

void Bridge::on_ack(const mqtt::AckView& a) {
  auto& store = broker_.session_store();
  const std::uint64_t mark = store_mark();
  if (a.type == PacketType::Pubrel) {
    bool known = false;
    {
      std::lock_guard lock(session_->mutex);
      known = session_->inbound_qos2.erase(a.packet_id) > 0;
      if (known) store.inbound_qos2_removed(local_id_, a.packet_id);
    }
    hold_if_stored_since(mark);
    send_ack(PacketType::Pubcomp, a.packet_id, known ? ReasonCode::Success : ReasonCode::PacketIdentifierNotFound);
    return;
  }
  broker::AckResult r;
  {
    std::lock_guard lock(session_->mutex);
    if (session_->generation != generation_) return;
    r = broker::acknowledge(*session_, a.type, a.packet_id, a.reason, store);
  }
  switch (r) {
    case broker::AckResult::Completed:
      forwarded_.fetch_add(1, std::memory_order_relaxed);
      if (static_cast<unsigned>(a.reason) >= 0x80)
        spdlog::debug("bridge '{}': the remote refused packet {} with {}", settings_.name, a.packet_id,
                      describe(a.reason, Version::V5));
      break;
    case broker::AckResult::SendPubrel:
      // The PUBREL leaves once the new state is stored: after a crash petrel
      // must not send again a PUBLISH the remote has released.
      hold_if_stored_since(mark);
      send_ack(PacketType::Pubrel, a.packet_id, ReasonCode::Success);
      break;
    case broker::AckResult::UnknownId:
      if (a.type == PacketType::Pubrec) send_ack(PacketType::Pubrel, a.packet_id, ReasonCode::PacketIdentifierNotFound);
      break;
    case broker::AckResult::WrongKind:
      mqtt::protocol_error(fmt::format("{} for packet id {} does not fit its state", mqtt::to_string(a.type),
                                       a.packet_id));
  }
  flush();
}

// --------------------------------------------------------- forwarding --

void Bridge::resend_inflight(bool session_present) {
  auto& store = broker_.session_store();
  std::vector<std::pair<std::uint16_t, broker::Inflight>> pending;
  {
    std::lock_guard lock(session_->mutex);
    if (session_->generation != generation_) return;
    if (!session_present) {
      // The remote has no session: what it received is done with (a QoS 2
      // awaiting PUBCOMP was delivered there), and it awaits no PUBREL from
      // us; the rest is sent again as new.
      std::vector<std::uint16_t> done;
      for (const auto& [id, f] : session_->inflight)
        if (f.state == broker::OutState::AwaitPubcomp) done.push_back(id);
      for (auto id : done) broker::forget_inflight(*session_, id, store);
      if (!session_->inbound_qos2.empty()) {
        for (auto id : *session_->inbound_qos2.peek()) store.inbound_qos2_removed(local_id_, id);
        session_->inbound_qos2.clear();
      }
    }
    if (const auto* inflight = session_->inflight.peek()) pending.assign(inflight->begin(), inflight->end());
  }
  std::sort(pending.begin(), pending.end(),
            [](const auto& a, const auto& b) { return a.second.order < b.second.order; });
  for (const auto& [id, f] : pending) {
    resent_.fetch_add(1, std::memory_order_relaxed);
    if (f.state == broker::OutState::AwaitPubcomp) {
      send_ack(PacketType::Pubrel, id, ReasonCode::Success);
    } else {
      send_publish(f.delivery, id, f.state == broker::OutState::AwaitPubrec ? 2 : std::min<std::uint8_t>(f.delivery.qos, 1),
                   session_present);
    }
  }
}

void Bridge::flush() {
  if (state_ != State::Connected) return;
  release_held();
  thread_local std::vector<broker::Outgoing> batch;
  batch.clear();
  auto& store = broker_.session_store();
  const std::size_t pending = pending_bytes();
  const std::size_t prefix = topics_.longest_remote_prefix();
  const broker::DrainLimits limits{
      std::min<std::size_t>(settings_.max_inflight, remote_receive_maximum_),
      pending < kWriteHighWater ? kWriteHighWater - pending : 0,
      static_cast<std::uint32_t>(remote_max_packet_size_ > prefix ? remote_max_packet_size_ - prefix : 0),
      settings_.version};
  const std::uint64_t mark = store_mark();
  broker::DrainResult r;
  {
    std::lock_guard lock(session_->mutex);
    if (session_->generation != generation_) return;
    session_->wake_pending = false;
    r = session_->drain(limits, Clock::now(), store, batch);
    // A remote whose Maximum QoS is below a delivery's QoS gets it at its
    // maximum (AWS IoT: 1); the in-flight state follows what is sent.
    for (auto& o : batch) {
      if (!o.packet_id || o.delivery.qos <= remote_max_qos_) continue;
      if (remote_max_qos_ == 0) {
        broker::forget_inflight(*session_, o.packet_id, store);
        o.packet_id = 0;
      } else if (auto it = session_->inflight.find(o.packet_id); it != session_->inflight.end()) {
        it->second.state = broker::OutState::AwaitPuback;
        if (it->second.delivery.store_id)
          store.delivery_state(it->second.delivery.store_id, o.packet_id, broker::OutState::AwaitPuback);
      }
    }
  }
  if (r.dropped) {
    drained_drops_.fetch_add(r.dropped, std::memory_order_relaxed);
    broker::Stats::add(broker_.stats().publish_dropped, r.dropped);
  }
  if (r.hold) hold_if_stored_since(mark);
  for (const auto& o : batch) {
    const std::uint8_t qos = o.packet_id ? std::min(o.delivery.qos, remote_max_qos_) : 0;
    send_publish(o.delivery, o.packet_id, qos, false);
    if (!o.packet_id) forwarded_.fetch_add(1, std::memory_order_relaxed);
  }
  batch.clear();
}

void Bridge::send_publish(const broker::Delivery& d, std::uint16_t packet_id, std::uint8_t qos, bool dup) {
  const broker::Message& m = *d.message;
  const ForwardRule* rule = nullptr;
  if (!topics_.remote_topic(m.topic(), topic_scratch_, &rule)) {
    // Cannot happen while the session's subscriptions are the rules'
    // filters; a delivery without a rule is completed, not forwarded.
    topic_scratch_.assign(m.topic());
  }
  mqtt::PublishHead h;
  h.topic = topic_scratch_;
  h.qos = qos;
  h.retain = rule && rule->retain && m.retain() && remote_retain_available_;
  h.dup = dup && qos > 0;
  h.packet_id = qos ? packet_id : 0;
  if (settings_.version == Version::V5) {
    h.properties = m.encoded_properties();
    if (m.has_expiry()) h.message_expiry = m.remaining_expiry(Clock::now());
  }
  scratch_.clear();
  const std::size_t size = mqtt::encode_publish_head(h, settings_.version, m.payload().size(), scratch_);
  if (size > remote_max_packet_size_) {
    // Larger than the remote accepts once prefixed: dropped for it.
    drained_drops_.fetch_add(1, std::memory_order_relaxed);
    if (packet_id) {
      std::lock_guard lock(session_->mutex);
      broker::forget_inflight(*session_, packet_id, broker_.session_store());
    }
    return;
  }
  scratch_.append(m.payload());
  out(scratch_);
}

void Bridge::send_packet(const mqtt::Packet& p) {
  scratch_.clear();
  mqtt::encode(p, settings_.version, scratch_);
  out(scratch_);
}

void Bridge::send_ack(PacketType type, std::uint16_t packet_id, ReasonCode reason) {
  const bool with_reason = settings_.version == Version::V5 && reason != ReasonCode::Success;
  const std::uint8_t first =
      static_cast<std::uint8_t>(static_cast<unsigned>(type) << 4) | (type == PacketType::Pubrel ? 0x02 : 0x00);
  const char bytes[5] = {static_cast<char>(first), static_cast<char>(with_reason ? 3 : 2),
                         static_cast<char>(packet_id >> 8), static_cast<char>(packet_id & 0xFF),
                         static_cast<char>(reason)};
  out(std::string_view(bytes, with_reason ? 5 : 4));
}

void Bridge::out(std::string_view bytes) {
  if (!held_.empty()) {
    held_.append(bytes);
    return;
  }
  out_.append(bytes);
  write();
}

void Bridge::write() {
  if (write_in_flight_ || out_.empty() || !conn_) return;
  write_in_flight_ = true;
  auto& c = *conn_;
  c.writing.swap(out_);
  last_sent_ = std::chrono::steady_clock::now();
  auto handler = [w = weak_from_this(), epoch = epoch_, conn = conn_](const boost::system::error_code& ec,
                                                                        std::size_t) {
    auto self = w.lock();
    if (!self || self->epoch_ != epoch) return;
    self->write_in_flight_ = false;
    conn->writing.clear();
    if (ec) return self->drop(fmt::format("connection lost while sending: {}", ec.message()));
    if (self->closing_after_write_ && self->out_.empty()) {
      ++self->epoch_;
      self->close_transport();
      return;
    }
    self->write();
    self->flush();  // room in the write budget: take more from the session
  };
  if (c.tls) {
    asio::async_write(*c.tls, asio::buffer(c.writing), handler);
  } else {
    asio::async_write(*c.tcp, asio::buffer(c.writing), handler);
  }
}

void Bridge::hold_if_stored_since(std::uint64_t mark) {
  auto& store = broker_.session_store();
  if (!store.acks_wait()) return;
  const std::uint64_t ticket = store.thread_ticket();
  if (ticket == mark || store.committed() >= ticket) return;
  if (held_.hold(ticket))  // one wake-up at a time (broker/held_back.hpp)
    broker_.wake_when_committed(ticket, std::static_pointer_cast<broker::SessionLink>(shared_from_this()));
}

void Bridge::release_held() {
  if (held_.empty()) return;
  const auto r = held_.release(broker_.session_store().committed(),
                               [&](const std::string& bytes) { out_.append(bytes); });
  if (r.wait_for)
    broker_.wake_when_committed(r.wait_for, std::static_pointer_cast<broker::SessionLink>(shared_from_this()));
  if (r.entries) write();
}

// ------------------------------------------------------------- status --

Status Bridge::status() const {
  Status s;
  s.name = settings_.name;
  s.address = settings_.host.find(':') != std::string::npos ? fmt::format("[{}]:{}", settings_.host, settings_.port)
                                                            : fmt::format("{}:{}", settings_.host, settings_.port);
  s.tls = settings_.tls.enabled;
  s.version = settings_.version;
  s.client_id = settings_.client_id;
  broker::SessionPtr session;
  {
    std::lock_guard lock(status_mutex_);
    s.state = state_name_;
    s.since = since_;
    s.last_error = last_error_;
    s.last_error_at = last_error_at_;
    session = session_;
  }
  s.connected = connected_.load(std::memory_order_relaxed);
  if (session) {
    std::lock_guard lock(session->mutex);
    s.queued = session->queue.size();
    s.inflight = session->inflight.size();
  }
  s.forwarded = forwarded_.load(std::memory_order_relaxed);
  s.received = received_.load(std::memory_order_relaxed);
  s.refused = policy_->refused.get();
  s.dropped = policy_->dropped.get() + drained_drops_.load(std::memory_order_relaxed);
  s.resent = resent_.load(std::memory_order_relaxed);
  s.connects = connects_.load(std::memory_order_relaxed);
  s.remote_receive_maximum = receive_maximum_seen_.load(std::memory_order_relaxed);
  return s;
}

}  // namespace petrel::bridge
