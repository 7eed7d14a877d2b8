// net::Connection<Stream>: one client's network connection, over plain TCP
// (Stream = TcpStream) or TLS (TlsStream). It owns the stream, the write
// queue and the connection's timer, and feeds received bytes to its
// broker::Client. Everything here runs on the connection's own event loop;
// the only entry points from other threads are wake() and kick(), which post.
//
// Reading: a TCP connection waits for readability and then reads into a
// per-thread buffer, so an idle connection holds no read buffer at all. A
// busy one reads at most 256 KiB per turn of the loop, so one fast sender
// cannot starve the other connections of its loop. A TLS connection reads
// through OpenSSL into a small buffer of its own.
//
// Writing: packets are queued as chunks, either copies (small acks) or slices
// of shared, immutable buffers (PUBLISH encoded once for many subscribers).
// TCP writes them with one gather write per batch; TLS copies them into one
// buffer first (many small TLS records would cost more than the copy). A peer
// that does not read what it provokes (acks, pings) stops being read once
// 4 MiB are queued.
//
// TLS: the handshake and the CONNECT share one deadline (connect_timeout).
// Before the handshake, the first byte is peeked so that plaintext MQTT or
// HTTP sent to a TLS port is named as such. A presented client certificate
// is checked explicitly after the handshake; a failed one never connects.
//
// Errors: every failure here (reset, EOF, protocol error, timeout, failed
// handshake) belongs to this connection alone; it closes the socket, counts
// the failure in its listener's stats, logs the true reason (rate-limited),
// tells its Client, and is gone.
#pragma once

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>
#include <memory>
#include <string>
#include <vector>

#include "broker/broker.hpp"
#include "broker/client.hpp"
#include "broker/transport.hpp"
#include "net/listener_stats.hpp"
#include "net/tls.hpp"

namespace petrel::net {

using TcpStream = boost::asio::ip::tcp::socket;
using TlsStream = boost::asio::ssl::stream<boost::asio::ip::tcp::socket>;

template <class Stream>
class Connection final : public broker::Transport, public std::enable_shared_from_this<Connection<Stream>> {
 public:
  static constexpr bool kTls = std::is_same_v<Stream, TlsStream>;

  // `context` and `tls` are for TLS connections (null for TCP); the context
  // stays alive as long as the connection.
  Connection(boost::asio::ip::tcp::socket socket, std::shared_ptr<boost::asio::ssl::context> context,
             const TlsSettings* tls, broker::Broker& broker, std::shared_ptr<ListenerStats> stats);
  ~Connection() override;

  // Starts the connection on its own loop (callable from any thread).
  void post_start();

  // broker::Transport
  void send(std::string_view bytes) override;
  void send_shared(const std::shared_ptr<const std::string>& buf, std::size_t offset, std::size_t length) override;
  std::size_t pending_bytes() const override { return queued_bytes_ + writing_bytes_; }
  void close() override;
  const std::string& peer() const override { return peer_; }
  std::shared_ptr<broker::Transport> shared_transport() override { return this->shared_from_this(); }
  void wake() override;
  void kick(mqtt::ReasonCode reason) override;

 private:
  struct Chunk {
    std::shared_ptr<const std::string> shared;  // null: the bytes are in the owned buffer
    std::size_t offset;
    std::size_t length;
  };

  void start();
  static Stream make_stream(boost::asio::ip::tcp::socket socket, boost::asio::ssl::context* context) {
    if constexpr (kTls) {
      return Stream(std::move(socket), *context);
    } else {
      return Stream(std::move(socket));
    }
  }
  boost::asio::ip::tcp::socket& socket() {
    if constexpr (kTls) {
      return stream_.next_layer();
    } else {
      return stream_;
    }
  }
  void start_reading();
  void wait_readable();
  void on_readable();
  void read_tls();
  void after_read(std::size_t total, bool was_connected);
  void consume(const char* data, std::size_t n);
  void start_write();
  void on_written(const boost::system::error_code& ec, std::size_t n);
  void arm_timer();
  void on_timer();
  void shutdown(std::string_view why);
  void tls_peek();
  void tls_handshake();
  void handshake_failed(const std::string& label, const std::string& reason);
  template <class F>
  void dispatch(F&& fn);

  Stream stream_;
  std::shared_ptr<boost::asio::ssl::context> tls_context_;
  ClientCertPolicy client_cert_ = ClientCertPolicy::None;
  IdentitySource identity_source_ = IdentitySource::None;
  boost::asio::steady_timer timer_;
  broker::Broker& broker_;
  std::shared_ptr<ListenerStats> stats_;
  broker::Client client_;
  std::string peer_;
  std::unique_ptr<char[]> tls_read_buffer_;

  std::vector<Chunk> queued_;
  std::string queued_owned_;
  std::size_t queued_bytes_ = 0;
  std::vector<Chunk> writing_;
  std::string writing_owned_;
  std::size_t writing_bytes_ = 0;
  std::vector<boost::asio::const_buffer> buffers_;

  broker::Clock::time_point deadline_;
  bool in_handshake_ = false;
  bool writing_now_ = false;
  bool in_dispatch_ = false;
  bool close_requested_ = false;
  bool read_paused_ = false;
  bool closed_ = false;
};

extern template class Connection<TcpStream>;
extern template class Connection<TlsStream>;

}  // namespace petrel::net
