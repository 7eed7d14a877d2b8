#include "app/service.hpp"

#include <spdlog/spdlog.h>

#include <filesystem>

#include "store/memory_store.hpp"

namespace petrel::app {

namespace asio = boost::asio;

Service::Service(const Config& config) : config_(config) {
  resolve_auth(config_);
  access_ = std::make_unique<auth::AccessControl>(config_.auth);
  server_ = std::make_unique<net::Server>(config_.server);
  signals_ = std::make_unique<asio::signal_set>(server_->housekeeping_loop(), SIGINT, SIGTERM, SIGHUP);
  open_store(config_.store);
  broker_->set_authorizer(*access_);
  server_->serve(*broker_);
  for (const auto& l : config_.auth.listeners)
    spdlog::info("listener '{}': anonymous clients {}{}{}", l.listener, l.allow_anonymous ? "allowed" : "refused",
                 l.password_file.empty() ? "" : fmt::format(", password file '{}'", l.password_file),
                 l.acl_file.empty() ? "" : fmt::format(", ACL file '{}'", l.acl_file));
  broker_->add_sys_source([this](const broker::Broker::SysPut& put) {
    server_->publish_listener_stats(put);
    for (const auto& [name, value] : access_->metrics()) put(name, std::to_string(value));
    auto& stats = broker_->stats();
    put("auth/connect/refused", std::to_string(broker::Stats::get(stats.connect_denied)));
    put("store/type", config_.store.type);
    if (sqlite_) {
      put("store/commits", std::to_string(sqlite_->commits()));
      put("store/backlog", std::to_string(sqlite_->backlog()));
      put("store/errors", std::to_string(sqlite_->errors()));
    }
  });
}

Service::~Service() = default;

void Service::open_store(const StoreOptions& options) {
  auto& housekeeping = server_->housekeeping_loop();
  if (options.type != "sqlite") {
    memory_retained_ = store::make_memory_retained_store();
    memory_sessions_ = store::make_memory_session_store();
    broker_ = std::make_unique<broker::Broker>(config_.broker, *memory_retained_, *memory_sessions_, housekeeping);
    spdlog::info("store: memory only (nothing survives a restart)");
    return;
  }
  const auto t0 = std::chrono::steady_clock::now();
  sqlite_ = std::make_unique<store::SqliteStore>(options.sqlite);
  auto stored = sqlite_->load_sessions();
  broker_ = std::make_unique<broker::Broker>(config_.broker, *sqlite_, *sqlite_, housekeeping);
  const auto r = broker_->restore(std::move(stored));
  sqlite_->start();
  const auto ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  std::error_code ec;
  const auto where = std::filesystem::absolute(options.sqlite.path, ec);
  spdlog::info(
      "store '{}' ({} durability): restored {} sessions ({} subscriptions, {} queued and {} in-flight messages) and "
      "{} retained messages in {:.1f} ms; dropped {} sessions and {} messages that expired while petrel was down",
      ec ? options.sqlite.path : where.string(), options.sqlite.sync ? "sync" : "periodic", r.sessions,
      r.subscriptions, r.queued, r.inflight, sqlite_->retained_loaded(), ms, r.expired_sessions,
      r.expired_messages + sqlite_->retained_expired());
}

void Service::run() {
  wait_for_signal();
  server_->run();
  // Everything the loops reported is committed before petrel exits.
  if (sqlite_) sqlite_->stop();
  spdlog::info("petrel stopped");
}

void Service::wait_for_signal() {
  signals_->async_wait([this](const boost::system::error_code& ec, int sig) {
    if (ec) return;
    if (sig == SIGHUP) {
      server_->reload_tls();
      if (auto error = access_->reload())
        spdlog::error("access control reload failed, keeping the previous rules: {}", *error);
      wait_for_signal();
      return;
    }
    spdlog::info("received {}, shutting down", sig == SIGINT ? "SIGINT" : "SIGTERM");
    signals_->cancel();
    server_->stop();
  });
}

}  // namespace petrel::app
