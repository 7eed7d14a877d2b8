// net::Connection<Stream>: one client's network connection, over plain TCP
// (Stream = TcpStream), TLS (TlsStream), WebSocket (WsStream) or WebSocket
// over TLS (WssStream). It owns the stream, the write
// queue and the connection's timer, and feeds received bytes to its
// broker::Client. Everything here runs on the connection's own event loop;
// the only entry points from other threads are wake() and kick(), which post.
//
// Reading: a TCP connection waits for readability (its loop's Poller, see
// poller.hpp: no Asio socket state per connection) and then reads into a
// per-thread buffer, so an idle connection holds no read buffer at all. A
// busy one reads at most 256 KiB per turn of the loop, so one fast sender
// cannot starve the other connections of its loop. A TLS connection reads
// the same way, through OpenSSL (net::TlsSocket, OpenSSL on the socket
// itself, record buffers released while idle).
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
// WebSocket: the HTTP upgrade request is read and judged (websocket.hpp)
// before Beast accepts it; a refused one gets an HTTP error. The deadline
// (connect_timeout) covers TLS handshake, upgrade and CONNECT together.
// Afterwards MQTT bytes travel in binary messages, read as a byte stream (a
// packet may span messages; a message may hold several packets). Each batch
// of writes is one binary message. When the MQTT side ends, a close frame
// carries the matching status (websocket_close_code()).
//
// The definitions are in connection_impl.hpp, instantiated for TCP and TLS
// in connection_tcp.cpp and for WebSocket in connection_ws.cpp, so the two
// heavy translation units build in parallel.
//
// Errors: every failure here (reset, EOF, protocol error, timeout, failed
// handshake) belongs to this connection alone; it closes the socket, counts
// the failure in its listener's stats, logs the true reason (rate-limited),
// tells its Client, and is gone.
#pragma once

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/websocket/stream.hpp>
#include <memory>
#include <string>
#include <vector>

#include "broker/broker.hpp"
#include "broker/client.hpp"
#include "broker/transport.hpp"
#include "net/listener_stats.hpp"
#include "net/loop_batch.hpp"
#include "net/poller.hpp"
#include "net/socket.hpp"
#include "net/tls.hpp"
#include "net/tls_socket.hpp"
#include "net/websocket.hpp"

