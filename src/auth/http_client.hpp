// auth::HttpClient: POSTs JSON to an operator's HTTP service and hands back
// its answer, asynchronously, on a thread of its own (Boost.Beast), so that
// no event loop of the broker ever waits on the network.
//
// Connections are reused (HTTP/1.1 keep-alive): each target (scheme, host,
// port) keeps up to `max_connections` open; requests beyond that wait in a
// queue. Every request has one deadline, `timeout`, covering the queue,
// connecting, the TLS handshake, writing and reading: past it the caller
// gets Error ("timeout") and the connection it was using is closed. A
// request written on a reused connection that the service had meanwhile
// closed is retried once on a fresh one (the keep-alive race). Responses
// larger than 64 KiB are errors.
//
// https targets verify the service's certificate against `ca_file` (or the
// system's CAs) and its host name.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>

namespace petrel::auth {

struct HttpTarget {
  bool tls = false;
  std::string host;
  std::string port;
  std::string path;
  // Parses "http://host[:port]/path" or "https://..."; throws std::invalid_argument.
  static HttpTarget parse(const std::string& url);
};

struct HttpResponse {
  bool ok = false;      // a complete response arrived (any status)
  unsigned status = 0;  // its status
  std::string body;
  std::string error;    // when !ok: what went wrong ("timeout", "connection refused", ...)
};

class HttpClient {
 public:
  struct Settings {
    std::chrono::milliseconds timeout{5000};
    std::size_t max_connections = 8;
    std::string ca_file;  // https: empty = the system's CAs
  };
  explicit HttpClient(Settings settings);
  // Stops the thread; requests still pending get Error ("shutting down").
  ~HttpClient();

  using Done = std::function<void(HttpResponse)>;
  // Thread-safe. `done` is called exactly once, on the client's thread.
  void post(const HttpTarget& target, std::string json_body, Done done);

  // Connections opened so far (for tests and $SYS: reuse keeps it low).
  std::uint64_t connections_opened() const;

  struct Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace petrel::auth
