// net::TlsSocket: TLS over one of the loop's non-blocking sockets, with
// OpenSSL reading and writing the socket itself (a socket BIO) and releasing
// its record buffers whenever they are empty (SSL_MODE_RELEASE_BUFFERS).
//
// Why not boost::asio::ssl::stream: it keeps four 17 KiB buffers per
// connection for as long as the connection lives (its own input and output
// buffers and the two halves of a BIO pair), and copies every byte through
// them. An idle device on mutual TLS cost ~85 KB that way; here it keeps the
// SSL object and what OpenSSL needs between records, and petrel reads a TLS
// connection as it reads a TCP one: when the socket is readable, SSL_read
// into the loop's shared read buffer until OpenSSL wants more.
//
// It is also an Asio AsyncStream (async_read_some, async_write_some, with a
// handshake and Beast's teardown), so Beast's WebSocket stream runs over it
// for wss listeners. Every operation is the same loop: try the OpenSSL call;
// if OpenSSL wants the socket readable or writable, wait for that
// (Socket::async_wait) and try again. Errors come as Asio's do from its ssl
// stream (the ssl category with OpenSSL's error code, eof, stream_truncated),
// so failure_label() and describe_handshake_failure() read them alike.
//
// Threading: one connection's loop, like the socket.
#pragma once

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <boost/asio/buffer.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/beast/core/role.hpp>
#include <boost/beast/websocket/teardown.hpp>
#include <cstddef>
#include <memory>
#include <string>
#include <utility>

#include "net/socket.hpp"

namespace petrel::net {

class TlsSocket {
 public:
  using executor_type = LoopExecutor;
  using next_layer_type = Socket;
  using lowest_layer_type = Socket;

  // Server side; `ctx` must outlive the connection (Connection keeps it).
  TlsSocket(Socket socket, SSL_CTX* ctx);
  ~TlsSocket();
  TlsSocket(const TlsSocket&) = delete;
  TlsSocket& operator=(const TlsSocket&) = delete;

  executor_type get_executor() { return socket_.get_executor(); }
  Socket& next_layer() { return socket_; }
  Socket& lowest_layer() { return socket_; }
  SSL* native_handle() { return ssl_; }

  // One attempt of an OpenSSL call, without waiting.
  enum class Status : std::uint8_t { Done, WantRead, WantWrite, Failed };
  struct Result {
    Status status;
    std::size_t bytes = 0;
    boost::system::error_code ec;  // with Failed
  };
  Result try_handshake();
  Result try_read(void* data, std::size_t size);
  Result try_write(const void* data, std::size_t size);
  // Sends close_notify if it can without waiting; never fails.
  void try_shutdown() noexcept;

  // Waits until the socket can do what `s` says (WantRead / WantWrite).
  template <class Handler>
  void async_wait_for(Status s, Handler&& handler) {
    socket_.async_wait(s == Status::WantWrite ? Socket::wait_write : Socket::wait_read, std::forward<Handler>(handler));
  }

  template <class Handler>
  void async_handshake(Handler&& handler) {
    Result r = try_handshake();
    if (r.status == Status::Done || r.status == Status::Failed) {
      boost::asio::post(get_executor(), [h = std::forward<Handler>(handler), ec = r.ec]() mutable { h(ec); });
      return;
    }
    async_wait_for(r.status, [this, h = std::forward<Handler>(handler)](const boost::system::error_code& ec) mutable {
      if (ec) return h(ec);
      async_handshake(std::move(h));
    });
  }

  // AsyncReadStream: reads into the first non-empty buffer.
  template <class MutableBufferSequence, class Handler>
  void async_read_some(const MutableBufferSequence& buffers, Handler&& handler) {
    boost::asio::mutable_buffer b;
    for (auto it = boost::asio::buffer_sequence_begin(buffers); it != boost::asio::buffer_sequence_end(buffers); ++it) {
      const boost::asio::mutable_buffer x = *it;
      if (x.size() > 0) {
        b = x;
        break;
      }
    }
    read_loop(b, std::forward<Handler>(handler));
  }

  // AsyncWriteStream: one buffer is written as it is; several (a WebSocket
  // frame header and its payload, an HTTP response's pieces) are gathered
  // into one block first, so that they travel in one TLS record, not one
  // record each.
  template <class ConstBufferSequence, class Handler>
  void async_write_some(const ConstBufferSequence& buffers, Handler&& handler) {
    std::size_t count = 0;
    boost::asio::const_buffer single;
    for (auto it = boost::asio::buffer_sequence_begin(buffers); it != boost::asio::buffer_sequence_end(buffers); ++it) {
      const boost::asio::const_buffer x = *it;
      if (x.size() == 0) continue;
      if (count++ == 0) single = x;
    }
    if (count <= 1) return write_loop(single, std::forward<Handler>(handler));
    auto block = std::make_shared<std::string>();
    for (auto it = boost::asio::buffer_sequence_begin(buffers); it != boost::asio::buffer_sequence_end(buffers); ++it) {
      const boost::asio::const_buffer x = *it;
      const std::size_t room = kGatherMax - block->size();
      block->append(static_cast<const char*>(x.data()), std::min(room, x.size()));
      if (block->size() == kGatherMax) break;
    }
    write_loop(boost::asio::const_buffer(block->data(), block->size()),
               [block, h = std::forward<Handler>(handler)](const boost::system::error_code& ec, std::size_t n) mutable {
                 h(ec, n);
               });
  }

 private:
  static constexpr std::size_t kGatherMax = 16 * 1024;  // one TLS record
  template <class Handler>
  void read_loop(boost::asio::mutable_buffer b, Handler&& handler) {
    if (b.size() == 0) return complete(std::forward<Handler>(handler), {}, 0);
    Result r = try_read(b.data(), b.size());
    if (r.status == Status::Done || r.status == Status::Failed)
      return complete(std::forward<Handler>(handler), r.ec, r.bytes);
    async_wait_for(r.status, [this, b, h = std::forward<Handler>(handler)](const boost::system::error_code& ec) mutable {
      if (ec) return h(ec, std::size_t{0});
      read_loop(b, std::move(h));
    });
  }

  template <class Handler>
  void write_loop(boost::asio::const_buffer b, Handler&& handler) {
    if (b.size() == 0) return complete(std::forward<Handler>(handler), {}, 0);
    Result r = try_write(b.data(), b.size());
    if (r.status == Status::Done || r.status == Status::Failed)
      return complete(std::forward<Handler>(handler), r.ec, r.bytes);
    async_wait_for(r.status, [this, b, h = std::forward<Handler>(handler)](const boost::system::error_code& ec) mutable {
      if (ec) return h(ec, std::size_t{0});
      write_loop(b, std::move(h));
    });
  }

  // Completions never run inside the call that started the operation.
  template <class Handler>
  void complete(Handler&& handler, boost::system::error_code ec, std::size_t n) {
    boost::asio::post(get_executor(), [h = std::forward<Handler>(handler), ec, n]() mutable { h(ec, n); });
  }

  Result classify(int ret);

  Socket socket_;
  SSL* ssl_ = nullptr;
};

// Beast's WebSocket closes its next layer through these (found by ADL):
// close_notify if it can be sent at once, then the TCP teardown.
void teardown(boost::beast::role_type role, TlsSocket& s, boost::system::error_code& ec);

template <class TeardownHandler>
void async_teardown(boost::beast::role_type role, TlsSocket& s, TeardownHandler&& handler) {
  s.try_shutdown();
  boost::beast::websocket::async_teardown(role, s.next_layer(), std::forward<TeardownHandler>(handler));
}

}  // namespace petrel::net
