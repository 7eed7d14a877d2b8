#include "net/tcp_listener.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <boost/asio/ip/v6_only.hpp>

#include "net/connection.hpp"

namespace petrel::net {

namespace asio = boost::asio;
using asio::ip::tcp;

TcpListener::TcpListener(asio::io_context& loop, std::string name, const tcp::endpoint& endpoint, LoopPicker pick_loop,
                         broker::Broker& broker)
    : name_(std::move(name)), acceptor_(loop), backoff_(loop), pick_loop_(std::move(pick_loop)), broker_(broker) {
  boost::system::error_code ec;
  auto fail = [&](const char* what) {
    throw std::runtime_error(fmt::format("listener '{}': cannot {} {}:{}: {}", name_, what,
                                         endpoint.address().to_string(), endpoint.port(), ec.message()));
  };
  acceptor_.open(endpoint.protocol(), ec);
  if (ec) fail("open");
  acceptor_.set_option(tcp::acceptor::reuse_address(true), ec);
  if (endpoint.address().is_v6()) acceptor_.set_option(asio::ip::v6_only(true), ec);
  acceptor_.bind(endpoint, ec);
  if (ec) fail("bind");
  acceptor_.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) fail("listen on");
}

void TcpListener::start() {
  spdlog::info("listener '{}' accepting MQTT on {}:{}", name_, local_endpoint().address().to_string(),
               local_endpoint().port());
  accept();
}

void TcpListener::stop() {
  stopped_ = true;
  boost::system::error_code ec;
  acceptor_.close(ec);
  backoff_.cancel();
}

void TcpListener::accept() {
  if (stopped_) return;
  acceptor_.async_accept(pick_loop_(), [this](const boost::system::error_code& ec, tcp::socket socket) {
    on_accept(ec, std::move(socket));
  });
}

void TcpListener::on_accept(const boost::system::error_code& ec, tcp::socket socket) {
  if (stopped_) return;
  if (!ec) {
    std::make_shared<Connection>(std::move(socket), broker_)->start();
    accept();
    return;
  }
  const auto now = std::chrono::steady_clock::now();
  const bool log_now = now - last_error_log_ >= std::chrono::seconds(1);
  const int code = ec.value();
  const bool exhausted = code == EMFILE || code == ENFILE || code == ENOBUFS || code == ENOMEM;
  if (log_now) {
    last_error_log_ = now;
    spdlog::warn("listener '{}': accept failed: {}{}", name_, ec.message(), exhausted ? "; backing off 100 ms" : "");
  }
  if (exhausted) {
    backoff_.expires_after(std::chrono::milliseconds(100));
    backoff_.async_wait([this](const boost::system::error_code& e) {
      if (!e) accept();
    });
    return;
  }
  accept();  // e.g. ECONNABORTED: that connection's problem, not the listener's
}

}  // namespace petrel::net
