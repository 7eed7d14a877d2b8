// net::Listener: accepts TCP connections on one endpoint and hands each
// socket, on an event loop chosen round-robin, to the listener's transport
// (plain TCP or TLS), which builds the connection. Its accept loop has no
// error path that stops it: a failed accept is logged (rate-limited),
// resource exhaustion (EMFILE, ENFILE, ENOBUFS, ENOMEM) backs off briefly,
// and accepting resumes. Only stop() ends it. Nothing a connection does can
// reach the listener: connections report to ListenerStats counters only.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <functional>
#include <memory>
#include <string>

#include "net/listener_stats.hpp"
#include "net/socket.hpp"

namespace petrel::net {

class Listener {
 public:
  using LoopPicker = std::function<boost::asio::io_context&()>;
  // Receives each accepted socket (already bound to its event loop). Runs
  // on the listener's loop and must not throw.
  using Handoff = std::function<void(Socket)>;

  // Binds and listens; throws std::runtime_error naming the endpoint if it cannot.
  Listener(boost::asio::io_context& loop, std::shared_ptr<ListenerStats> stats,
           const boost::asio::ip::tcp::endpoint& endpoint, LoopPicker pick_loop, Handoff handoff);

  void start();
  void stop();
  // Thread-safe: the endpoint bound at construction.
  boost::asio::ip::tcp::endpoint local_endpoint() const { return endpoint_; }
  const ListenerStats& stats() const { return *stats_; }

 private:
  void accept();
  void on_accept(const boost::system::error_code& ec, Socket socket);

  std::shared_ptr<ListenerStats> stats_;
  boost::asio::ip::tcp::acceptor acceptor_;
  boost::asio::ip::tcp::endpoint endpoint_;
  boost::asio::steady_timer backoff_;
  LoopPicker pick_loop_;
  Handoff handoff_;
  bool stopped_ = false;
};

}  // namespace petrel::net