namespace petrel::net {

using TcpStream = PolledSocket;  // readiness from the loop's own epoll set (poller.hpp)
using TlsStream = TlsSocket;
using WsStream = boost::beast::websocket::stream<Socket>;
using WssStream = boost::beast::websocket::stream<TlsStream>;

struct WsUpgrade;  // the HTTP upgrade in progress (connection_impl.hpp)

template <class Stream>
class Connection final : public broker::Transport,
                         public LoopResident,
                         public std::enable_shared_from_this<Connection<Stream>> {
 public:
  static constexpr bool kTls = std::is_same_v<Stream, TlsStream> || std::is_same_v<Stream, WssStream>;
  static constexpr bool kWs = std::is_same_v<Stream, WsStream> || std::is_same_v<Stream, WssStream>;
  static constexpr bool kPolled = std::is_same_v<Stream, TcpStream>;

  // `context` and `tls` are for TLS connections (null otherwise), `ws` for
  // WebSocket ones; the context stays alive as long as the connection, the
  // settings as long as the server.
  Connection(Socket socket, std::shared_ptr<boost::asio::ssl::context> context,
             const TlsSettings* tls, const WebSocketSettings* ws, broker::Broker& broker,
             std::shared_ptr<ListenerStats> stats);
  ~Connection() override;

  // Starts the connection on its own loop (callable from any thread).
  void post_start();

  // broker::Transport
  void send(std::string_view bytes) override;
  void send_payload(const broker::MessagePtr& message, std::string_view bytes) override;
  std::size_t pending_bytes() const override { return out_ ? out_->queued_bytes + out_->writing_bytes : 0; }
  void close(mqtt::ReasonCode reason) override;
  const std::string& peer() const override { return peer_; }
  const std::string& listener() const override { return stats_->name; }
  std::shared_ptr<broker::SessionLink> shared_link() override { return this->shared_from_this(); }
  void wake() override;
  void kick(mqtt::ReasonCode reason) override;
  void post(std::function<void()> fn) override;

  // LoopResident: drain the session if woken, then write what is queued;
  // the deadline (CONNECT, keep alive, close grace) has come.
  void run_batched() override;
  void on_deadline() override { on_timer(); }
  // Plain TCP: the socket became readable or writable (net::Poller).
  void on_ready(std::uint32_t events) override;

 private:
  struct Chunk {
    broker::MessagePtr message;  // null: the bytes are in the owned buffer, at `offset`
    const char* data;            // with `message`: the bytes, inside it
    std::size_t offset;
    std::size_t length;
  };

  void start();
  static Stream make_stream(Socket socket, boost::asio::ssl::context* context) {
    if constexpr (kTls) {
      return Stream(std::move(socket), context->native_handle());
    } else {
      return Stream(std::move(socket));
    }
  }
  // The socket: a PolledSocket for plain TCP, else Asio's.
  auto& socket() { return boost::beast::get_lowest_layer(stream_); }
  // The TLS layer (TLS and WSS connections only).
  auto& tls_stream() {
    if constexpr (kWs) {
      return stream_.next_layer();
    } else {
      return stream_;
    }
  }
  void start_reading();
  void wait_readable();
  void on_readable();
  void read_ws();
  void ws_upgrade();
  void ws_accept();
  void ws_refuse(unsigned status, const std::string& label, const std::string& reason);
  void ws_close();
  void after_read(std::size_t total, bool was_connected);
  void consume(const char* data, std::size_t n);
  // Puts the connection on its loop's batch (loop_batch.hpp); the write
  // happens once the handlers ready in this turn of the loop have run.
  void schedule();
  void start_write();
  // Plain TCP: writes what start_write gathered, as far as the socket takes it.
  void write_polled();
  void on_written(const boost::system::error_code& ec, std::size_t n);
  std::shared_ptr<LoopResident> self() override { return this->shared_from_this(); }
  // Enters the loop's deadline wheel at deadline_.
  void arm_timer();
  void on_timer();
  void shutdown(std::string_view why);
  void tls_peek();
  void tls_handshake();
  void handshake_failed(const std::string& label, const std::string& reason);
  // After a failed TLS handshake: stop draining the client and close.
  void close_drained();
  template <class F>
  void dispatch(F&& fn);
  void contain(std::string_view what);

  Stream stream_;
  // What only TLS and WebSocket connections need; null for plain TCP, where
  // it would cost every connection ~40 bytes for nothing.
  struct Extras {
    std::shared_ptr<boost::asio::ssl::context> tls_context;  // kept alive as long as the connection
    ClientCertPolicy client_cert = ClientCertPolicy::None;
    IdentitySource identity_source = IdentitySource::None;
    const WebSocketSettings* ws = nullptr;
    std::unique_ptr<WsUpgrade> upgrade;       // during the WebSocket upgrade only
    std::unique_ptr<char[]> read_buffer;  // WebSocket reads into a buffer of its own
  };
  std::unique_ptr<Extras> extras_;
  broker::Broker& broker_;
  std::shared_ptr<ListenerStats> stats_;
  broker::Client client_;
  std::string peer_;

  // The write queues exist only while the connection has something to
  // write: most connections are idle, and the queues cost ~140 bytes.
  struct WriteQueues {
    std::vector<Chunk> queued;
    std::string queued_owned;
    std::vector<Chunk> writing;
    std::string writing_owned;
    std::vector<boost::asio::const_buffer> buffers;
    std::size_t queued_bytes = 0;
    std::size_t writing_bytes = 0;
    PolledSocket::WriteCursor cursor;  // plain TCP: how far `buffers` are written
    std::size_t written = 0;
  };
  WriteQueues& out() {
    if (!out_) out_ = std::make_unique<WriteQueues>();
    return *out_;
  }
  bool nothing_queued() const { return !out_ || out_->queued.empty(); }
  std::unique_ptr<WriteQueues> out_;

  broker::Clock::time_point deadline_;
  bool in_handshake_ = false;
  bool writing_now_ = false;
  bool in_dispatch_ = false;
  bool close_requested_ = false;
  bool read_paused_ = false;
  bool closed_ = false;
  bool wrote_once_ = false;
  bool batched_ = false;         // on the loop's batch
  bool flush_requested_ = false;  // woken: drain the session when the batch runs
  bool ws_closing_ = false;        // close frame sent or being sent
  bool want_read_ = false;         // plain TCP: on_readable when the socket is readable
  bool want_write_ = false;        // plain TCP: write_polled when the socket is writable
  bool draining_ = false;          // a failed TLS handshake: reading what the client still sends
  std::uint16_t ws_close_code_ = 0;  // 0: not decided yet
};

extern template class Connection<TcpStream>;
extern template class Connection<TlsStream>;
extern template class Connection<WsStream>;
extern template class Connection<WssStream>;

}  // namespace petrel::net
