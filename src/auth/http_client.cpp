#include "auth/http_client.hpp"

#include <fmt/format.h>
#include <openssl/ssl.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <deque>
#include <map>
#include <optional>
#include <stdexcept>
#include <thread>
#include <unordered_set>

namespace petrel::auth {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using error_code = boost::system::error_code;

HttpTarget HttpTarget::parse(const std::string& url) {
  HttpTarget t;
  std::string_view rest = url;
  if (rest.substr(0, 7) == "http://") {
    rest.remove_prefix(7);
  } else if (rest.substr(0, 8) == "https://") {
    t.tls = true;
    rest.remove_prefix(8);
  } else {
    throw std::invalid_argument(fmt::format("'{}' is not an http:// or https:// URL", url));
  }
  const auto slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  t.path = slash == std::string_view::npos ? "/" : std::string(rest.substr(slash));
  if (authority.empty()) throw std::invalid_argument(fmt::format("'{}' has no host", url));
  // [v6 address]:port, host:port or host
  std::string_view host = authority, port;
  if (authority.front() == '[') {
    const auto close = authority.find(']');
    if (close == std::string_view::npos) throw std::invalid_argument(fmt::format("'{}': bad IPv6 address", url));
    host = authority.substr(1, close - 1);
    if (close + 1 < authority.size()) {
      if (authority[close + 1] != ':') throw std::invalid_argument(fmt::format("'{}': bad port", url));
      port = authority.substr(close + 2);
    }
  } else if (const auto colon = authority.rfind(':'); colon != std::string_view::npos) {
    host = authority.substr(0, colon);
    port = authority.substr(colon + 1);
  }
  if (host.empty()) throw std::invalid_argument(fmt::format("'{}' has no host", url));
  if (!port.empty() && port.find_first_not_of("0123456789") != std::string_view::npos)
    throw std::invalid_argument(fmt::format("'{}': bad port", url));
  t.host = std::string(host);
  t.port = port.empty() ? (t.tls ? "443" : "80") : std::string(port);
  return t;
}

namespace {

struct Conn;

struct Request {
  Request(asio::io_context& io, HttpTarget t, std::string b, HttpClient::Done d)
      : target(std::move(t)), body(std::move(b)), done(std::move(d)), timer(io) {}
  HttpTarget target;
  std::string body;
  HttpClient::Done done;
  asio::steady_timer timer;
  bool finished = false;
  bool retried = false;
  std::shared_ptr<Conn> conn;  // the connection serving it, while one does
};

struct Pool;

struct Conn {
  Conn(asio::io_context& io, asio::ssl::context& ssl, Pool& p, bool tls) : pool(p), resolver(io) {
    if (tls) {
      secure.emplace(io, ssl);
    } else {
      plain.emplace(io);
    }
  }
  beast::tcp_stream& lowest() { return secure ? secure->next_layer() : *plain; }
  void close() {
    error_code ignored;
    lowest().socket().shutdown(tcp::socket::shutdown_both, ignored);
    lowest().socket().close(ignored);
    resolver.cancel();
  }
  Pool& pool;
  tcp::resolver resolver;
  std::optional<beast::tcp_stream> plain;
  std::optional<beast::ssl_stream<beast::tcp_stream>> secure;
  beast::flat_buffer buffer;
  http::request<http::string_body> request;
  std::optional<http::response_parser<http::string_body>> parser;
  bool reused = false;
  bool dead = false;
};

struct Pool {
  HttpTarget target;
  std::vector<std::shared_ptr<Conn>> idle;
  std::size_t active = 0;  // connections open or opening
  std::deque<std::shared_ptr<Request>> waiting;
};

std::string describe(const error_code& ec) {
  if (ec == asio::error::connection_refused) return "connection refused";
  if (ec == http::error::end_of_stream || ec == asio::error::eof) return "the service closed the connection";
  if (ec == asio::error::connection_reset) return "the service reset the connection";
  if (ec == http::error::body_limit) return "response larger than 64 KiB";
  return ec.message();
}

}  // namespace

struct HttpClient::Impl : std::enable_shared_from_this<HttpClient::Impl> {
  explicit Impl(Settings s) : settings(std::move(s)), work(asio::make_work_guard(io)), ssl(asio::ssl::context::tls_client) {
    if (settings.ca_file.empty()) {
      ssl.set_default_verify_paths();
    } else {
      ssl.load_verify_file(settings.ca_file);  // throws: reported as a configuration error
    }
    ssl.set_verify_mode(asio::ssl::verify_peer);
  }

