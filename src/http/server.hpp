// http::Server: the operator's HTTP listener (health checks, /metrics, the
// JSON API, the dashboard), on Boost.Beast.
//
// It runs on a thread and io_context of its own, never on an MQTT event
// loop: a slow scrape, a big client listing or a hostile HTTP client costs
// this thread's time only. Handlers read the broker through its operator
// queries (which take the registry lock once and each session's mutex
// briefly) and everything else through Operations.
//
// Limits, all configurable ([http], options.hpp): at most max_connections
// connections at once (the next one gets 429 and is closed); a request's
// header block must arrive within header_timeout and be at most
// max_header_size bytes (431), its body within body_timeout and at most
// max_body_size (413, judged from Content-Length before anything is read); a
// response must be written within body_timeout; an idle kept-alive
// connection is closed after keep_alive_timeout. A connection that misses a
// deadline is closed without an answer, as a slow MQTT client is.
//
// Authentication: with tokens (token_file), every request but the open
// routes (/health, /ready, the dashboard's static files) needs
// "Authorization: Bearer <token>" (or HTTP Basic, when Operations has a
// password check), else 401 before its body is read.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "broker/broker.hpp"
#include "http/operations.hpp"
#include "http/options.hpp"
#include "http/router.hpp"

namespace petrel::http {

// The HTTP listener's own counters (for /metrics), read on its thread.
struct ServerStats {
  std::uint64_t connections_open = 0;
  std::uint64_t connections_accepted = 0;
  std::uint64_t connections_refused = 0;  // over max_connections: 429
  std::uint64_t timeouts = 0;             // header, body or write deadline missed
  std::uint64_t auth_failures = 0;        // 401 answered
  std::map<int, std::uint64_t> responses;  // by status code
};

class Server {
 public:
  using TlsContextFn = std::function<std::shared_ptr<boost::asio::ssl::context>()>;

  // Binds the listener and loads the tokens (before the store opens, like
  // the MQTT listeners); throws std::runtime_error saying why it cannot.
  // `tls`: the current context, when serving HTTPS.
  explicit Server(Options options, TlsContextFn tls = {});
  ~Server();

  // Starts the HTTP thread, serving `broker` and `operations` (kept alive
  // by the caller until stop()).
  void start(broker::Broker& broker, Operations operations);
  // Thread-safe: closes the listener and every connection, joins the thread.
  void stop();
  std::uint16_t port() const { return port_; }
  // Re-reads token_file (SIGHUP, POST /api/v1/reload); keeps the old tokens
  // and returns why if the file is not usable.
  std::optional<std::string> reload_tokens();

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
  std::uint16_t port_ = 0;
};

}  // namespace petrel::http
