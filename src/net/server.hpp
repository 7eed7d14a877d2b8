// net::Server: the process's event loops and listeners. One Boost.Asio
// io_context per thread (one thread per core by default); listeners spread
// accepted connections over the loops round-robin, and each connection then
// lives on its loop for good. Loop 0 also runs the listeners' accept loops,
// the broker's timers and the signal handler (SIGINT/SIGTERM: shut down;
// SIGHUP: reload TLS certificates of tls and wss listeners).
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/signal_set.hpp>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "broker/broker.hpp"
#include "net/listener.hpp"
#include "net/tls.hpp"
#include "net/websocket.hpp"
#include "store/sqlite_store.hpp"
#include "store/store.hpp"

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

struct StoreOptions {
  std::string type = "sqlite";  // or "memory"
  store::SqliteOptions sqlite;
};

struct ServerOptions {
  unsigned threads = 0;  // 0: one per core
  std::vector<ListenerSpec> listeners;
  broker::BrokerConfig broker;
  StoreOptions store;
};

class Server {
 public:
  // Binds every listener and loads every TLS context; throws
  // std::runtime_error naming the listener if one cannot start.
  explicit Server(ServerOptions options);
  ~Server();

  // Runs until SIGINT/SIGTERM or stop(); returns after a clean shutdown.
  void run();
  // Thread-safe.
  void stop();
  // Re-reads every TLS listener's certificate, key, CA and CRL files; a
  // listener whose new files are invalid keeps its old ones (logged).
  void reload_tls();

  std::vector<boost::asio::ip::tcp::endpoint> endpoints() const;
  broker::Broker& broker() { return *broker_; }

 private:
  void add_listener(const ListenerSpec& spec);
  // False (and the socket closed, counted, logged) if a connection limit is reached.
  bool admit(ListenerStats& stats, std::uint32_t listener_max, Socket& socket);
  void wait_for_signal();
  void begin_shutdown();
  void wait_for_clients(std::chrono::steady_clock::time_point give_up);
  void publish_listener_stats(const broker::Broker::SysPut& put) const;

  ServerOptions options_;
  std::vector<std::unique_ptr<boost::asio::io_context>> loops_;
  std::unique_ptr<store::SqliteStore> sqlite_;  // the durable store, or null
  std::unique_ptr<store::RetainedStore> retained_;  // the memory stores, when not durable
  std::unique_ptr<store::SessionStore> sessions_;
  std::unique_ptr<broker::Broker> broker_;
  std::vector<std::unique_ptr<Listener>> listeners_;
  std::vector<std::pair<std::string, std::shared_ptr<TlsContext>>> tls_contexts_;
  std::vector<std::unique_ptr<WebSocketSettings>> ws_settings_;  // one per ws/wss listener
  std::unique_ptr<boost::asio::signal_set> signals_;
  std::unique_ptr<boost::asio::steady_timer> shutdown_timer_;
  std::size_t next_loop_ = 0;
  bool shutting_down_ = false;
};

}  // namespace petrel::net
