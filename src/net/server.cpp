#include "net/server.hpp"

#include "net/poller.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>

#include "net/connection.hpp"
#include "net/loop_batch.hpp"

namespace petrel::net {

namespace asio = boost::asio;

Server::Server(ServerOptions options) : options_(std::move(options)) {
  unsigned n = options_.threads ? options_.threads : std::max(1u, std::thread::hardware_concurrency());
  for (unsigned i = 0; i < n; ++i) loops_.push_back(std::make_unique<asio::io_context>(1));
  for (const auto& spec : options_.listeners) add_listener(spec);
}

Server::~Server() = default;

void Server::add_listener(const ListenerSpec& spec) {
  boost::system::error_code ec;
  auto address = asio::ip::make_address(spec.bind, ec);
  if (ec) throw std::runtime_error(fmt::format("listener '{}': invalid bind address '{}'", spec.name, spec.bind));
  auto stats = std::make_shared<ListenerStats>();
  stats->name = spec.name;
  stats->type = spec.type;
  const bool tls_type = spec.type == "tls" || spec.type == "wss";
  const bool ws_type = spec.type == "ws" || spec.type == "wss";
  std::shared_ptr<TlsContext> tls;
  if (tls_type) {
    try {
      tls = std::make_shared<TlsContext>(spec.tls);
    } catch (const std::exception& e) {
      throw std::runtime_error(fmt::format("listener '{}': {}", spec.name, e.what()));
    }
    tls_contexts_.emplace_back(spec.name, tls);
  }
  const WebSocketSettings* ws = nullptr;
  if (ws_type) {
    auto settings = std::make_unique<WebSocketSettings>(spec.ws);
    // A WebSocket message carries MQTT packets: none may exceed the largest packet.
    settings->max_message = options_.max_message_size;
    ws = settings.get();
    ws_settings_.push_back(std::move(settings));
  }
  // The hand-off runs on the listener's loop for every accepted socket; the
  // stream type is chosen here, once.
  auto make_handoff = [&]<class Stream>() -> Listener::Handoff {
    return [this, stats, tls, ws, max = spec.max_connections](Socket socket) {
      if (!admit(*stats, max, socket)) return;
      if (tls) {
        // A flood of slow or bad handshakes must not keep good clients out
        // for long, nor exhaust memory: past the bound, refuse at once.
        // The slot is reserved here, on the listener's loop, so a burst cannot
        // overshoot the bound before the connections start on their loops.
        if (stats->handshakes_in_progress.fetch_add(1, std::memory_order_relaxed) >=
            tls->settings().max_pending_handshakes) {
          stats->handshakes_in_progress.fetch_sub(1, std::memory_order_relaxed);
          stats->rejected_busy.fetch_add(1, std::memory_order_relaxed);
          stats->count_failure("too_many_handshakes");
          stats->warn("{} TLS handshakes in progress, refusing a new connection",
                      tls->settings().max_pending_handshakes);
          boost::system::error_code ignored;
          socket.close(ignored);
          return;
        }
      }
      std::make_shared<Connection<Stream>>(std::move(socket), tls ? tls->current() : nullptr,
                                           tls ? &tls->settings() : nullptr, ws, *broker_, stats)
          ->post_start();
    };
  };
  Listener::Handoff handoff;
  if (spec.type == "tls") {
    handoff = make_handoff.template operator()<TlsStream>();
  } else if (spec.type == "ws") {
    handoff = make_handoff.template operator()<WsStream>();
  } else if (spec.type == "wss") {
    handoff = make_handoff.template operator()<WssStream>();
  } else {
    handoff = make_handoff.template operator()<TcpStream>();
  }
  listeners_.push_back(std::make_unique<Listener>(
      *loops_[0], stats, asio::ip::tcp::endpoint(address, spec.port),
      [this]() -> asio::io_context& { return *loops_[next_loop_++ % loops_.size()]; }, std::move(handoff)));
}

bool Server::admit(ListenerStats& stats, std::uint32_t listener_max, Socket& socket) {
  const std::uint32_t global_max = options_.max_connections;
  std::uint64_t open_total = 0;
  for (const auto& l : listeners_) open_total += l->stats().open.load(std::memory_order_relaxed);
  const auto open_here = stats.open.load(std::memory_order_relaxed);
  const bool over_global = global_max && open_total >= global_max;
  const bool over_listener = listener_max && open_here >= listener_max;
  if (!over_global && !over_listener) return true;
  // Refused before any byte is read: cheaper than a CONNACK under a flood.
  stats.count_failure("max_connections");
  stats.warn("connection limit reached ({} {}), refusing a connection", over_listener ? listener_max : global_max,
             over_listener ? "on this listener" : "in all");
  boost::system::error_code ignored;
  socket.close(ignored);
  return false;
}

std::vector<asio::ip::tcp::endpoint> Server::endpoints() const {
  std::vector<asio::ip::tcp::endpoint> out;
  for (const auto& l : listeners_) out.push_back(l->local_endpoint());
  return out;
}

void Server::publish_listener_stats(const broker::Broker::SysPut& put) const {
  for (const auto& l : listeners_) {
    const auto& s = l->stats();
    const std::string base = "listeners/" + s.name + "/";
    auto get = [](const std::atomic<std::uint64_t>& a) { return std::to_string(a.load(std::memory_order_relaxed)); };
    put(base + "type", s.type);
    put(base + "state", std::string(ListenerStats::state_name(s.state.load())));
    put(base + "connections/accepted", std::to_string(s.accepted.total()));
    put(base + "connections/open", get(s.open));
    // Connections that failed before CONNECT, by reason (handshake failures
    // by kind, connect timeouts, refusals for too many handshakes).
    put(base + "failures", std::to_string(s.failures_total()));
    for (const auto& [label, count] : s.failures()) put(base + "failures/" + label, std::to_string(count));
    if (s.type == "tls" || s.type == "wss") {
      put(base + "handshakes/completed", get(s.handshakes_completed));
      put(base + "handshakes/in_progress", get(s.handshakes_in_progress));
    }
  }
}

void Server::run() {
  std::vector<asio::executor_work_guard<asio::io_context::executor_type>> guards;
  for (auto& loop : loops_) guards.push_back(asio::make_work_guard(*loop));
  for (auto& l : listeners_) l->start();
  spdlog::info("petrel {} running with {} event loop{}", PETREL_VERSION, loops_.size(), loops_.size() == 1 ? "" : "s");
  // Serving once every loop has run a handler (so all of them are up).
  ping_loops([this] {
    asio::post(*loops_[0], [this] {
      if (!shutting_down_) serving_.store(true, std::memory_order_release);
    });
  });

  std::vector<std::thread> threads;
  for (std::size_t i = 1; i < loops_.size(); ++i)
    threads.emplace_back([this, loop = loops_[i].get()] { run_loop(*loop); });
  run_loop(*loops_[0]);
  guards.clear();
  for (auto& loop : loops_) loop->stop();
  for (auto& t : threads) t.join();
}

void Server::run_loop(asio::io_context& loop) {
  // The last line of defence: a connection's own failures are caught where
  // they happen (net::Connection::dispatch, broker::Client::on_bytes); what
  // still escapes a handler (a timer of the broker, a bug) is logged and
  // counted, and the loop goes on serving everyone else.
  while (true) {
    try {
      loop.run();
      // What the loop's thread keeps for its connections goes while the
      // io_context still exists (their sockets and the wheel's timer need it).
      LoopBatch::clear();
      DeadlineWheel::local().clear();  // closes the connections it held
      Poller::local().clear();
      return;
    } catch (const std::exception& e) {
      broker::Stats::add(broker_->stats().internal_errors);
      spdlog::error("internal error in an event loop handler, the loop continues: {}", e.what());
    } catch (...) {
      broker::Stats::add(broker_->stats().internal_errors);
      spdlog::error("internal error in an event loop handler (not a std::exception), the loop continues");
    }
  }
}

void Server::reload_tls() {
  if (tls_contexts_.empty()) {
    spdlog::info("SIGHUP: no TLS listener to reload");
    return;
  }
  for (auto& [name, tls] : tls_contexts_) {
    if (auto error = tls->reload()) {
      spdlog::error("listener '{}': TLS reload failed, keeping the previous certificates: {}", name, *error);
    } else {
      spdlog::info("listener '{}': TLS certificates reloaded; new handshakes use them", name);
    }
  }
}

std::vector<Server::ListenerStatus> Server::listener_status() const {
  std::vector<ListenerStatus> out;
  for (const auto& l : listeners_) {
    const auto& s = l->stats();
    ListenerStatus st;
    st.name = s.name;
    st.type = s.type;
    st.bind = s.bind;
    st.port = s.port;
    st.state = static_cast<ListenerState>(s.state.load());
    st.state_since = std::chrono::system_clock::time_point(std::chrono::milliseconds(s.state_since.load()));
    if (const auto b = s.last_backoff.load()) st.last_backoff = std::chrono::system_clock::time_point(std::chrono::milliseconds(b));
    st.last_accept_error = s.last_accept_error();
    st.open = s.open.load(std::memory_order_relaxed);
    st.accepted = {s.accepted.total(), s.accepted.last_minute()};
    st.failures = s.failure_counts();
    st.handshakes_in_progress = s.handshakes_in_progress.load(std::memory_order_relaxed);
    st.handshakes_completed = s.handshakes_completed.load(std::memory_order_relaxed);
    for (const auto& [name, tls] : tls_contexts_)
      if (name == s.name) st.tls = tls->status();
    out.push_back(std::move(st));
  }
  return out;
}

Server::ReloadOutcome Server::reload_tls(const std::string& listener, std::string& error) {
  bool known = false;
  for (const auto& l : listeners_) known = known || l->stats().name == listener;
  if (!known) return ReloadOutcome::NoSuchListener;
  for (auto& [name, tls] : tls_contexts_) {
    if (name != listener) continue;
    if (auto e = tls->reload()) {
      error = *e;
      spdlog::error("listener '{}': TLS reload failed, keeping the previous certificates: {}", name, *e);
      return ReloadOutcome::Failed;
    }
    spdlog::info("listener '{}': TLS certificates reloaded; new handshakes use them", name);
    return ReloadOutcome::Reloaded;
  }
  return ReloadOutcome::NotTls;
}

void Server::ping_loops(std::function<void()> done) {
  auto pending = std::make_shared<std::atomic<std::size_t>>(loops_.size());
  auto callback = std::make_shared<std::function<void()>>(std::move(done));
  for (auto& loop : loops_)
    asio::post(*loop, [pending, callback] {
      if (pending->fetch_sub(1, std::memory_order_acq_rel) == 1) (*callback)();
    });
}

void Server::stop() {
  asio::post(*loops_[0], [this] { begin_shutdown(); });
}

void Server::begin_shutdown() {
  if (shutting_down_) return;
  shutting_down_ = true;
  serving_.store(false, std::memory_order_release);
  for (auto& l : listeners_) l->stop();
  broker_->disconnect_all(mqtt::ReasonCode::ServerShuttingDown);
  // Give connections up to 500 ms to write their DISCONNECT and close, then
  // stop the loops.
  shutdown_timer_ = std::make_unique<asio::steady_timer>(*loops_[0]);
  wait_for_clients(std::chrono::steady_clock::now() + std::chrono::milliseconds(500));
}

void Server::wait_for_clients(std::chrono::steady_clock::time_point give_up) {
  // Done when every connection is gone, not just detached from its session:
  // a connection may still be writing its last bytes (a WebSocket close
  // frame follows the DISCONNECT).
  std::uint64_t open = 0;
  for (const auto& l : listeners_) open += l->stats().open.load(std::memory_order_relaxed);
  if ((broker::Stats::get(broker_->stats().clients_connected) == 0 && open == 0) ||
      std::chrono::steady_clock::now() >= give_up) {
    for (auto& loop : loops_) loop->stop();
    return;
  }
  shutdown_timer_->expires_after(std::chrono::milliseconds(5));
  shutdown_timer_->async_wait([this, give_up](const boost::system::error_code&) { wait_for_clients(give_up); });
}

}  // namespace petrel::net
