#include "client/sync_client.hpp"

#include <fmt/format.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/write.hpp>
#include <set>

#include "mqtt/codec.hpp"

namespace petrel::client {

namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;
using Kind = ClientError::Kind;

struct SyncClient::Impl {
  asio::io_context io;
  asio::ssl::context ssl_context{asio::ssl::context::tls_client};
  std::unique_ptr<asio::ip::tcp::socket> tcp;
  std::unique_ptr<asio::ssl::stream<asio::ip::tcp::socket>> tls;
  mqtt::FrameReader reader{268'435'460};
  Clock::time_point last_sent = Clock::now();
  std::set<std::uint16_t> inbound_qos2;

  asio::ip::tcp::socket& socket() { return tls ? tls->next_layer() : *tcp; }

  // Reads what is there, waiting until the deadline; 0 on timeout. The read
  // is asynchronous and the io_context runs until it completes or the
  // deadline passes: polling the socket would miss TLS records that OpenSSL
  // already pulled off the socket but has not decrypted yet.
  std::size_t read_some(char* buf, std::size_t n, Clock::time_point deadline) {
    bool done = false;
    boost::system::error_code ec;
    std::size_t got = 0;
    auto handler = [&](const boost::system::error_code& e, std::size_t k) {
      done = true;
      ec = e;
      got = k;
    };
    if (tls) {
      tls->async_read_some(asio::buffer(buf, n), handler);
    } else {
      tcp->async_read_some(asio::buffer(buf, n), handler);
    }
    io.restart();
    while (!done && io.run_one_until(deadline)) {
    }
    if (!done) {
      boost::system::error_code ignored;
      socket().cancel(ignored);
      io.restart();
      while (!done && io.run_one()) {
      }
      if (ec == asio::error::operation_aborted) return 0;
    }
    if (ec == asio::error::eof || ec == asio::ssl::error::stream_truncated)
      throw ClientError(Kind::Connect, "connection closed by the broker");
    if (ec) throw ClientError(Kind::Connect, fmt::format("connection lost: {}", ec.message()));
    return got;
  }

