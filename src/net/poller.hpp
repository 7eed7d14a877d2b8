// net::Poller and net::PolledSocket: readiness for a loop's plain TCP
// connections, without Asio's per-socket state.
//
// Why: an Asio socket keeps a reactor descriptor state (168 bytes, with its
// mutex and operation queues) for as long as it is open, and an idle
// connection waiting to read keeps a pending wait operation (~80 bytes) on
// top. On an idle connection that was about a fifth of what petrel held for
// it (issue 17: at most 1,000 bytes per idle connection). A plain TCP
// connection needs neither: it only asks "readable?" and "writable?".
//
// How: each event loop has one epoll set of its own (thread-local, like the
// loop's batch and deadline wheel). Its descriptor is watched by Asio like
// any other (one wait operation for the whole loop); when it is readable,
// the Poller takes up to kBatch ready connections from it and tells each
// (LoopResident::on_ready). Sockets are registered once, edge-triggered for
// reading and writing, so a connection's life costs no epoll_ctl beyond its
// registration; PolledSocket remembers the edges (readable until a read says
// EAGAIN, writable until a write does).
//
// Ownership: the Poller holds no connection. A connection on its loop is
// held by the loop's deadline wheel from start() until it shuts down (every
// connection has a deadline: CONNECT, keep alive, or a far one it renews),
// which is what keeps an idle one alive. While it serves a batch, the Poller
// holds every connection of the batch, so one of them closing another (or
// itself) never leaves a dangling pointer in the batch.
//
// TLS and WebSocket connections keep Asio sockets: their handshakes and
// Beast's streams are written against Asio, and their idle cost is OpenSSL's
// (docs/benchmarks.md).
//
// Threading: a PolledSocket lives on one loop, registered with that loop's
// Poller; it may be destroyed on another thread once closed.
#pragma once

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/posix/basic_stream_descriptor.hpp>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "net/loop_batch.hpp"
#include "net/socket.hpp"

namespace petrel::net {

class Poller {
 public:
  // Connections served per wait at most; more ready ones wait for the next
  // turn of the loop, behind the handlers already queued.
  static constexpr int kBatch = 128;

  static Poller& local();

  // Watches `fd` for `r` (edge-triggered, reading and writing). The first
  // registration on a loop starts its epoll set on `executor`'s loop.
  bool add(int fd, LoopResident& r, const LoopExecutor& executor, boost::system::error_code& ec);
  void remove(int fd);
  // Closes the epoll set: call on the loop's thread once the loop has
  // stopped, while its io_context still exists.
  void clear();

 private:
  using Watch = boost::asio::posix::basic_stream_descriptor<LoopExecutor>;
  void arm();
  void drain();

  int epoll_ = -1;
  std::optional<Watch> watch_;
  std::vector<std::shared_ptr<LoopResident>> serving_;
  bool posted_ = false;
};

// A non-blocking TCP socket registered with its loop's Poller. The subset of
// Asio's socket interface that net::Connection uses, plus the readiness its
// owner waits on.
class PolledSocket {
 public:
  using executor_type = LoopExecutor;
  using shutdown_type = boost::asio::socket_base::shutdown_type;
  static constexpr auto shutdown_both = boost::asio::socket_base::shutdown_both;
  static constexpr auto shutdown_send = boost::asio::socket_base::shutdown_send;

  // Takes the descriptor out of `s` (and out of Asio's reactor).
  explicit PolledSocket(Socket&& s);
  ~PolledSocket();
  PolledSocket(const PolledSocket&) = delete;
  PolledSocket& operator=(const PolledSocket&) = delete;

  executor_type get_executor() const { return loop_->get_executor(); }
  int native_handle() const { return fd_; }
  bool is_open() const { return fd_ >= 0; }

  // Registers with this loop's Poller, for `owner` (call on the loop).
  void start_polling(LoopResident& owner, boost::system::error_code& ec);
  // Notes what an epoll event says (LoopResident::on_ready).
  void note(std::uint32_t events);
  bool readable() const { return readable_; }
  bool writable() const { return writable_; }

  template <class Option>
  void set_option(const Option& o, boost::system::error_code& ec) {
    const auto p = boost::asio::ip::tcp::v4();
    set_raw_option(o.level(p), o.name(p), o.data(p), o.size(p), ec);
  }
  void non_blocking(bool on, boost::system::error_code& ec);
  boost::asio::ip::tcp::endpoint remote_endpoint(boost::system::error_code& ec) const;

  // Reads what is there; would_block (and not readable any more) if nothing.
  std::size_t read_some(boost::asio::mutable_buffer b, boost::system::error_code& ec);

  // Where a gather write stands: the buffer it is in and how far into it.
  struct WriteCursor {
    std::size_t index = 0;
    std::size_t offset = 0;
  };
  // Writes buffers from `at` on until all are written, the socket would
  // block (then would_block, not writable any more) or fails; moves `at`
  // and returns the bytes written.
  std::size_t write_some(const std::vector<boost::asio::const_buffer>& buffers, WriteCursor& at,
                         boost::system::error_code& ec);

  void shutdown(shutdown_type what, boost::system::error_code& ec);
  // Leaves the Poller and closes the descriptor.
  void close(boost::system::error_code& ec);

 private:
  void set_raw_option(int level, int name, const void* data, std::size_t size, boost::system::error_code& ec);

  boost::asio::io_context* loop_;  // not the executor: it is twice the size, on every connection
  int fd_ = -1;
  bool registered_ = false;
  bool readable_ = false;
  bool writable_ = false;
};

}  // namespace petrel::net
