#include "http/server.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <sched.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <boost/asio/ip/address.hpp>
#include <boost/asio/post.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

#include "http/api.hpp"
#include "http/shapes.hpp"
#include "http/tokens.hpp"

namespace petrel::http {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;

namespace {
// After an answer that closes the connection, what the client still sends
// is read and dropped for at most this long (and this much), so that the
// answer is not lost to a reset caused by unread bytes.
constexpr auto kLingerTime = std::chrono::seconds(1);
constexpr std::size_t kLingerBytes = 1 << 20;
constexpr int kHttpNice = 10;  // where SCHED_IDLE is refused
}  // namespace

struct Server::Impl {
  Impl(Options o, TlsContextFn t) : options(std::move(o)), tls(std::move(t)) {}

  Options options;
  broker::Broker* broker = nullptr;
  Operations ops;
  TlsContextFn tls;
  Router router;
  ServerStats stats;  // HTTP thread only
  std::mutex tokens_mutex;
  std::vector<std::string> tokens;  // guarded by tokens_mutex (reloaded from other threads)
  std::uint64_t lingering = 0;      // closing connections still draining
  asio::io_context ioc{1};
  tcp::acceptor acceptor{ioc};
  std::thread thread;

  void accept();
  void on_accept(const boost::system::error_code& ec, tcp::socket socket);
  // Whether the request's credentials are good (always, without tokens
  // and without HTTP Basic users).
  bool authorized(const bhttp::request_header<>& h) {
    std::vector<std::string> current;
    {
      std::lock_guard lock(tokens_mutex);
      if (tokens.empty() && !ops.check_password) return true;
      current = tokens;
    }
    const auto it = h.find(bhttp::field::authorization);
    if (it == h.end()) return false;
    const beast::string_view value = it->value();
    std::string_view v(value.data(), value.size());
    if (v.size() > 7 && beast::iequals(value.substr(0, 7), "Bearer "))
      return !current.empty() && token_matches(current, v.substr(7));
    if (v.size() > 6 && beast::iequals(value.substr(0, 6), "Basic ") && ops.check_password) {
      auto decoded = base64_decode(v.substr(6));
      if (!decoded) return false;
      const auto colon = decoded->find(':');
      if (colon == std::string::npos) return false;
      return ops.check_password(std::string_view(*decoded).substr(0, colon),
                                std::string_view(*decoded).substr(colon + 1));
    }
    return false;
  }
  Response dispatch(const Router::Match& m, Request& req) {
    try {
      req.params = m.params;
      return (*m.handler)(req);
    } catch (const std::exception& e) {
      spdlog::error("http: {} {} failed: {}", req.method, req.path, e.what());
      return Response::error(500, fmt::format("internal error: {}", e.what()));
    }
  }
};

namespace {

template <class Stream>
class Connection : public std::enable_shared_from_this<Connection<Stream>> {
 public:
  static constexpr bool kTls = !std::is_same_v<Stream, beast::tcp_stream>;

  // `context`: the TLS context this connection keeps for its lifetime (a
  // reload swaps the server's, not this one).
  Connection(Server::Impl& server, tcp::socket socket, std::shared_ptr<ssl::context> context, std::string peer)
      : server_(server), context_(std::move(context)), stream_(make_stream(std::move(socket))), peer_(std::move(peer)) {
    ++server_.stats.connections_open;
  }
  ~Connection() { --server_.stats.connections_open; }

  void start() {
    if constexpr (kTls) {
      lowest().expires_after(server_.options.header_timeout);
      stream_.async_handshake(ssl::stream_base::server, [self = this->shared_from_this()](beast::error_code ec) {
        if (ec) {
          if (ec == beast::error::timeout) ++self->server_.stats.timeouts;
          spdlog::debug("http: TLS handshake with {} failed: {}", self->peer_, ec.message());
          return;
        }
        self->read_header();
      });
    } else {
      read_header();
    }
  }

  // A connection over max_connections: 429, then closed.
  void refuse() {
    respond(Response::error(429, fmt::format("too many HTTP connections (max_connections = {})",
                                             server_.options.max_connections)),
            true);
  }

 private:
  auto& lowest() { return beast::get_lowest_layer(stream_); }
  Stream make_stream(tcp::socket socket) {
    if constexpr (kTls) {
      return Stream(beast::tcp_stream(std::move(socket)), *context_);
    } else {
      return Stream(std::move(socket));
    }
  }

