// net::TcpListener: accepts TCP connections on one endpoint and hands each
// to an event loop chosen round-robin. Its accept loop has no error path that
// stops it: a failed accept is logged (rate-limited), resource exhaustion
// (EMFILE, ENFILE, ENOBUFS, ENOMEM) backs off briefly, and accepting resumes.
// Only stop() ends it.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <functional>
#include <string>

#include "broker/broker.hpp"

namespace petrel::net {

class TcpListener {
 public:
  using LoopPicker = std::function<boost::asio::io_context&()>;

  // Binds and listens; throws std::runtime_error naming the endpoint if it cannot.
  TcpListener(boost::asio::io_context& loop, std::string name, const boost::asio::ip::tcp::endpoint& endpoint,
              LoopPicker pick_loop, broker::Broker& broker);

  void start();
  void stop();
  boost::asio::ip::tcp::endpoint local_endpoint() const { return acceptor_.local_endpoint(); }
  const std::string& name() const { return name_; }

 private:
  void accept();
  void on_accept(const boost::system::error_code& ec, boost::asio::ip::tcp::socket socket);

  std::string name_;
  boost::asio::ip::tcp::acceptor acceptor_;
  boost::asio::steady_timer backoff_;
  LoopPicker pick_loop_;
  broker::Broker& broker_;
  bool stopped_ = false;
  std::chrono::steady_clock::time_point last_error_log_{};
};

}  // namespace petrel::net