  void write_all(const std::string& bytes) {
    boost::system::error_code ec;
    if (tls) {
      asio::write(*tls, asio::buffer(bytes), ec);
    } else {
      asio::write(*tcp, asio::buffer(bytes), ec);
    }
    if (ec) throw ClientError(Kind::Connect, fmt::format("connection lost while sending: {}", ec.message()));
    last_sent = Clock::now();
  }
};

SyncClient::SyncClient(ClientOptions options) : options_(std::move(options)), impl_(std::make_unique<Impl>()) {}

SyncClient::~SyncClient() = default;

std::uint16_t SyncClient::next_id() {
  last_id_ = static_cast<std::uint16_t>(last_id_ == 65535 ? 1 : last_id_ + 1);
  return last_id_;
}

void SyncClient::send(const mqtt::Packet& p) {
  impl_->write_all(mqtt::encode(p, options_.version));
}

mqtt::Packet SyncClient::next_packet(Clock::time_point deadline) {
  char buf[16 * 1024];
  while (true) {
    try {
      if (auto f = impl_->reader.next()) return mqtt::decode(*f, options_.version);
    } catch (const mqtt::ProtocolError& e) {
      throw ClientError(Kind::Protocol, fmt::format("invalid packet from the broker: {}", e.what()));
    }
    const std::size_t n = impl_->read_some(buf, sizeof buf, deadline);
    if (n == 0) throw ClientError(Kind::Timeout, "timed out waiting for the broker");
    impl_->reader.feed(std::string_view(buf, n));
  }
}


void SyncClient::prepare_tls() {
  auto& ctx = impl_->ssl_context;
  boost::system::error_code ec;
  auto readable = [](const std::string& path, const char* what) {
    if (::access(path.c_str(), R_OK) != 0)
      throw ClientError(Kind::Connect, fmt::format("cannot read {} '{}': {}", what, path, std::strerror(errno)));
  };
  const auto& t = options_.tls;
  if (!t.ca_file.empty()) readable(t.ca_file, "CA file");
  if (!t.cert_file.empty()) readable(t.cert_file, "certificate");
  if (!t.key_file.empty()) readable(t.key_file, "key");
  SSL_CTX_set_min_proto_version(ctx.native_handle(), TLS1_2_VERSION);
  if (t.insecure) {
    ctx.set_verify_mode(asio::ssl::verify_none);
  } else {
    ctx.set_verify_mode(asio::ssl::verify_peer);
    if (t.ca_file.empty()) {
      ctx.set_default_verify_paths(ec);
    } else {
      ctx.load_verify_file(t.ca_file, ec);
      if (ec) throw ClientError(Kind::Connect, fmt::format("cannot load CA file '{}': {}", t.ca_file, ec.message()));
    }
  }
  if (!t.cert_file.empty()) {
    ctx.use_certificate_chain_file(t.cert_file, ec);
    if (ec)
      throw ClientError(Kind::Connect, fmt::format("cannot load certificate '{}': {}", t.cert_file, ec.message()));
    ctx.use_private_key_file(t.key_file.empty() ? t.cert_file : t.key_file, asio::ssl::context::pem, ec);
    if (ec) throw ClientError(Kind::Connect, fmt::format("cannot load key '{}': {}", t.key_file, ec.message()));
  }
}

mqtt::Connack SyncClient::connect() {
  const auto deadline = Clock::now() + options_.timeout;
  if (options_.tls.enabled) prepare_tls();
  asio::ip::tcp::resolver resolver(impl_->io);
  boost::system::error_code ec;
  auto endpoints = resolver.resolve(options_.host, std::to_string(options_.port), ec);
  if (ec) throw ClientError(Kind::Connect, fmt::format("cannot resolve host '{}': {}", options_.host, ec.message()));
  impl_->tcp = std::make_unique<asio::ip::tcp::socket>(impl_->io);
  asio::connect(*impl_->tcp, endpoints, ec);
  if (ec) {
    throw ClientError(Kind::Connect,
                      fmt::format("cannot connect to {}:{}: {}", options_.host, options_.port, ec.message()));
  }
  impl_->tcp->set_option(asio::ip::tcp::no_delay(true), ec);

  if (options_.tls.enabled) {
    auto& ctx = impl_->ssl_context;
    const auto& t = options_.tls;
    impl_->tls = std::make_unique<asio::ssl::stream<asio::ip::tcp::socket>>(std::move(*impl_->tcp), ctx);
    impl_->tcp.reset();
    const std::string name = t.server_name.empty() ? options_.host : t.server_name;
    SSL_set_tlsext_host_name(impl_->tls->native_handle(), name.c_str());
    if (!t.insecure) impl_->tls->set_verify_callback(asio::ssl::host_name_verification(name));
    impl_->tls->handshake(asio::ssl::stream_base::client, ec);
    if (ec) {
      const long v = SSL_get_verify_result(impl_->tls->native_handle());
      if (v != X509_V_OK) {
        throw ClientError(Kind::Connect,
                          fmt::format("TLS certificate verification failed: {}", X509_verify_cert_error_string(v)));
      }
      throw ClientError(Kind::Connect, fmt::format("TLS handshake failed: {}", ec.message()));
    }
  }

  mqtt::Connect c;
  c.version = options_.version;
  c.client_id = options_.client_id;
  c.clean_start = options_.clean_start;
  c.keep_alive = options_.keep_alive;
  c.username = options_.username;
  c.password = options_.password;
  c.will = options_.will;
  if (options_.version == mqtt::Version::V5 && options_.session_expiry)
    c.properties.session_expiry_interval = options_.session_expiry;
  send(c);
  while (true) {
    mqtt::Packet p = next_packet(deadline);
    if (auto* ack = std::get_if<mqtt::Connack>(&p)) {
      if (ack->reason != mqtt::ReasonCode::Success) {
        throw ClientError(Kind::Refused, fmt::format("broker refused the connection: {} (0x{:02X})",
                                                     mqtt::to_string(ack->reason), static_cast<unsigned>(ack->reason)));
      }
      if (ack->properties.assigned_client_identifier) options_.client_id = *ack->properties.assigned_client_identifier;
      if (ack->properties.server_keep_alive) options_.keep_alive = *ack->properties.server_keep_alive;
      return *ack;
    }
    throw ClientError(Kind::Protocol, "the broker sent something other than CONNACK");
  }
}

mqtt::ReasonCode SyncClient::publish(mqtt::Publish p) {
  if (p.qos > 0) p.packet_id = next_id();
  const std::uint16_t id = p.packet_id;
  const std::uint8_t qos = p.qos;
  send(p);
  if (qos == 0) return mqtt::ReasonCode::Success;
  const auto deadline = Clock::now() + options_.timeout;
  mqtt::ReasonCode result = mqtt::ReasonCode::Success;
  while (true) {
    mqtt::Packet in = next_packet(deadline);
    if (auto* a = std::get_if<mqtt::PubAck>(&in)) {
      if (a->packet_id != id) continue;
      if (a->type == mqtt::PacketType::Puback && qos == 1) return a->reason;
      if (a->type == mqtt::PacketType::Pubrec && qos == 2) {
        result = a->reason;
        if (static_cast<unsigned>(a->reason) >= 0x80) return a->reason;
        send(mqtt::PubAck{mqtt::PacketType::Pubrel, id, mqtt::ReasonCode::Success, {}});
        continue;
      }
      if (a->type == mqtt::PacketType::Pubcomp && qos == 2) return result;
    } else if (auto* m = std::get_if<mqtt::Publish>(&in)) {
      pending_.push_back(std::move(*m));
    } else if (auto* d = std::get_if<mqtt::Disconnect>(&in)) {
      throw ClientError(Kind::Protocol, fmt::format("broker disconnected: {}", mqtt::to_string(d->reason)));
    }
  }
}

mqtt::Suback SyncClient::subscribe(std::vector<mqtt::Subscription> subs, std::uint32_t subscription_id) {
  mqtt::Subscribe s;
  s.packet_id = next_id();
  s.subscriptions = std::move(subs);
  if (subscription_id) s.properties.subscription_identifiers.push_back(subscription_id);
  send(s);
  const auto deadline = Clock::now() + options_.timeout;
  while (true) {
    mqtt::Packet in = next_packet(deadline);
    if (auto* a = std::get_if<mqtt::Suback>(&in); a && a->packet_id == s.packet_id) return *a;
    if (auto* m = std::get_if<mqtt::Publish>(&in)) pending_.push_back(std::move(*m));
    if (auto* d = std::get_if<mqtt::Disconnect>(&in))
      throw ClientError(Kind::Protocol, fmt::format("broker disconnected: {}", mqtt::to_string(d->reason)));
  }
}

std::optional<mqtt::Publish> SyncClient::receive(std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (true) {
    if (!pending_.empty()) {
      mqtt::Publish m = std::move(pending_.front());
      pending_.erase(pending_.begin());
      if (m.qos == 1) send(mqtt::PubAck{mqtt::PacketType::Puback, m.packet_id, mqtt::ReasonCode::Success, {}});
      if (m.qos == 2) {
        send(mqtt::PubAck{mqtt::PacketType::Pubrec, m.packet_id, mqtt::ReasonCode::Success, {}});
        // A retransmission of one already delivered (before its PUBREL) is not delivered twice.
        if (!impl_->inbound_qos2.insert(m.packet_id).second) continue;
      }
      return m;
    }
    auto wake = deadline;
    if (options_.keep_alive) {
      const auto ping_at = impl_->last_sent + std::chrono::seconds(options_.keep_alive);
      if (ping_at <= Clock::now()) {
        send(mqtt::Pingreq{});
        continue;
      }
      wake = std::min(wake, ping_at);
    }
    mqtt::Packet in;
    try {
      in = next_packet(wake);
    } catch (const ClientError& e) {
      if (e.kind() != Kind::Timeout) throw;
      if (Clock::now() >= deadline) return std::nullopt;
      continue;
    }
    if (auto* m = std::get_if<mqtt::Publish>(&in)) {
      pending_.push_back(std::move(*m));
    } else if (auto* a = std::get_if<mqtt::PubAck>(&in); a && a->type == mqtt::PacketType::Pubrel) {
      impl_->inbound_qos2.erase(a->packet_id);
      send(mqtt::PubAck{mqtt::PacketType::Pubcomp, a->packet_id, mqtt::ReasonCode::Success, {}});
    } else if (auto* d = std::get_if<mqtt::Disconnect>(&in)) {
      throw ClientError(Kind::Protocol, fmt::format("broker disconnected: {}", mqtt::to_string(d->reason)));
    }
  }
}

void SyncClient::disconnect() {
  try {
    send(mqtt::Disconnect{});
  } catch (const ClientError&) {
  }
  boost::system::error_code ec;
  impl_->socket().shutdown(asio::ip::tcp::socket::shutdown_both, ec);
  impl_->socket().close(ec);
}

}  // namespace petrel::client
