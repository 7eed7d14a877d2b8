#include "app/service.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <malloc.h>
#include <pthread.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <csignal>
#include <cstring>
#include <filesystem>
#include <stdexcept>

#include "app/systemd.hpp"
#include "store/memory_store.hpp"

namespace petrel::app {

namespace asio = boost::asio;

namespace {
// How long a listener must accept without backing off again before it is
// counted as accepting (readiness).
constexpr auto kBackoffSettle = std::chrono::seconds(2);
}  // namespace

namespace {
sigset_t handled_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGHUP);
  return set;
}
}  // namespace

Service::Service(const Config& config) : config_(config) {
  // SIGINT, SIGTERM and SIGHUP are blocked in every thread (this one first,
  // before any other exists, so all inherit the mask) and read from a
  // signalfd on the housekeeping loop. Never delivered, they can never take
  // their default action: one that arrives during start-up waits for the
  // loop, and a supervisor repeating SIGTERM while petrel shuts down (or
  // after the loop is gone) cannot turn a clean exit into death by signal.
  const sigset_t handled = handled_signals();
  pthread_sigmask(SIG_BLOCK, &handled, nullptr);
  resolve_auth(config_);
  access_ = std::make_unique<auth::AccessControl>(config_.auth);
  server_ = std::make_unique<net::Server>(config_.server);
  const int fd = signalfd(-1, &handled, SFD_NONBLOCK | SFD_CLOEXEC);
  if (fd < 0) throw std::runtime_error(fmt::format("signalfd: {}", std::strerror(errno)));
  signals_ = std::make_unique<asio::posix::stream_descriptor>(server_->housekeeping_loop(), fd);
  if (config_.http.options.enabled) {
    // Bound before the store opens, as the MQTT listeners are.
    http::Server::TlsContextFn tls;
    if (config_.http.options.tls) {
      try {
        http_tls_ = std::make_unique<net::TlsContext>(config_.http.tls);
      } catch (const std::exception& e) {
        throw std::runtime_error(fmt::format("[http]: {}", e.what()));
      }
      tls = [ctx = http_tls_.get()] { return ctx->current(); };
    }
    http_ = std::make_unique<http::Server>(config_.http.options, std::move(tls));
    if (!config_.http.options.password_file.empty())
      http_users_ = std::make_shared<const auth::PasswordFile>(auth::PasswordFile::load(config_.http.options.password_file));
  }
  open_store(config_.store);
  broker_->set_authorizer(*access_);
  // Bridges attach their sessions (restored above, with their queues) before
  // any client is served.
  bridges_ = std::make_unique<bridge::Bridges>(config_.bridges, *broker_, server_->housekeeping_loop());
  bridges_->start();
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
      put("store/messages", std::to_string(sqlite_->stored_messages()));
    }
    bridges_->publish_sys(put);
  });
  if (http_) http_->start(*broker_, operations());
}

Service::~Service() {
  if (http_) http_->stop();
}

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
  // What reading the database took (rows, the sessions as read) is freed by
  // now, scattered between what stays: hand those pages back, or the
  // restarted broker keeps the peak of its start-up (issue 16).
  malloc_trim(0);
  sqlite_->start();
  const auto ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  std::error_code ec;
  const auto where = std::filesystem::absolute(options.sqlite.path, ec);
  spdlog::info(
      "store '{}' ({} durability): restored {} sessions ({} subscriptions, {} queued and {} in-flight messages, {} "
      "of them distinct) and {} retained messages in {:.1f} ms; dropped {} sessions and {} messages that expired "
      "while petrel was down",
      ec ? options.sqlite.path : where.string(), options.sqlite.sync ? "sync" : "periodic", r.sessions,
      r.subscriptions, r.queued, r.inflight, sqlite_->messages_loaded(), sqlite_->retained_loaded(), ms,
      r.expired_sessions, r.expired_messages + sqlite_->retained_expired());
}

void Service::run() {
  wait_for_signal();
  if (systemd::notify_socket_set()) {
    notify_when_ready();
    if (auto interval = systemd::watchdog_interval()) watchdog(*interval);
  }
  server_->run();
  if (http_) http_->stop();
  // Everything the loops reported is committed before petrel exits.
  if (sqlite_) sqlite_->stop();
  spdlog::info("petrel stopped");
}

void Service::wait_for_signal() {
  signals_->async_wait(asio::posix::descriptor_base::wait_read, [this](const boost::system::error_code& ec) {
    if (ec) return;
    signalfd_siginfo info{};
    const auto n = ::read(signals_->native_handle(), &info, sizeof info);
    if (n != static_cast<ssize_t>(sizeof info)) {
      wait_for_signal();  // EAGAIN: nothing after all
      return;
    }
    const int sig = static_cast<int>(info.ssi_signo);
    if (sig == SIGHUP) {
      reload();
      wait_for_signal();
      return;
    }
    spdlog::info("received {}, shutting down", sig == SIGINT ? "SIGINT" : "SIGTERM");
    stopping_ = true;
    systemd::notify("STOPPING=1");
    if (notify_timer_) notify_timer_->cancel();
    if (watchdog_timer_) watchdog_timer_->cancel();
    signals_->cancel();
    server_->stop();
  });
}

