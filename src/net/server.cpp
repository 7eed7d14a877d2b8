#include "net/server.hpp"

#include <spdlog/spdlog.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>

namespace petrel::net {

namespace asio = boost::asio;

Server::Server(ServerOptions options) : options_(std::move(options)) {
  unsigned n = options_.threads ? options_.threads : std::max(1u, std::thread::hardware_concurrency());
  for (unsigned i = 0; i < n; ++i) loops_.push_back(std::make_unique<asio::io_context>(1));
  retained_ = store::make_memory_retained_store();
  sessions_ = store::make_memory_session_store();
  broker_ = std::make_unique<broker::Broker>(options_.broker, *retained_, *sessions_, *loops_[0]);
  for (const auto& spec : options_.listeners) {
    boost::system::error_code ec;
    auto address = asio::ip::make_address(spec.bind, ec);
    if (ec) throw std::runtime_error("listener '" + spec.name + "': invalid bind address '" + spec.bind + "'");
    listeners_.push_back(std::make_unique<TcpListener>(
        *loops_[0], spec.name, asio::ip::tcp::endpoint(address, spec.port),
        [this]() -> asio::io_context& { return *loops_[next_loop_++ % loops_.size()]; }, *broker_));
  }
}

Server::~Server() = default;

std::vector<asio::ip::tcp::endpoint> Server::endpoints() const {
  std::vector<asio::ip::tcp::endpoint> out;
  for (const auto& l : listeners_) out.push_back(l->local_endpoint());
  return out;
}

void Server::run() {
  std::vector<asio::executor_work_guard<asio::io_context::executor_type>> guards;
  for (auto& loop : loops_) guards.push_back(asio::make_work_guard(*loop));
  signals_ = std::make_unique<asio::signal_set>(*loops_[0], SIGINT, SIGTERM);
  signals_->async_wait([this](const boost::system::error_code& ec, int sig) {
    if (ec) return;
    spdlog::info("received {}, shutting down", sig == SIGINT ? "SIGINT" : "SIGTERM");
    begin_shutdown();
  });
  for (auto& l : listeners_) l->start();
  spdlog::info("petrel {} running with {} event loop{}", PETREL_VERSION, loops_.size(), loops_.size() == 1 ? "" : "s");

  std::vector<std::thread> threads;
  for (std::size_t i = 1; i < loops_.size(); ++i) threads.emplace_back([loop = loops_[i].get()] { loop->run(); });
  loops_[0]->run();
  guards.clear();
  for (auto& loop : loops_) loop->stop();
  for (auto& t : threads) t.join();
  spdlog::info("petrel stopped");
}

void Server::stop() {
  asio::post(*loops_[0], [this] { begin_shutdown(); });
}

void Server::begin_shutdown() {
  if (shutting_down_) return;
  shutting_down_ = true;
  for (auto& l : listeners_) l->stop();
  if (signals_) signals_->cancel();
  broker_->disconnect_all(mqtt::ReasonCode::ServerShuttingDown);
  // Give connections up to 500 ms to write their DISCONNECT and close, then
  // stop the loops.
  shutdown_timer_ = std::make_unique<asio::steady_timer>(*loops_[0]);
  wait_for_clients(std::chrono::steady_clock::now() + std::chrono::milliseconds(500));
}

void Server::wait_for_clients(std::chrono::steady_clock::time_point give_up) {
  if (broker::Stats::get(broker_->stats().clients_connected) == 0 || std::chrono::steady_clock::now() >= give_up) {
    for (auto& loop : loops_) loop->stop();
    return;
  }
  shutdown_timer_->expires_after(std::chrono::milliseconds(5));
  shutdown_timer_->async_wait([this, give_up](const boost::system::error_code&) { wait_for_clients(give_up); });
}

}  // namespace petrel::net