  Settings settings;
  asio::io_context io;
  asio::executor_work_guard<asio::io_context::executor_type> work;
  asio::ssl::context ssl;
  std::thread thread;
  std::map<std::string, Pool> pools;                      // io thread only
  std::unordered_set<std::shared_ptr<Request>> pending;  // io thread only
  std::atomic<std::uint64_t> opened{0};
  bool stopping = false;

  void submit(const std::shared_ptr<Request>& req) {
    if (stopping) return finish(req, HttpResponse{false, 0, {}, "shutting down"});
    pending.insert(req);
    req->timer.expires_after(settings.timeout);
    req->timer.async_wait([self = shared_from_this(), req](const error_code& ec) {
      if (ec || req->finished) return;
      auto conn = req->conn;
      self->finish(req, HttpResponse{false, 0, {}, fmt::format("timeout after {} ms", self->settings.timeout.count())});
      if (conn) self->drop(conn);  // its operations end with operation_aborted
    });
    const std::string key = fmt::format("{}://{}:{}", req->target.tls ? "https" : "http", req->target.host,
                                        req->target.port);
    Pool& pool = pools[key];
    pool.target = req->target;
    pool.waiting.push_back(req);
    dispatch(pool);
  }

  void dispatch(Pool& pool) {
    while (!pool.waiting.empty()) {
      auto req = pool.waiting.front();
      if (req->finished) {
        pool.waiting.pop_front();
        continue;
      }
      std::shared_ptr<Conn> conn;
      if (!pool.idle.empty()) {
        conn = pool.idle.back();
        pool.idle.pop_back();
        conn->reused = true;
      } else if (pool.active < settings.max_connections) {
        conn = std::make_shared<Conn>(io, ssl, pool, pool.target.tls);
        ++pool.active;
      } else {
        return;  // all connections busy: it waits
      }
      pool.waiting.pop_front();
      req->conn = conn;
      if (conn->reused) {
        send(conn, req);
      } else {
        open(conn, req);
      }
    }
  }

  void open(const std::shared_ptr<Conn>& conn, const std::shared_ptr<Request>& req) {
    opened.fetch_add(1, std::memory_order_relaxed);
    conn->resolver.async_resolve(
        req->target.host, req->target.port,
        [self = shared_from_this(), conn, req](const error_code& ec, tcp::resolver::results_type results) {
          if (ec) return self->failed(conn, req, ec);
          conn->lowest().async_connect(results, [self, conn, req](const error_code& ec2, const tcp::endpoint&) {
            if (ec2) return self->failed(conn, req, ec2);
            conn->lowest().socket().set_option(tcp::no_delay(true));
            if (!conn->secure) return self->send(conn, req);
            SSL* s = conn->secure->native_handle();
            SSL_set_tlsext_host_name(s, req->target.host.c_str());
            conn->secure->set_verify_callback(asio::ssl::host_name_verification(req->target.host));
            conn->secure->async_handshake(asio::ssl::stream_base::client, [self, conn, req](const error_code& ec3) {
              if (ec3) return self->failed(conn, req, ec3);
              self->send(conn, req);
            });
          });
        });
  }