  // Waits for the first byte of the next request on a kept-alive connection
  // (keep_alive_timeout), then gives the request header_timeout.
  void await_next() {
    lowest().expires_after(server_.options.keep_alive_timeout);
    stream_.async_read_some(buffer_.prepare(4096), [self = this->shared_from_this()](beast::error_code ec,
                                                                                    std::size_t n) {
      if (ec) {
        if (ec == beast::error::timeout) spdlog::debug("http: idle connection {} closed", self->peer_);
        return;
      }
      self->buffer_.commit(n);
      self->read_header();
    });
  }

  void read_header() {
    parser_.emplace();
    parser_->header_limit(server_.options.max_header_size);
    parser_->body_limit(server_.options.max_body_size);
    lowest().expires_after(server_.options.header_timeout);
    bhttp::async_read_header(stream_, buffer_, *parser_,
                             [self = this->shared_from_this()](beast::error_code ec, std::size_t) {
                               self->on_header(ec);
                             });
  }

  bool read_failed(beast::error_code ec) {
    if (!ec) return false;
    if (ec == beast::error::timeout) {
      ++server_.stats.timeouts;
      spdlog::debug("http: {} missed a request deadline, closed", peer_);
    } else if (ec == bhttp::error::header_limit) {
      respond(Response::error(431, fmt::format("request header larger than max_header_size ({} bytes)",
                                               server_.options.max_header_size)),
              true);
    } else if (ec == bhttp::error::body_limit) {
      respond(Response::error(413, fmt::format("request body larger than max_body_size ({} bytes)",
                                               server_.options.max_body_size)),
              true);
    } else if (ec == bhttp::error::end_of_stream || ec == asio::error::eof || ec == asio::error::connection_reset ||
               ec == ssl::error::stream_truncated || ec == bhttp::error::partial_message) {
      // The client went away.
    } else {
      respond(Response::error(400, fmt::format("malformed HTTP request: {}", ec.message())), true);
    }
    return true;
  }

  void on_header(beast::error_code ec) {
    if (read_failed(ec)) return;
    const auto& h = parser_->get();
    std::string_view target(h.target().data(), h.target().size());
    if (target.empty() || target.front() != '/')
      return respond(Response::error(400, "the request target must be a path"), true);
    const auto q = target.find('?');
    req_ = Request{};
    req_.method = std::string(h.method_string());
    req_.path = std::string(target.substr(0, q));
    if (q != std::string_view::npos) {
      auto query = parse_query(target.substr(q + 1));
      if (!query) return respond(Response::error(400, "broken percent-encoding in the query string"), true);
      req_.query = std::move(*query);
    }
    match_ = server_.router.match(req_.method, req_.path);
    if (!match_.bad_escape.empty())
      return respond(Response::error(400, fmt::format("broken percent-encoding in '{}'", match_.bad_escape)), true);
    if (!match_.handler) {
      if (!match_.allowed.empty()) {
        std::string allow;
        for (const auto& m : match_.allowed) allow += (allow.empty() ? "" : ", ") + m;
        auto r = Response::error(405, fmt::format("{} is not allowed on {} (allowed: {})", req_.method, req_.path,
                                                  allow));
        r.headers.emplace_back("Allow", allow);
        return respond(std::move(r), true);
      }
      return respond(Response::error(404, fmt::format("no such endpoint: {}", req_.path)), true);
    }
    if (!match_.open && !server_.authorized(h)) {
      ++server_.stats.auth_failures;
      auto r = Response::error(401, server_.ops.check_password
                                        ? "authentication required: Authorization: Basic (user:password) or Bearer <token>"
                                        : "authentication required: Authorization: Bearer <token>");
      r.headers.emplace_back("WWW-Authenticate", server_.ops.check_password ? "Basic realm=\"petrel\", Bearer"
                                                                               : "Bearer realm=\"petrel\"");
      return respond(std::move(r), true);
    }
    if (const auto ct = h.find(bhttp::field::content_type); ct != h.end())
      req_.content_type = std::string(ct->value());
    if (beast::iequals(h[bhttp::field::expect], beast::string_view("100-continue"))) {
      continue_ = bhttp::response<bhttp::empty_body>{bhttp::status::continue_, h.version()};
      lowest().expires_after(server_.options.body_timeout);
      bhttp::async_write(stream_, continue_, [self = this->shared_from_this()](beast::error_code e, std::size_t) {
        if (e) return;
        self->read_body();
      });
      return;
    }
    read_body();
  }

