// app::Service: the broker process put together. It creates the event loops
// and binds the listeners (net::Server), then opens the store the
// configuration chooses and restores what it holds, builds the broker core
// on it, connects the two, registers the $SYS sources of each part, and
// starts the bridges (bridge::Bridges) on loop 0 once the store is
// restored, and handles signals: SIGINT/SIGTERM shut down cleanly, SIGHUP reloads what can
// be reloaded (TLS certificates, the HTTP listener's certificate and tokens,
// password, ACL and credential files).
//
// Access control (auth::AccessControl) is built first: a bad password or
// ACL file stops petrel before it binds a port or opens its database.
// It also starts the operator's HTTP listener (http::Server) and gives it
// http::Operations (operations.cpp): the facts of the net and store layers
// the HTTP layer may not see itself. Under systemd it says READY=1 once
// /ready would answer 200, and pings the watchdog from every event loop.
//
// Order matters: listeners bind before the store opens, so a port that
// cannot be bound or a bad certificate stops petrel before it opens (or
// creates) its database; SIGINT, SIGTERM and SIGHUP are blocked in every
// thread from the first line of the constructor and read from a signalfd,
// so a SIGTERM during start-up (opening a large store) still means a clean
// stop, and one repeated during shutdown cannot kill the process.
#pragma once

#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <atomic>
#include <memory>
#include <mutex>

#include "app/config.hpp"
#include "auth/password_file.hpp"
#include "auth/access_control.hpp"
#include "bridge/bridges.hpp"
#include "broker/broker.hpp"
#include "broker/persistence.hpp"
#include "http/operations.hpp"
#include "http/server.hpp"
#include "net/server.hpp"
#include "store/sqlite_store.hpp"

namespace petrel::app {

class Service {
 public:
  // Throws auth::FileError (a password or ACL file), std::runtime_error
  // (listeners, TLS) or store::StoreError (the database) if petrel cannot
  // start.
  explicit Service(const Config& config);
  ~Service();

  // Serves until SIGINT/SIGTERM; returns after a clean shutdown, with
  // everything the loops reported to the store committed.
  void run();

  // What /ready answers and READY=1 waits for.
  http::Readiness readiness() const;
  // What SIGHUP reloads: every TLS listener's files, the HTTP listener's
  // certificate and its tokens.
  std::vector<http::ReloadResult> reload();

 private:
  void open_store(const StoreOptions& options);
  void wait_for_signal();
  http::Operations operations();  // operations.cpp
  // systemd: READY=1 when ready, then watchdog pings (no-ops without it).
  void notify_when_ready();
  void watchdog(std::chrono::microseconds interval);

  Config config_;
  std::unique_ptr<auth::AccessControl> access_;  // outlives the broker, which asks it
  // Declared first, destroyed last: the loops may still hold handlers that
  // refer to connections, which refer to the broker only while they run.
  std::unique_ptr<net::Server> server_;
  std::unique_ptr<boost::asio::posix::stream_descriptor> signals_;  // a signalfd (service.cpp)
  std::unique_ptr<store::SqliteStore> sqlite_;                 // the durable store, or null
  std::unique_ptr<broker::RetainedStore> memory_retained_;     // the memory stores otherwise
  std::unique_ptr<broker::SessionStore> memory_sessions_;
  std::unique_ptr<broker::Broker> broker_;
  // After the broker (destroyed before it); their handlers run on loop 0.
  std::unique_ptr<bridge::Bridges> bridges_;
  std::unique_ptr<net::TlsContext> http_tls_;  // the HTTP listener's certificate, when it serves HTTPS
  std::unique_ptr<http::Server> http_;
  // The HTTP listener's Basic users ([http] password_file), swapped on reload.
  std::mutex http_users_mutex_;
  std::shared_ptr<const auth::PasswordFile> http_users_;
  std::unique_ptr<boost::asio::steady_timer> notify_timer_, watchdog_timer_;
  std::atomic<bool> stopping_{false};
  const std::chrono::system_clock::time_point started_ = std::chrono::system_clock::now();
};

}  // namespace petrel::app
