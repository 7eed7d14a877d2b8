// The definitions of net::Connection<Stream> (see connection.hpp), included
// only by connection_tcp.cpp and connection_ws.cpp, which instantiate them.
#pragma once

#include <fmt/format.h>
#include <openssl/ssl.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include <array>
#include <functional>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>

#include "net/connection.hpp"

namespace petrel::net {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
using broker::Clock;

// The HTTP upgrade of a WebSocket connection while it is in progress; freed
// once the connection speaks MQTT.
struct WsUpgrade {
  beast::flat_buffer buffer{16 * 1024};
  http::request_parser<http::empty_body> parser;
  http::response<http::string_body> response;
  bool refusing = false;
  WsUpgrade() { parser.header_limit(8 * 1024); }
};

namespace detail {

// Bytes one TCP connection may read per turn of its event loop before it
// yields to the other connections of the loop.
constexpr std::size_t kReadBudget = 256 * 1024;
// Bytes queued for writing above which the connection stops reading.
constexpr std::size_t kReadPauseBytes = 4 << 20;
// Acknowledgements held back for the durable store above which the
// connection stops reading (a publisher faster than the disk waits for it
// instead of buffering without bound).
constexpr std::size_t kReadPauseHeld = 4096;
// How long a connection may take to write out its last bytes once closing.
constexpr auto kCloseGrace = std::chrono::seconds(5);
// WebSocket connections read into a buffer of their own (Beast reads frames).
constexpr std::size_t kOwnReadBuffer = 8 * 1024;

// TCP connections read into one buffer per thread (shared by the
// translation units that instantiate Connection).
inline thread_local std::array<char, 64 * 1024> read_buffer;

template <class S>
std::string format_peer(const S& s) {
  boost::system::error_code ec;
  auto ep = s.remote_endpoint(ec);
  if (ec) return "unknown";
  if (ep.address().is_v6()) return fmt::format("[{}]:{}", ep.address().to_string(), ep.port());
  return fmt::format("{}:{}", ep.address().to_string(), ep.port());
}

}  // namespace detail

using detail::kCloseGrace;
using detail::kOwnReadBuffer;
using detail::kReadBudget;
using detail::kReadPauseBytes;
using detail::kReadPauseHeld;

template <class Stream>
Connection<Stream>::Connection(Socket socket, std::shared_ptr<asio::ssl::context> context,
                               const TlsSettings* tls, const WebSocketSettings* ws, broker::Broker& broker,
                               std::shared_ptr<ListenerStats> stats)
    : stream_(make_stream(std::move(socket), context.get())),
      extras_(kTls || kWs ? std::make_unique<Extras>(Extras{std::move(context),
                                                            tls ? tls->client_cert : ClientCertPolicy::None,
                                                            tls ? tls->identity_as_username : IdentitySource::None, ws,
                                                            nullptr, nullptr})
                          : nullptr),
      broker_(broker),
      stats_(std::move(stats)),
      client_(broker, *this),
      peer_(detail::format_peer(this->socket())) {
  // A TLS connection arrives with its handshake slot already reserved by the
  // listener; shutdown() gives it back.
  in_handshake_ = kTls;
  stats_->open.fetch_add(1, std::memory_order_relaxed);
}

template <class Stream>
Connection<Stream>::~Connection() {
  if (in_handshake_) stats_->handshakes_in_progress.fetch_sub(1, std::memory_order_relaxed);
  // Only the listener's stats (shared) may be touched here: at shutdown the
  // loops are destroyed after the broker.
  stats_->open.fetch_sub(1, std::memory_order_relaxed);
}

template <class Stream>
void Connection<Stream>::post_start() {
  asio::post(stream_.get_executor(), [self = this->shared_from_this()] { self->start(); });
}

template <class Stream>
void Connection<Stream>::start() {
  boost::system::error_code ec;
  socket().set_option(asio::ip::tcp::no_delay(true), ec);
  deadline_ = Clock::now() + broker_.config().connect_timeout;
  arm_timer();
  socket().non_blocking(true, ec);
  if constexpr (kPolled) {
    // Held by the deadline wheel from arm_timer() on (poller.hpp).
    socket().start_polling(*this, ec);
    if (ec) {
      shutdown(fmt::format("cannot watch the socket: {}", ec.message()));
      return;
    }
  }
  if constexpr (kTls) {
    tls_peek();
  } else if constexpr (kWs) {
    ws_upgrade();
  } else {
    start_reading();
  }
}

template <class Stream>
template <class F>
void Connection<Stream>::dispatch(F&& fn) {
  const bool outer = !in_dispatch_;
  in_dispatch_ = true;
  // The connection's boundary: whatever its protocol handling throws (a
  // bug, std::bad_alloc) ends this connection only, never the loop.
  try {
    fn();
  } catch (const std::exception& e) {
    contain(e.what());
  } catch (...) {
    contain("an exception that is not a std::exception");
  }
  if (outer) {
    in_dispatch_ = false;
    schedule();
  }
}

template <class Stream>
void Connection<Stream>::schedule() {
  if (batched_ || closed_) return;
  batched_ = true;
  LoopBatch::add(this->shared_from_this(), stream_.get_executor());
}

template <class Stream>
void Connection<Stream>::run_batched() {
  batched_ = false;
  if (closed_) return;
  if (flush_requested_) {
    flush_requested_ = false;
    dispatch([&] { client_.flush(); });  // schedules this connection again, served in this same batch
    return;
  }
  start_write();
}

template <class Stream>
void Connection<Stream>::contain(std::string_view what) {
  broker::Stats::add(broker_.stats().internal_errors);
  spdlog::error("internal error on the connection of client '{}' from {}, closing that connection: {}",
                client_.client_id(), peer_, what);
  try {
    client_.on_internal_error(what);
  } catch (...) {
    // Not even a clean goodbye: drop the socket.
    try {
      shutdown("internal error");
    } catch (...) {
    }
  }
}

// ------------------------------------------------------------------ TLS --

template <class Stream>
void Connection<Stream>::tls_peek() {
  // Wait for the first byte and look at it before OpenSSL does: a TLS
  // handshake starts with record type 0x16.
  if constexpr (kTls) {
  socket().async_wait(
      Socket::wait_read, [self = this->shared_from_this()](const boost::system::error_code& ec) {
        if (self->closed_) return;
        if (ec) {
          if (ec != asio::error::operation_aborted) self->handshake_failed("connection_lost", ec.message());
          return;
        }
        unsigned char first = 0;
        const auto n = ::recv(self->socket().native_handle(), &first, 1, MSG_PEEK);
        if (n <= 0) {
          self->handshake_failed("connection_lost", "client closed the connection before the TLS handshake");
          return;
        }
        if (first != 0x16) {
          if (first == 0x10) {
            self->handshake_failed("plaintext_mqtt", "plaintext MQTT sent to TLS port");
          } else if (first >= 'A' && first <= 'Z') {
            self->handshake_failed("not_tls", "plaintext (HTTP?) sent to TLS port");
          } else {
            self->handshake_failed("not_tls", fmt::format("not a TLS handshake (first byte 0x{:02X})", first));
          }
          return;
        }
        self->tls_handshake();
      });
  }
}

template <class Stream>
void Connection<Stream>::tls_handshake() {
  if constexpr (kTls) {
    tls_stream().async_handshake([self = this->shared_from_this()](const boost::system::error_code& ec) {
          if (self->closed_) return;
          SSL* ssl = self->tls_stream().native_handle();
          if (ec) {
            self->handshake_failed(failure_label(ssl, ec), describe_handshake_failure(ssl, ec));
            return;
          }
          // Never trust the handshake alone: a certificate the client presented
          // must have verified.
          if (self->extras_->client_cert != ClientCertPolicy::None) {
            X509* cert = SSL_get0_peer_certificate(ssl);
            if (!cert && self->extras_->client_cert == ClientCertPolicy::Required) {
              self->handshake_failed("no_client_certificate", "no client certificate");
              return;
            }
            if (cert && SSL_get_verify_result(ssl) != X509_V_OK) {
              self->handshake_failed(failure_label(ssl, {}), describe_handshake_failure(ssl, {}));
              return;
            }
          }
          self->in_handshake_ = false;
          self->stats_->handshakes_in_progress.fetch_sub(1, std::memory_order_relaxed);
          self->stats_->handshakes_completed.fetch_add(1, std::memory_order_relaxed);
          if (self->extras_->identity_source != IdentitySource::None)
            self->client_.set_certificate_identity(certificate_identity(ssl, self->extras_->identity_source));
          if constexpr (kWs) {
            self->ws_upgrade();
          } else {
            self->start_reading();  // like TCP: into the loop's read buffer when readable
          }
        });
  }
}

template <class Stream>
void Connection<Stream>::handshake_failed(const std::string& label, const std::string& reason) {
  stats_->count_failure(label);
  stats_->warn("TLS handshake failed: peer={} reason={}", peer_, reason);
  if constexpr (kTls) {
    // The alert OpenSSL just wrote says why (an expired certificate...). A
    // TLS 1.3 client may already be sending its CONNECT: closing with that
    // unread would reset the connection and the client would see "broken
    // pipe" instead of the alert. So: FIN after the alert, then read and
    // drop what the client still sends until it closes, for at most a
    // second, then close.
    auto drain = std::make_shared<std::function<void()>>();
    auto self = this->shared_from_this();
    const auto give_up = Clock::now() + std::chrono::seconds(1);
    boost::system::error_code ignored;
    socket().shutdown(Socket::shutdown_send, ignored);
    *drain = [self, drain, give_up] {
      self->socket().async_wait(Socket::wait_read, [self, drain, give_up](const boost::system::error_code& ec) {
        char sink[4096];
        boost::system::error_code rec;
        std::size_t n = 0;
        if (!ec) {
          do n = self->socket().read_some(asio::buffer(sink), rec);
          while (!rec && n > 0);
        }
        const bool again = !ec && (rec == asio::error::would_block || rec == asio::error::try_again) &&
                           Clock::now() < give_up;
        if (again) {
          (*drain)();
        } else {
          *drain = nullptr;  // breaks the cycle
          self->close_drained();
        }
      });
    };
    // Everything else about the connection ends now; only the socket waits.
    closed_ = true;
    if (in_handshake_) {
      in_handshake_ = false;
      stats_->handshakes_in_progress.fetch_sub(1, std::memory_order_relaxed);
    }
    client_.on_closed(reason);
    draining_ = true;
    deadline_ = give_up;
    arm_timer();  // a client that sends nothing and never closes is closed then (on_timer)
    (*drain)();
    return;
  }
  shutdown(reason);
}

// ------------------------------------------------------------ WebSocket --

template <class Stream>
void Connection<Stream>::ws_upgrade() {
  if constexpr (kWs) {
    extras_->upgrade = std::make_unique<WsUpgrade>();
    http::async_read(stream_.next_layer(), extras_->upgrade->buffer, extras_->upgrade->parser,
                     [self = this->shared_from_this()](const boost::system::error_code& ec, std::size_t) {
                       if (self->closed_) return;
                       if (ec) {
                         if (ec == asio::error::operation_aborted) return;
                         if (ec == http::error::end_of_stream || ec == asio::error::eof ||
                             ec == asio::error::connection_reset || ec == asio::ssl::error::stream_truncated) {
                           self->stats_->count_failure("connection_lost");
                           self->stats_->warn("WebSocket upgrade failed: peer={} reason=client closed the connection "
                                              "before completing the upgrade request",
                                              self->peer_);
                           self->shutdown("connection lost during the WebSocket upgrade");
                           return;
                         }
                         self->ws_refuse(400, "bad_http_request", "malformed HTTP request: " + ec.message());
                         return;
                       }
                       self->ws_accept();
                     });
  }
}

template <class Stream>
void Connection<Stream>::ws_accept() {
  if constexpr (kWs) {
    const auto& request = extras_->upgrade->parser.get();
    auto decision = decide_upgrade(request, *extras_->ws);
    if (decision.status != 101) {
      ws_refuse(decision.status, decision.label, decision.reason);
      return;
    }
    // RFC 6455 4.1: the client waits for the 101 before sending frames.
    if (extras_->upgrade->buffer.size() != 0) {
      ws_refuse(400, "bad_upgrade", "data sent before the WebSocket upgrade completed");
      return;
    }
    boost::system::error_code ec;
    const auto remote = socket().remote_endpoint(ec);
    if (!ec) {
      if (auto client = forwarded_for(request, remote.address(), *extras_->ws); !client.empty())
        peer_ = fmt::format("{} (via proxy {})", client, peer_);
    }
    stream_.set_option(websocket::stream_base::decorator(
        [protocol = std::move(decision.subprotocol)](websocket::response_type& response) {
          response.set(http::field::server, "petrel");
          response.set(http::field::sec_websocket_protocol, protocol);
        }));
    stream_.read_message_max(extras_->ws->max_message);
    stream_.auto_fragment(false);
    stream_.binary(true);
    stream_.async_accept(request, [self = this->shared_from_this()](const boost::system::error_code& ec) {
      if (self->closed_) return;
      if (ec) {
        if (ec == asio::error::operation_aborted) return;
        // Beast has answered 400 (or 426 for a wrong version) already.
        self->stats_->count_failure("bad_upgrade");
        self->stats_->warn("WebSocket upgrade refused: peer={} status=400 reason={}", self->peer_, ec.message());
        self->shutdown(ec.message());
        return;
      }
      self->extras_->upgrade.reset();
      self->extras_->read_buffer = std::make_unique<char[]>(kOwnReadBuffer);
      self->start_reading();
    });
  }
}

template <class Stream>
void Connection<Stream>::ws_refuse(unsigned status, const std::string& label, const std::string& reason) {
  if constexpr (kWs) {
    stats_->count_failure(label);
    stats_->warn("WebSocket upgrade refused: peer={} status={} reason={}", peer_, status, reason);
    extras_->upgrade->refusing = true;
    auto& response = extras_->upgrade->response;
    response.version(11);
    response.result(status);
    response.set(http::field::server, "petrel");
    response.set(http::field::content_type, "text/plain");
    if (status == 426) {
      response.set(http::field::upgrade, "websocket");
      response.set(http::field::sec_websocket_version, "13");
    }
    if (status == 405) response.set(http::field::allow, "GET");
    response.keep_alive(false);
    response.body() = reason + "\n";
    response.prepare_payload();
    http::async_write(stream_.next_layer(), response,
                      [self = this->shared_from_this()](const boost::system::error_code&, std::size_t) {
                        self->shutdown("WebSocket upgrade refused");
                      });
  }
}

template <class Stream>
void Connection<Stream>::read_ws() {
  if constexpr (kWs) {
    stream_.async_read_some(
        asio::buffer(extras_->read_buffer.get(), kOwnReadBuffer),
        [self = this->shared_from_this()](const boost::system::error_code& ec, std::size_t n) {
          if (self->closed_) return;
          if (ec) {
            if (ec == asio::error::operation_aborted) return;
            if (ec == websocket::error::closed) {
              const auto& r = self->stream_.reason();
              self->shutdown(fmt::format("connection closed by peer (WebSocket close {}{}{})", r.code,
                                         r.reason.empty() ? "" : ": ", r.reason.c_str()));
            } else if (ec == websocket::error::message_too_big) {
              // Beast has sent close 1009.
              self->shutdown(fmt::format("WebSocket message larger than {} bytes", self->extras_->ws->max_message));
            } else {
              const bool eof = ec == asio::error::eof || ec == asio::ssl::error::stream_truncated;
              self->shutdown(eof ? "connection closed by peer" : "WebSocket: " + ec.message());
            }
            return;
          }
          if (self->close_requested_) return;
          if (self->stream_.got_text()) {
            // MQTT-6.0.0-1: MQTT travels in binary frames only.
            self->ws_close_code_ = websocket::close_code::unknown_data;
            if (!self->client_.connected()) {
              self->stats_->count_failure("text_frame");
              self->stats_->warn("WebSocket text frame instead of binary: peer={}", self->peer_);
            }
            self->dispatch([&] { self->client_.on_closed("WebSocket text frame (MQTT needs binary frames)"); });
            return;
          }
          const bool was_connected = self->client_.connected();
          self->dispatch([&] { self->consume(self->extras_->read_buffer.get(), n); });
          self->after_read(n, was_connected);
        });
  }
}

template <class Stream>
void Connection<Stream>::ws_close() {
  if constexpr (kWs) {
    if (ws_closing_) return;
    ws_closing_ = true;
    const auto code = ws_close_code_ ? ws_close_code_ : std::uint16_t{websocket::close_code::normal};
    stream_.async_close(websocket::close_reason(code), [self = this->shared_from_this()](const boost::system::error_code&) {
      self->shutdown("closed by broker");
    });
  }
}

// --------------------------------------------------------------- reading --

template <class Stream>
void Connection<Stream>::start_reading() {
  if constexpr (kWs) {
    read_ws();
  } else {
    wait_readable();  // TCP and TLS alike
  }
}

template <class Stream>
void Connection<Stream>::wait_readable() {
  if constexpr (kPolled) {
    want_read_ = true;
    // Edge-triggered: a socket not read dry (reading paused, or stopped by
    // the budget) announces nothing new; read it on the next turn.
    if (socket().readable())
      asio::post(stream_.get_executor(), [self = this->shared_from_this()] {
        if (!self->want_read_) return;
        self->want_read_ = false;
        self->on_readable();
      });
    return;
  } else {
  socket().async_wait(Socket::wait_read,
                      [self = this->shared_from_this()](const boost::system::error_code& ec) {
                        if (ec) {
                          if (ec != asio::error::operation_aborted) self->shutdown(ec.message());
                          return;
                        }
                        self->on_readable();
                      });
  }
}

template <class Stream>
void Connection<Stream>::on_ready(std::uint32_t events) {
  if constexpr (kPolled) {
    if (closed_) return;
    socket().note(events);
    if (want_write_ && socket().writable()) {
      want_write_ = false;
      write_polled();
    }
    if (want_read_ && socket().readable()) {
      want_read_ = false;
      on_readable();
    }
  }
}

template <class Stream>
void Connection<Stream>::consume(const char* data, std::size_t n) {
  broker::Stats::add(broker_.stats().bytes_received, n);
  client_.on_bytes(std::string_view(data, n));
}

template <class Stream>
void Connection<Stream>::on_readable() {
  if (closed_ || close_requested_) return;
  const bool was_connected = client_.connected();
  std::size_t total = 0;
  bool lost = false;
  bool want_write = false;  // TLS: OpenSSL must write (a key update) before it can read on
  dispatch([&] {
    while (total < kReadBudget && !client_.closing()) {
      std::size_t n = 0;
      if constexpr (kTls && !kWs) {
        const auto r = stream_.try_read(detail::read_buffer.data(), detail::read_buffer.size());
        if (r.status == TlsSocket::Status::WantRead) break;
        if (r.status == TlsSocket::Status::WantWrite) {
          want_write = true;
          break;
        }
        if (r.status == TlsSocket::Status::Failed) {
          const bool eof = r.ec == asio::error::eof || r.ec == asio::ssl::error::stream_truncated;
          client_.on_closed(eof ? std::string("connection closed by peer") : r.ec.message());
          lost = true;
          return;
        }
        n = r.bytes;
      } else {
        boost::system::error_code ec;
        n = socket().read_some(asio::buffer(detail::read_buffer), ec);
        if (ec == asio::error::would_block || ec == asio::error::try_again) break;
        if (ec) {
          client_.on_closed(ec == asio::error::eof ? std::string("connection closed by peer") : ec.message());
          lost = true;
          return;
        }
      }
      total += n;
      consume(detail::read_buffer.data(), n);
    }
  });
  if (lost) {
    shutdown("connection lost");
    return;
  }
  if constexpr (kTls) {
    if (want_write) {
      socket().async_wait(Socket::wait_write, [self = this->shared_from_this()](const boost::system::error_code& ec) {
        if (ec) {
          if (ec != asio::error::operation_aborted) self->shutdown(ec.message());
          return;
        }
        self->on_readable();
      });
      return;
    }
  }
  after_read(total, was_connected);
}

template <class Stream>
void Connection<Stream>::after_read(std::size_t total, bool was_connected) {
  if (closed_ || close_requested_) return;
  if (client_.connected()) {
    const auto ka = client_.keep_alive();
    deadline_ = ka ? Clock::now() + std::chrono::milliseconds(ka * 1500) : Clock::time_point::max();
    if (!was_connected) arm_timer();
  }
  if (pending_bytes() > kReadPauseBytes || client_.held_back() > kReadPauseHeld || client_.awaiting_decision()) {
    // The peer is not reading what it provokes (acks, pings), or its
    // CONNECT awaits the authorizer: stop reading until the writes drain (the
    // CONNACK is one), instead of buffering without bound.
    read_paused_ = true;
  } else if constexpr (kWs) {
    read_ws();
  } else if (total >= kReadBudget) {
    asio::post(stream_.get_executor(), [self = this->shared_from_this()] { self->on_readable(); });
  } else {
    wait_readable();
  }
}

// --------------------------------------------------------------- writing --

template <class Stream>
void Connection<Stream>::send(std::string_view bytes) {
  if (closed_ || bytes.empty()) return;
  auto& q = out();
  if (!q.queued.empty() && !q.queued.back().message &&
      q.queued.back().offset + q.queued.back().length == q.queued_owned.size()) {
    q.queued.back().length += bytes.size();
  } else {
    q.queued.push_back(Chunk{nullptr, nullptr, q.queued_owned.size(), bytes.size()});
  }
  q.queued_owned.append(bytes);
  q.queued_bytes += bytes.size();
  if (!in_dispatch_) schedule();
}

template <class Stream>
void Connection<Stream>::send_payload(const broker::MessagePtr& message, std::string_view bytes) {
  if (closed_ || bytes.empty()) return;
  auto& q = out();
  q.queued.push_back(Chunk{message, bytes.data(), 0, bytes.size()});
  q.queued_bytes += bytes.size();
  if (!in_dispatch_) schedule();
}

template <class Stream>
void Connection<Stream>::start_write() {
  if (closed_ || writing_now_ || in_handshake_) return;
  if (nothing_queued()) {
    if (close_requested_) {
      if constexpr (kWs) {
        if (!extras_->upgrade) {
          ws_close();
          return;
        }
      }
      shutdown("closed by broker");
    }
    return;
  }
  auto& q = out();
  std::swap(q.queued, q.writing);
  std::swap(q.queued_owned, q.writing_owned);
  q.writing_bytes = q.queued_bytes;
  q.queued_bytes = 0;
  q.buffers.clear();
  if constexpr (kTls) {
    // One contiguous buffer: OpenSSL writes one record per buffer.
    std::string flat;
    flat.reserve(q.writing_bytes);
    for (const auto& c : q.writing) flat.append(c.message ? c.data : q.writing_owned.data() + c.offset, c.length);
    q.writing.clear();
    q.writing_owned = std::move(flat);
    q.buffers.emplace_back(q.writing_owned.data(), q.writing_owned.size());
  } else {
    for (const auto& c : q.writing)
      q.buffers.emplace_back(c.message ? c.data : q.writing_owned.data() + c.offset, c.length);
  }
  writing_now_ = true;
  if constexpr (kPolled) {
    q.cursor = {};
    q.written = 0;
    write_polled();
  } else {
    auto done = [self = this->shared_from_this()](const boost::system::error_code& ec, std::size_t n) {
      self->on_written(ec, n);
    };
    if constexpr (kWs) {
      stream_.async_write(q.buffers, std::move(done));  // one binary message
    } else {
      asio::async_write(stream_, q.buffers, std::move(done));
    }
  }
}

template <class Stream>
void Connection<Stream>::write_polled() {
  if constexpr (kPolled) {
    if (closed_ || !out_) return;
    auto& q = *out_;
    boost::system::error_code ec;
    q.written += socket().write_some(q.buffers, q.cursor, ec);
    if (ec == asio::error::would_block) {
      want_write_ = true;  // on_ready goes on when the socket is writable
      return;
    }
    // Completed (or failed) as Asio's async_write completes: never inside
    // the call that started the write.
    asio::post(stream_.get_executor(), [self = this->shared_from_this(), ec, n = q.written] {
      self->on_written(ec, n);
    });
  }
}

template <class Stream>
void Connection<Stream>::on_written(const boost::system::error_code& ec, std::size_t n) {
  writing_now_ = false;
  broker::Stats::add(broker_.stats().bytes_sent, n);
  if (out_) {
    out_->writing.clear();
    out_->writing_owned.clear();
    out_->writing_bytes = 0;
  }
  if (ec) {
    if (ec != asio::error::operation_aborted) shutdown(fmt::format("write failed: {}", ec.message()));
    return;
  }
  if (closed_) return;
  dispatch([&] { client_.flush(); });
  // Most connections go quiet after their CONNACK: they keep no write
  // queues. A busy connection keeps them (allocating them per write would
  // cost the hot path) until its timer finds it idle (on_timer).
  if (!wrote_once_) {
    wrote_once_ = true;
    if (!writing_now_ && nothing_queued()) out_.reset();
  }
  if (read_paused_ && !close_requested_ && pending_bytes() < kReadPauseBytes / 2 &&
      client_.held_back() < kReadPauseHeld / 2 && !client_.awaiting_decision()) {
    read_paused_ = false;
    start_reading();
  }
}

// --------------------------------------------------- cross-thread entries --

template <class Stream>
void Connection<Stream>::wake() {
  // From this connection's own loop (a publisher on the same loop): join the
  // loop's batch. From another loop: post, and join the batch there.
  auto request = [](const std::shared_ptr<Connection>& self) {
    if (self->closed_) return;
    self->flush_requested_ = true;
    self->schedule();
  };
  if (stream_.get_executor().running_in_this_thread()) {
    request(this->shared_from_this());
  } else {
    asio::post(stream_.get_executor(), [self = this->shared_from_this(), request] { request(self); });
  }
}

template <class Stream>
void Connection<Stream>::kick(mqtt::ReasonCode reason) {
  asio::post(stream_.get_executor(), [self = this->shared_from_this(), reason] {
    if (!self->closed_) self->dispatch([&] { self->client_.kick(reason); });
  });
}

template <class Stream>
void Connection<Stream>::post(std::function<void()> fn) {
  asio::post(stream_.get_executor(), [self = this->shared_from_this(), fn = std::move(fn)] {
    if (!self->closed_) self->dispatch(fn);
  });
}

// ------------------------------------------------------- timers, closing --

template <class Stream>
void Connection<Stream>::arm_timer() {
  DeadlineWheel::local().insert(*this, deadline_, stream_.get_executor());
}

template <class Stream>
void Connection<Stream>::close_drained() {
  if (!draining_) return;
  draining_ = false;
  DeadlineWheel::local().remove(*this);
  boost::system::error_code ec;
  socket().close(ec);  // a pending drain wait ends with operation_aborted
}

template <class Stream>
void Connection<Stream>::on_timer() {
  if (draining_) return close_drained();
  if (closed_) return;
  if (!writing_now_ && nothing_queued()) out_.reset();
  if (Clock::now() < deadline_) {
    arm_timer();
    return;
  }
  if (in_handshake_) {
    handshake_failed("handshake_timeout", "handshake timeout");
    return;
  }
  if (extras_ && extras_->upgrade) {
    if (!extras_->upgrade->refusing) {
      stats_->count_failure("upgrade_timeout");
      stats_->warn("no complete WebSocket upgrade within {} ms: peer={}", broker_.config().connect_timeout.count(),
                   peer_);
    }
    shutdown("WebSocket upgrade timeout");
    return;
  }
  if (close_requested_) {
    shutdown("peer did not read the last bytes in time");
    return;
  }
  if (!client_.connected()) {
    stats_->count_failure("connect_timeout");
    stats_->warn("no CONNECT within {} ms: peer={}", broker_.config().connect_timeout.count(), peer_);
  }
  dispatch([&] { client_.on_timeout(); });
}

template <class Stream>
void Connection<Stream>::close(mqtt::ReasonCode reason) {
  if (closed_ || close_requested_) return;
  close_requested_ = true;
  if (!ws_close_code_) ws_close_code_ = websocket_close_code(reason);
  deadline_ = Clock::now() + kCloseGrace;
  arm_timer();
  if (!in_dispatch_) schedule();
}

template <class Stream>
void Connection<Stream>::shutdown(std::string_view why) {
  if (closed_) return;
  closed_ = true;
  const auto keep = this->shared_from_this();  // leaving the wheel may drop the last other reference
  if (in_handshake_) {
    in_handshake_ = false;
    stats_->handshakes_in_progress.fetch_sub(1, std::memory_order_relaxed);
  }
  client_.on_closed(why);
  boost::system::error_code ec;
  DeadlineWheel::local().remove(*this);
  socket().shutdown(Socket::shutdown_both, ec);
  socket().close(ec);
  // The queues stay (a write in flight may still use them); what was
  // waiting to be written is dropped.
  if (out_) {
    out_->queued.clear();
    out_->queued_owned.clear();
    out_->queued_bytes = 0;
  }
  // upgrade_ stays until the destructor: a pending operation may use it.
}

}  // namespace petrel::net