  void read_body() {
    lowest().expires_after(server_.options.body_timeout);
    bhttp::async_read(stream_, buffer_, *parser_, [self = this->shared_from_this()](beast::error_code ec, std::size_t) {
      if (self->read_failed(ec)) return;
      self->req_.body = std::move(self->parser_->get().body());
      const bool keep_alive = self->parser_->get().keep_alive();
      self->respond(self->server_.dispatch(self->match_, self->req_), !keep_alive);
    });
  }

  void respond(Response r, bool close) {
    ++server_.stats.responses[r.status];
    spdlog::debug("http: {} {} {} -> {}", peer_, req_.method, req_.path, r.status);
    res_ = {};
    res_.version(11);
    res_.result(static_cast<unsigned>(r.status));
    res_.reason(std::string(reason_phrase(r.status)));
    res_.set(bhttp::field::server, "petrel");
    res_.set(bhttp::field::content_type, r.content_type);
    res_.set(bhttp::field::cache_control, "no-store");
    res_.set("X-Content-Type-Options", "nosniff");
    for (auto& [k, v] : r.headers) res_.set(k, v);
    res_.body() = std::move(r.body);
    res_.keep_alive(!close);
    res_.prepare_payload();
    lowest().expires_after(server_.options.body_timeout);
    bhttp::async_write(stream_, res_, [self = this->shared_from_this(), close](beast::error_code ec, std::size_t) {
      if (ec) {
        if (ec == beast::error::timeout) ++self->server_.stats.timeouts;
        return;
      }
      if (close) return self->linger();
      self->buffer_.consume(0);
      if (self->buffer_.size() > 0) return self->read_header();  // pipelined request already here
      self->await_next();
    });
  }

  // Half-closes and drops what the client still sends, briefly, so that it
  // reads the answer instead of a reset.
  void linger() {
    beast::error_code ignored;
    lowest().socket().shutdown(tcp::socket::shutdown_send, ignored);
    if (server_.lingering >= server_.options.max_connections) return;  // a flood: close at once
    ++server_.lingering;
    lingering_ = true;
    lowest().expires_after(kLingerTime);
    drain();
  }
  void drain() {
    lowest().async_read_some(buffer_.prepare(16 * 1024), [self = this->shared_from_this()](beast::error_code ec,
                                                                                           std::size_t n) {
      self->drained_ += n;
      if (ec || self->drained_ > kLingerBytes) return;
      self->drain();
    });
  }

 public:
  void release() {
    if (lingering_) --server_.lingering;
  }