  void send(const std::shared_ptr<Conn>& conn, const std::shared_ptr<Request>& req) {
    if (req->finished) return release(conn, true);
    auto& r = conn->request;
    r = {};
    r.method(http::verb::post);
    r.target(req->target.path);
    r.version(11);
    r.set(http::field::host, req->target.host);
    r.set(http::field::user_agent, "petrel");
    r.set(http::field::content_type, "application/json");
    r.keep_alive(true);
    r.body() = req->body;
    r.prepare_payload();
    conn->buffer.clear();
    conn->parser.emplace();
    conn->parser->body_limit(64 * 1024);
    auto on_read = [self = shared_from_this(), conn, req](const error_code& ec, std::size_t) {
      if (ec) return self->failed(conn, req, ec);
      auto& res = conn->parser->get();
      const bool keep = res.keep_alive();
      self->finish(req, HttpResponse{true, res.result_int(), std::move(res.body()), {}});
      self->release(conn, keep);
    };
    auto on_written = [self = shared_from_this(), conn, req, on_read](const error_code& ec, std::size_t) {
      if (ec) return self->failed(conn, req, ec);
      if (conn->secure) {
        http::async_read(*conn->secure, conn->buffer, *conn->parser, on_read);
      } else {
        http::async_read(*conn->plain, conn->buffer, *conn->parser, on_read);
      }
    };
    if (conn->secure) {
      http::async_write(*conn->secure, conn->request, on_written);
    } else {
      http::async_write(*conn->plain, conn->request, on_written);
    }
  }

  // A connection's operation for `req` failed.
  void failed(const std::shared_ptr<Conn>& conn, const std::shared_ptr<Request>& req, const error_code& ec) {
    const bool reused = conn->reused;
    Pool& pool = conn->pool;
    drop(conn);
    if (req->finished) return;
    // A kept-alive connection the service closed meanwhile: once more, on a new one.
    if (reused && !req->retried &&
        (ec == http::error::end_of_stream || ec == asio::error::eof || ec == asio::error::connection_reset ||
         ec == asio::error::broken_pipe)) {
      req->retried = true;
      req->conn.reset();
      pool.waiting.push_front(req);
      return dispatch(pool);
    }
    finish(req, HttpResponse{false, 0, {}, describe(ec)});
  }

  void release(const std::shared_ptr<Conn>& conn, bool keep) {
    if (conn->dead) return;
    if (!keep || stopping) return drop(conn);
    conn->pool.idle.push_back(conn);
    dispatch(conn->pool);
  }

  void drop(const std::shared_ptr<Conn>& conn) {
    if (conn->dead) return;
    conn->dead = true;
    conn->close();
    Pool& pool = conn->pool;
    --pool.active;
    std::erase(pool.idle, conn);
    if (!stopping) dispatch(pool);
  }

  void finish(const std::shared_ptr<Request>& req, HttpResponse res) {
    if (req->finished) return;
    req->finished = true;
    req->timer.cancel();
    req->conn.reset();
    pending.erase(req);
    auto done = std::move(req->done);
    try {
      done(std::move(res));
    } catch (...) {
      // The callback's failure is its own; the client goes on.
    }
  }

  void shutdown() {
    stopping = true;
    auto all = pending;
    for (const auto& req : all) {
      auto conn = req->conn;
      finish(req, HttpResponse{false, 0, {}, "shutting down"});
      if (conn) drop(conn);
    }
    for (auto& [_, pool] : pools) {
      auto idle = pool.idle;
      for (auto& c : idle) drop(c);
      pool.waiting.clear();
    }
  }
};

HttpClient::HttpClient(Settings settings) : impl_(std::make_shared<Impl>(std::move(settings))) {
  impl_->thread = std::thread([impl = impl_.get()] {
    while (true) {
      try {
        impl->io.run();
        return;
      } catch (...) {
        // A handler's exception must not end the thread (and with it every pending request).
      }
    }
  });
}

HttpClient::~HttpClient() {
  asio::post(impl_->io, [impl = impl_] {
    impl->shutdown();
    impl->work.reset();
  });
  impl_->thread.join();
}

void HttpClient::post(const HttpTarget& target, std::string json_body, Done done) {
  auto req = std::make_shared<Request>(impl_->io, target, std::move(json_body), std::move(done));
  asio::post(impl_->io, [impl = impl_, req] { impl->submit(req); });
}

std::uint64_t HttpClient::connections_opened() const { return impl_->opened.load(std::memory_order_relaxed); }

}  // namespace petrel::auth
