// net::Server: the process's event loops and listeners. One Boost.Asio
// io_context per thread (one thread per core by default); listeners spread
// accepted connections over the loops round-robin, and each connection then
// lives on its loop for good. Loop 0 also runs the listeners' accept loops
// and is the housekeeping loop the broker's timers run on.
//
// The server knows the broker only as the core every connection talks to
// (serve()); choosing the store, building the Broker and the signals are the
// application's wiring (app/service.hpp).
#pragma once

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "broker/broker.hpp"
#include "net/listener.hpp"
#include "net/tls.hpp"
#include "net/websocket.hpp"

namespace petrel::net {

struct ListenerSpec {
  std::string name;
  std::string type = "tcp";  // "tcp", "tls", "ws" or "wss"
  std::string bind = "0.0.0.0";
  std::uint16_t port = 1883;
  std::uint32_t max_connections = 0;  // open connections on this listener; 0: no limit
  TlsSettings tls;                    // types "tls" and "wss" only
  WebSocketSettings ws;               // types "ws" and "wss" only
};

struct ServerOptions {
  unsigned threads = 0;  // 0: one per core
  std::vector<ListenerSpec> listeners;
  // Open network connections, all listeners together; 0: no limit.
  std::uint32_t max_connections = 0;
  // Largest WebSocket message (no MQTT packet may be larger).
  std::uint32_t max_message_size = 1024 * 1024;
};

class Server {
 public:
  // Creates the event loops, binds every listener and loads every TLS
  // context (nothing is accepted before run()); throws std::runtime_error
  // naming the listener if one cannot start.
  explicit Server(ServerOptions options);
  ~Server();

  // Loop 0, where the accept loops run and the broker keeps its timers.
  boost::asio::io_context& housekeeping_loop() { return *loops_[0]; }
  // The broker every connection talks to; set once, before run().
  void serve(broker::Broker& broker) { broker_ = &broker; }

  // Accepts connections and runs the loops until stop() has shut down
  // cleanly. An exception escaping a handler is logged and counted
  // (Stats::internal_errors) and the loop goes on.
  void run();
  // Thread-safe: stop accepting, disconnect every client (v5: DISCONNECT
  // 0x8B), wait up to 500 ms for the connections to close, stop the loops.
  void stop();
  // Re-reads every TLS listener's certificate, key, CA and CRL files; a
  // listener whose new files are invalid keeps its old ones (logged).
  void reload_tls();

  std::vector<boost::asio::ip::tcp::endpoint> endpoints() const;
  // Per-listener counters as $SYS topics (listeners/<name>/...).
  void publish_listener_stats(const broker::Broker::SysPut& put) const;

  // --- Status for the operator API (read by app/ for the HTTP layer).
  // Thread-safe: they read atomics and the listeners' own locks, never an
  // event loop's state.
  struct ListenerStatus {
    std::string name, type, bind;
    std::uint16_t port = 0;
    ListenerState state = ListenerState::Accepting;
    std::chrono::system_clock::time_point state_since{};
    std::chrono::system_clock::time_point last_backoff{};  // {}: never backed off
    ListenerStats::AcceptError last_accept_error;
    std::uint64_t open = 0;
    ListenerStats::Count accepted;
    std::map<std::string, ListenerStats::Count> failures;  // by label (ListenerStats::failure_kind)
    std::uint64_t handshakes_in_progress = 0, handshakes_completed = 0;
    std::optional<TlsContext::Status> tls;  // TLS and WSS listeners
  };
  std::vector<ListenerStatus> listener_status() const;
  // True once every loop runs and every listener has started accepting;
  // false again once shutdown begins.
  bool serving() const { return serving_.load(std::memory_order_acquire); }
  // Reloads one TLS listener's files. Nothing if it worked, else why not.
  enum class ReloadOutcome { Reloaded, Failed, NoSuchListener, NotTls };
  ReloadOutcome reload_tls(const std::string& listener, std::string& error);
  // Posts a no-op to every event loop; `done` runs (on the last loop to
  // answer) once all have run it: a liveness probe for the watchdog.
  void ping_loops(std::function<void()> done);

 private:
  void add_listener(const ListenerSpec& spec);
  // False (and the socket closed, counted, logged) if a connection limit is reached.
  bool admit(ListenerStats& stats, std::uint32_t listener_max, Socket& socket);
  void run_loop(boost::asio::io_context& loop);
  void begin_shutdown();
  void wait_for_clients(std::chrono::steady_clock::time_point give_up);

  ServerOptions options_;
  std::vector<std::unique_ptr<boost::asio::io_context>> loops_;
  broker::Broker* broker_ = nullptr;
  std::vector<std::unique_ptr<Listener>> listeners_;
  std::vector<std::pair<std::string, std::shared_ptr<TlsContext>>> tls_contexts_;
  std::vector<std::unique_ptr<WebSocketSettings>> ws_settings_;  // one per ws/wss listener
  std::unique_ptr<boost::asio::steady_timer> shutdown_timer_;
  std::size_t next_loop_ = 0;
  bool shutting_down_ = false;
  std::atomic<bool> serving_{false};
};

}  // namespace petrel::net