http::Readiness Service::readiness() const {
  http::Readiness r;
  if (stopping_) {
    r.reasons.push_back("petrel is shutting down");
  } else if (!server_->serving()) {
    r.reasons.push_back("start-up is not complete");
  }
  const auto now = std::chrono::system_clock::now();
  for (const auto& l : server_->listener_status()) {
    // A listener out of descriptors alternates between backing off (100 ms)
    // and trying again; it counts as not accepting until it has gone
    // kBackoffSettle without backing off.
    const bool recent_backoff = now - l.last_backoff < kBackoffSettle;
    if (l.state == net::ListenerState::Accepting && !recent_backoff) continue;
    std::string why = fmt::format("listener '{}' is not accepting connections: {}", l.name,
                                  l.state == net::ListenerState::Closed ? "closed" : "backing off");
    if (l.state != net::ListenerState::Closed && !l.last_accept_error.what.empty())
      why += fmt::format(" after accept failed ({})", l.last_accept_error.what);
    r.reasons.push_back(std::move(why));
  }
  if (sqlite_) {
    const auto h = sqlite_->health();
    if (h.failing) r.reasons.push_back(fmt::format("the store cannot commit (retrying): {}", h.last_error));
  }
  r.ready = r.reasons.empty();
  return r;
}

std::vector<http::ReloadResult> Service::reload() {
  std::vector<http::ReloadResult> out;
  for (const auto& l : server_->listener_status()) {
    std::string error;
    if (server_->reload_tls(l.name, error) == net::Server::ReloadOutcome::NotTls) continue;
    out.push_back({fmt::format("listener '{}'", l.name), error.empty(), error});
  }
  if (http_tls_) {
    auto error = http_tls_->reload();
    if (error) {
      spdlog::error("[http]: TLS reload failed, keeping the previous certificates: {}", *error);
    } else {
      spdlog::info("[http]: TLS certificates reloaded");
    }
    out.push_back({"http certificate", !error, error.value_or("")});
  }
  if (http_ && !config_.http.options.token_file.empty()) {
    auto error = http_->reload_tokens();
    if (error) {
      spdlog::error("[http]: token reload failed, keeping the previous tokens: {}", *error);
    } else {
      spdlog::info("[http]: tokens reloaded from {}", config_.http.options.token_file);
    }
    out.push_back({"http tokens", !error, error.value_or("")});
  }
  if (http_ && !config_.http.options.password_file.empty()) {
    std::optional<std::string> error;
    try {
      auto users = std::make_shared<const auth::PasswordFile>(auth::PasswordFile::load(config_.http.options.password_file));
      std::lock_guard lock(http_users_mutex_);
      http_users_ = std::move(users);
      spdlog::info("[http]: HTTP Basic users reloaded from {}", config_.http.options.password_file);
    } catch (const std::exception& e) {
      error = e.what();
      spdlog::error("[http]: password file reload failed, keeping the previous users: {}", *error);
    }
    out.push_back({"http users", !error, error.value_or("")});
  }
  {
    // Password, ACL, JWT key and SCRAM credential files: a file with an error
    // keeps the rules in force.
    auto error = access_->reload();
    if (error) spdlog::error("access control reload failed, keeping the previous rules: {}", *error);
    out.push_back({"access control", !error, error.value_or("")});
  }
  return out;
}

void Service::notify_when_ready() {
  if (!notify_timer_) notify_timer_ = std::make_unique<asio::steady_timer>(server_->housekeeping_loop());
  notify_timer_->expires_after(std::chrono::milliseconds(20));
  notify_timer_->async_wait([this](const boost::system::error_code& ec) {
    if (ec || stopping_) return;
    if (!readiness().ready) return notify_when_ready();
    systemd::notify(fmt::format("READY=1\nSTATUS=serving MQTT on {} listener{}\nMAINPID={}",
                                config_.server.listeners.size(), config_.server.listeners.size() == 1 ? "" : "s",
                                getpid()));
    spdlog::info("systemd: told the service manager petrel is ready");
  });
}

void Service::watchdog(std::chrono::microseconds interval) {
  if (!watchdog_timer_) watchdog_timer_ = std::make_unique<asio::steady_timer>(server_->housekeeping_loop());
  // Half the interval, as sd_watchdog_enabled(3) advises; the ping is sent
  // only once every event loop has run a handler since, so a stuck loop
  // stops the pings and systemd restarts petrel.
  watchdog_timer_->expires_after(interval / 2);
  watchdog_timer_->async_wait([this, interval](const boost::system::error_code& ec) {
    if (ec || stopping_) return;
    server_->ping_loops([] { systemd::notify("WATCHDOG=1"); });
    watchdog(interval);
  });
}


}  // namespace petrel::app
