#include "net/listener.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <boost/asio/ip/v6_only.hpp>

namespace petrel::net {

namespace asio = boost::asio;
using asio::ip::tcp;

Listener::Listener(asio::io_context& loop, std::shared_ptr<ListenerStats> stats, const tcp::endpoint& endpoint,
                   LoopPicker pick_loop, Handoff handoff)
    : stats_(std::move(stats)),
      acceptor_(loop),
      backoff_(loop),
      pick_loop_(std::move(pick_loop)),
      handoff_(std::move(handoff)) {
  boost::system::error_code ec;
  auto fail = [&](const char* what) {
    throw std::runtime_error(fmt::format("listener '{}': cannot {} {}:{}: {}", stats_->name, what,
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
  // Kept for status readers on other threads, which must not touch the acceptor.
  endpoint_ = acceptor_.local_endpoint();
  stats_->bind = endpoint_.address().to_string();
  stats_->port = endpoint_.port();
  stats_->set_state(ListenerState::Accepting);
}

void Listener::start() {
  spdlog::info("listener '{}' accepting MQTT over {} on {}:{}", stats_->name, stats_->type,
               local_endpoint().address().to_string(), local_endpoint().port());
  accept();
}

void Listener::stop() {
  stopped_ = true;
  stats_->set_state(ListenerState::Closed);
  boost::system::error_code ec;
  acceptor_.close(ec);
  backoff_.cancel();
}

void Listener::accept() {
  if (stopped_) return;
  stats_->set_state(ListenerState::Accepting);
  acceptor_.async_accept(pick_loop_(), [this](const boost::system::error_code& ec, Socket socket) {
    on_accept(ec, std::move(socket));
  });
}

void Listener::on_accept(const boost::system::error_code& ec, Socket socket) {
  if (stopped_) return;
  if (!ec) {
    stats_->accepted.add();
    handoff_(std::move(socket));
    accept();
    return;
  }
  const int code = ec.value();
  const bool exhausted = code == EMFILE || code == ENFILE || code == ENOBUFS || code == ENOMEM;
  stats_->warn("accept failed: {}{}", ec.message(), exhausted ? "; backing off 100 ms" : "");
  stats_->note_accept_error(ec.message());
  if (exhausted) {
    stats_->set_state(ListenerState::BackingOff);
    backoff_.expires_after(std::chrono::milliseconds(100));
    backoff_.async_wait([this](const boost::system::error_code& e) {
      if (!e) accept();
    });
    return;
  }
  accept();  // e.g. ECONNABORTED: that connection's problem, not the listener's
}

}  // namespace petrel::net