 private:
  Server::Impl& server_;
  std::shared_ptr<ssl::context> context_;
  Stream stream_;
  std::string peer_;
  beast::flat_buffer buffer_{16 * 1024};
  std::optional<bhttp::request_parser<bhttp::string_body>> parser_;
  Request req_;
  Router::Match match_;
  bhttp::response<bhttp::string_body> res_;
  bhttp::response<bhttp::empty_body> continue_;
  bool lingering_ = false;
  std::size_t drained_ = 0;
};

// Ends each connection's linger accounting with the connection itself.
template <class Stream>
std::shared_ptr<Connection<Stream>> make_connection(Server::Impl& server, tcp::socket socket,
                                                    std::shared_ptr<ssl::context> context, std::string peer) {
  return std::shared_ptr<Connection<Stream>>(new Connection<Stream>(server, std::move(socket), std::move(context),
                                                                    std::move(peer)),
                                             [](Connection<Stream>* c) {
                                               c->release();
                                               delete c;
                                             });
}

std::string peer_of(const tcp::socket& s) {
  boost::system::error_code ec;
  auto ep = s.remote_endpoint(ec);
  if (ec) return "unknown";
  return fmt::format("{}:{}", ep.address().to_string(), ep.port());
}

}  // namespace

void Server::Impl::accept() {
  acceptor.async_accept([this](const boost::system::error_code& ec, tcp::socket socket) {
    on_accept(ec, std::move(socket));
  });
}

void Server::Impl::on_accept(const boost::system::error_code& ec, tcp::socket socket) {
  if (ec == asio::error::operation_aborted || !acceptor.is_open()) return;
  if (ec) {
    // Like an MQTT listener: an accept error (EMFILE...) never stops it.
    spdlog::warn("http: accept failed: {}", ec.message());
    auto timer = std::make_shared<asio::steady_timer>(ioc, std::chrono::milliseconds(100));
    timer->async_wait([this, timer](const boost::system::error_code& e) {
      if (!e) accept();
    });
    return;
  }
  ++stats.connections_accepted;
  std::string peer = peer_of(socket);
  const bool over = stats.connections_open >= options.max_connections;
  if (over) ++stats.connections_refused;
  if (tls) {
    if (over) return;  // no handshake spent on a refusal: closed at once
    make_connection<beast::ssl_stream<beast::tcp_stream>>(*this, std::move(socket), tls(), std::move(peer))->start();
  } else {
    auto c = make_connection<beast::tcp_stream>(*this, std::move(socket), nullptr, std::move(peer));
    over ? c->refuse() : c->start();
  }
  accept();
}

Server::Server(Options options, TlsContextFn tls) : impl_(std::make_unique<Impl>(std::move(options), std::move(tls))) {
  auto& o = impl_->options;
  if (!o.token_file.empty()) impl_->tokens = load_tokens(o.token_file);
  boost::system::error_code ec;
  const auto address = asio::ip::make_address(o.bind, ec);
  if (ec) throw std::runtime_error(fmt::format("[http]: invalid bind address '{}'", o.bind));
  const tcp::endpoint endpoint(address, o.port);
  auto fail = [&](const char* what) {
    throw std::runtime_error(fmt::format("[http]: cannot {} {}:{}: {} (set [http] port, or enabled = false)", what,
                                         o.bind, o.port, ec.message()));
  };
  auto& a = impl_->acceptor;
  a.open(endpoint.protocol(), ec);
  if (ec) fail("open");
  a.set_option(tcp::acceptor::reuse_address(true), ec);
  a.bind(endpoint, ec);
  if (ec) fail("bind");
  a.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) fail("listen on");
  port_ = a.local_endpoint().port();
}

Server::~Server() { stop(); }

void Server::start(broker::Broker& broker, Operations operations) {
  impl_->broker = &broker;
  impl_->ops = std::move(operations);
  add_routes(impl_->router, ApiContext{broker, impl_->ops, impl_->stats, impl_->options});
  spdlog::info("http: serving the operator API{} on {}://{}:{}{}", " and dashboard", impl_->tls ? "https" : "http",
               impl_->options.bind, port_, impl_->tokens.empty() ? " (no token required: loopback only)" : "");
  impl_->accept();
  impl_->thread = std::thread([this] {
    // The MQTT event loops come first: the HTTP thread runs under
    // SCHED_IDLE (this thread only). A lower nice value is not enough: an
    // event loop woken while the HTTP thread is in a big listing or a scrape
    // on its core would wait for the rest of the HTTP thread's time slice
    // (milliseconds, measured as the MQTT p99 in bench/http_load), where a
    // SCHED_IDLE thread is preempted at once. On a core the loops keep busy
    // it still gets a small share, enough for health checks.
    const sched_param param{};
    if (sched_setscheduler(static_cast<pid_t>(gettid()), SCHED_IDLE, &param) != 0 &&
        setpriority(PRIO_PROCESS, static_cast<id_t>(gettid()), kHttpNice) != 0)
      spdlog::debug("http: could not lower the HTTP thread's priority: {}", std::strerror(errno));
    // The HTTP thread's own last line of defence: a handler's exception is
    // already answered with 500 (dispatch); anything else is logged and the
    // loop goes on.
    while (true) {
      try {
        impl_->ioc.run();
        return;
      } catch (const std::exception& e) {
        spdlog::error("http: internal error, the HTTP loop continues: {}", e.what());
      }
    }
  });
}

void Server::stop() {
  if (!impl_ || !impl_->thread.joinable()) return;
  asio::post(impl_->ioc, [this] {
    boost::system::error_code ignored;
    impl_->acceptor.close(ignored);
    impl_->ioc.stop();
  });
  impl_->thread.join();
}

std::optional<std::string> Server::reload_tokens() {
  if (impl_->options.token_file.empty()) return std::nullopt;
  try {
    auto fresh = load_tokens(impl_->options.token_file);
    std::lock_guard lock(impl_->tokens_mutex);
    impl_->tokens = std::move(fresh);
    return std::nullopt;
  } catch (const std::exception& e) {
    return std::string(e.what());
  }
}

}  // namespace petrel::http
