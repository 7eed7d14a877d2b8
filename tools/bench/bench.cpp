#include "bench/bench.hpp"

#include <fmt/format.h>
#include <sched.h>
#include <sys/resource.h>

#include <atomic>
#include <boost/asio/connect.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "bench/histogram.hpp"
#include "mqtt/codec.hpp"
#include "mqtt/wire.hpp"

namespace petrel::bench {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

struct Settings {
  std::string scenario;
  std::string host = "localhost";
  std::uint16_t port = 1883;
  std::string protocol = "5";
  unsigned threads = 0;
  unsigned publishers = 1;
  unsigned subscribers = 1;
  unsigned pairs = 8;
  int qos = 0;
  double duration = 10;
  std::size_t payload = 64;
  double rate = 0;
  unsigned inflight = 64;
  unsigned connections = 1000;
  double hold = 0;
  bool json = false;
  std::string topic = "petrel-bench";
  // TLS (conn scenario)
  bool tls = false;
  std::string ca_file, cert_file, key_file, server_name;
  bool insecure = false;
};

std::uint64_t now_ns() {
  return static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch()).count());
}

double cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

unsigned usable_cores() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) == 0) return static_cast<unsigned>(CPU_COUNT(&set));
  return std::max(1u, std::thread::hardware_concurrency());
}

// One publisher's end-to-end accounting, shared with the subscribers that
// receive its messages (on other threads).
struct PublisherState {
  std::atomic<std::uint64_t> sent{0};
  std::atomic<std::uint64_t> received{0};
  std::atomic<bool> waiting{false};
  std::function<void()> wake;
};

struct Shared {
  Settings s;
  mqtt::Version version = mqtt::Version::V5;
  unsigned receivers_per_message = 1;
  std::vector<std::unique_ptr<PublisherState>> pubs;
  std::atomic<bool> running{false};
  std::atomic<bool> stopping{false};
  std::atomic<unsigned> ready{0};
  std::atomic<unsigned> failed{0};
  std::atomic<std::uint64_t> received{0};
  std::atomic<std::uint64_t> errors{0};
  std::mutex mutex;
  std::map<std::string, std::uint64_t> failures;
  std::vector<Histogram> histograms;  // one per thread
  tcp::resolver::results_type endpoints;

  void fail(const std::string& why) {
    failed.fetch_add(1);
    std::lock_guard lock(mutex);
    ++failures[why];
  }
};

// Payload layout: 8 bytes send time (ns), 4 bytes publisher index, then padding.
constexpr std::size_t kStamp = 12;

class Client : public std::enable_shared_from_this<Client> {
 public:
  enum class Role { Publisher, Subscriber, Idle };

  Client(asio::io_context& io, Shared& shared, Role role, unsigned index, unsigned thread, std::string topic)
      : socket_(io),
        timer_(io),
        shared_(shared),
        role_(role),
        index_(index),
        thread_(thread),
        topic_(std::move(topic)),
        buffer_(role == Role::Idle ? 512 : 64 * 1024) {}

  void start() {
    started_ = Clock::now();
    asio::async_connect(socket_, shared_.endpoints,
                        [self = shared_from_this()](const boost::system::error_code& ec, const tcp::endpoint&) {
                          if (ec) return self->fail(ec.message());
                          boost::system::error_code ignored;
                          self->socket_.set_option(tcp::no_delay(true), ignored);
                          mqtt::Connect c;
                          c.version = self->shared_.version;
                          c.client_id =
                              fmt::format("bench-{}-{}-{}", static_cast<int>(self->role_), self->index_, ::getpid());
                          c.keep_alive = 300;
                          self->queue(mqtt::encode(c, c.version));
                          self->read();
                        });
  }

  // Called once, when the measurement starts.
  void begin_publishing() {
    if (role_ != Role::Publisher) return;
    if (shared_.s.rate > 0) {
      per_tick_ = shared_.s.rate / shared_.s.publishers / 1000.0;  // 1 ms ticks
      next_tick_ = Clock::now();
      tick();
    }
    pump();
  }

  // A subscriber freed room in this publisher's window.
  void resume() { pump(); }

  void disconnect() {
    if (!socket_.is_open()) return;
    queue(mqtt::encode(mqtt::Disconnect{}, shared_.version));
    closing_ = true;
  }

  Clock::time_point connected_at;
  asio::any_io_executor executor() { return socket_.get_executor(); }

 private:
  void fail(const std::string& why) {
    if (done_) return;
    done_ = true;
    shared_.fail(why);
    boost::system::error_code ignored;
    socket_.close(ignored);
  }

  void read() {
    socket_.async_read_some(asio::buffer(buffer_),
                            [self = shared_from_this()](const boost::system::error_code& ec, std::size_t n) {
                              if (ec) {
                                if (!self->connected_ && !self->done_) self->fail(ec.message());
                                if (self->connected_ && !self->closing_ && !self->shared_.stopping)
                                  self->shared_.errors.fetch_add(1);
                                return;
                              }
                              try {
                                self->reader_.feed(std::string_view(self->buffer_.data(), n));
                                while (auto f = self->reader_.next()) self->handle(*f);
                              } catch (const mqtt::ProtocolError& e) {
                                self->shared_.errors.fetch_add(1);
                                return self->fail(e.what());
                              }
                              self->flush();
                              self->read();
                            });
  }

  void handle(const mqtt::Frame& f) {
    switch (f.type()) {
      case mqtt::PacketType::Connack: {
        const auto ack = std::get<mqtt::Connack>(mqtt::decode(f, shared_.version));
        if (ack.reason != mqtt::ReasonCode::Success)
          return fail(fmt::format("CONNACK {}", mqtt::to_string(ack.reason)));
        connected_ = true;
        connected_at = Clock::now();
        shared_.histograms[thread_].record(static_cast<std::uint64_t>(
            std::chrono::duration_cast<std::chrono::microseconds>(connected_at - started_).count()));
        if (role_ == Role::Subscriber) {
          mqtt::Subscribe s;
          s.packet_id = 1;
          s.subscriptions.push_back({topic_, {static_cast<std::uint8_t>(shared_.s.qos), false, false, 0}});
          queue(mqtt::encode(s, shared_.version));
        } else {
          if (role_ == Role::Publisher) prepare_template();
          shared_.ready.fetch_add(1);
        }
        break;
      }
      case mqtt::PacketType::Suback: shared_.ready.fetch_add(1); break;
      case mqtt::PacketType::Publish: on_publish(f); break;
      case mqtt::PacketType::Puback:
        if (acks_pending_ > 0) --acks_pending_;
        pump();
        break;
      case mqtt::PacketType::Disconnect: shared_.errors.fetch_add(1); break;
      default: break;
    }
  }

  void on_publish(const mqtt::Frame& f) {
    // Parse in place: no allocation per message.
    mqtt::Reader r(f.body);
    r.bytes(r.u16());  // topic
    const std::uint8_t qos = (f.flags() >> 1) & 3;
    std::uint16_t id = 0;
    if (qos) id = r.u16();
    if (shared_.version == mqtt::Version::V5) r.bytes(r.varint());  // properties
    const auto payload = r.rest();
    if (payload.size() >= kStamp) {
      std::uint64_t sent;
      std::uint32_t pub;
      std::memcpy(&sent, payload.data(), 8);
      std::memcpy(&pub, payload.data() + 8, 4);
      const std::uint64_t now = now_ns();
      shared_.histograms[thread_].record(now > sent ? (now - sent) / 1000 : 0);
      if (pub < shared_.pubs.size()) {
        auto& ps = *shared_.pubs[pub];
        ps.received.fetch_add(1, std::memory_order_relaxed);
        if (ps.waiting.load(std::memory_order_relaxed) && ps.waiting.exchange(false)) ps.wake();
      }
      shared_.received.fetch_add(1, std::memory_order_relaxed);
    }
    if (qos == 1) {
      const char ack[4] = {0x40, 0x02, static_cast<char>(id >> 8), static_cast<char>(id & 0xFF)};
      out_.append(ack, 4);
    }
  }

  void prepare_template() {
    mqtt::Publish p;
    p.topic = topic_;
    p.qos = static_cast<std::uint8_t>(shared_.s.qos);
    p.packet_id = 1;
    p.payload.assign(std::max(shared_.s.payload, kStamp), 'x');
    template_.clear();
    id_offset_ = mqtt::encode_publish(p, shared_.version, template_);
    payload_offset_ = template_.size() - p.payload.size();
  }

  void tick() {
    if (shared_.stopping) return;
    tokens_ = std::min(tokens_ + per_tick_, std::max(2.0, per_tick_ * 2));
    pump();
    // Absolute deadlines: the rate does not drift with the timer's lateness.
    next_tick_ += std::chrono::milliseconds(1);
    timer_.expires_at(next_tick_);
    timer_.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
      if (!ec) self->tick();
    });
  }

  void pump() {
    if (role_ != Role::Publisher || !shared_.running || shared_.stopping || done_) return;
    auto& ps = *shared_.pubs[index_];
    const unsigned window = shared_.s.inflight;
    while (true) {
      const std::uint64_t sent = ps.sent.load(std::memory_order_relaxed);
      const std::uint64_t done = ps.received.load(std::memory_order_relaxed) / shared_.receivers_per_message;
      if (sent - done >= window) {
        ps.waiting.store(true);
        // Re-check: a delivery may have landed between the load and the store.
        if (ps.received.load() / shared_.receivers_per_message + window > sent) {
          ps.waiting.store(false);
          continue;
        }
        break;
      }
      if (shared_.s.qos > 0 && acks_pending_ >= 30000) break;
      if (per_tick_ > 0) {
        if (tokens_ < 1) break;
        tokens_ -= 1;
      }
      const std::size_t at = out_.size();
      out_.append(template_);
      if (shared_.s.qos > 0) {
        next_id_ = static_cast<std::uint16_t>(next_id_ == 65535 ? 1 : next_id_ + 1);
        out_[at + id_offset_] = static_cast<char>(next_id_ >> 8);
        out_[at + id_offset_ + 1] = static_cast<char>(next_id_ & 0xFF);
        ++acks_pending_;
      }
      const std::uint64_t t = now_ns();
      const std::uint32_t idx = index_;
      std::memcpy(out_.data() + at + payload_offset_, &t, 8);
      std::memcpy(out_.data() + at + payload_offset_ + 8, &idx, 4);
      ps.sent.fetch_add(1, std::memory_order_relaxed);
      if (out_.size() > 256 * 1024) break;  // write this batch first
    }
    flush();
  }

  void queue(const std::string& bytes) {
    out_ += bytes;
    flush();
  }

  void flush() {
    if (writing_ || out_.empty() || !socket_.is_open()) return;
    writing_ = true;
    std::swap(out_, wbuf_);
    asio::async_write(socket_, asio::buffer(wbuf_),
                      [self = shared_from_this()](const boost::system::error_code& ec, std::size_t) {
                        self->writing_ = false;
                        self->wbuf_.clear();
                        if (ec) {
                          if (!self->closing_ && !self->shared_.stopping) self->shared_.errors.fetch_add(1);
                          return;
                        }
                        if (self->closing_ && self->out_.empty()) {
                          boost::system::error_code ignored;
                          self->socket_.shutdown(tcp::socket::shutdown_both, ignored);
                          self->socket_.close(ignored);
                          return;
                        }
                        self->flush();
                        self->pump();
                      });
  }

  tcp::socket socket_;
  asio::steady_timer timer_;
  Shared& shared_;
  Role role_;
  unsigned index_;
  unsigned thread_;
  std::string topic_;
  std::vector<char> buffer_;
  mqtt::FrameReader reader_{268'435'460};
  std::string out_, wbuf_, template_;
  std::size_t id_offset_ = 0, payload_offset_ = 0;
  std::uint16_t next_id_ = 0;
  unsigned acks_pending_ = 0;
  double per_tick_ = 0, tokens_ = 0;
  Clock::time_point started_;
  Clock::time_point next_tick_;
  bool connected_ = false, writing_ = false, closing_ = false, done_ = false;
};

// One mutual-TLS (or server-auth-only) MQTT connection for the conn scenario:
// TCP connect, TLS handshake, CONNECT, CONNACK; then idle until disconnect().
class TlsConnClient : public std::enable_shared_from_this<TlsConnClient> {
 public:
  TlsConnClient(asio::io_context& io, asio::ssl::context& ctx, Shared& shared, unsigned index, unsigned thread)
      : stream_(io, ctx), shared_(shared), index_(index), thread_(thread) {}

  void start() {
    started_ = Clock::now();
    const std::string name = shared_.s.server_name.empty() ? shared_.s.host : shared_.s.server_name;
    SSL_set_tlsext_host_name(stream_.native_handle(), name.c_str());
    if (!shared_.s.insecure) stream_.set_verify_callback(asio::ssl::host_name_verification(name));
    asio::async_connect(stream_.next_layer(), shared_.endpoints,
                        [self = shared_from_this()](const boost::system::error_code& ec, const tcp::endpoint&) {
                          if (ec) return self->fail(ec.message());
                          self->stream_.async_handshake(asio::ssl::stream_base::client,
                                                        [self](const boost::system::error_code& e) {
                                                          if (e) return self->fail("TLS: " + e.message());
                                                          self->send_connect();
                                                        });
                        });
  }

  void disconnect() {
    if (!stream_.next_layer().is_open()) return;
    out_ = mqtt::encode(mqtt::Disconnect{}, shared_.version);
    asio::async_write(stream_, asio::buffer(out_),
                      [self = shared_from_this()](const boost::system::error_code&, std::size_t) {
                        boost::system::error_code ignored;
                        self->stream_.next_layer().close(ignored);
                      });
  }

 private:
  void fail(const std::string& why) {
    if (done_) return;
    done_ = true;
    shared_.fail(why);
    boost::system::error_code ignored;
    stream_.next_layer().close(ignored);
  }

  void send_connect() {
    mqtt::Connect c;
    c.version = shared_.version;
    c.client_id = fmt::format("bench-tls-{}-{}", index_, ::getpid());
    c.keep_alive = 300;
    out_ = mqtt::encode(c, c.version);
    asio::async_write(stream_, asio::buffer(out_),
                      [self = shared_from_this()](const boost::system::error_code& ec, std::size_t) {
                        if (ec) return self->fail(ec.message());
                        self->read();
                      });
  }

  void read() {
    stream_.async_read_some(
        asio::buffer(buffer_), [self = shared_from_this()](const boost::system::error_code& ec, std::size_t n) {
          if (ec) {
            if (!self->connected_) self->fail(ec.message());
            return;
          }
          try {
            self->reader_.feed(std::string_view(self->buffer_.data(), n));
            while (auto f = self->reader_.next()) {
              if (f->type() != mqtt::PacketType::Connack || self->connected_) continue;
              const auto ack = std::get<mqtt::Connack>(mqtt::decode(*f, self->shared_.version));
              if (ack.reason != mqtt::ReasonCode::Success)
                return self->fail(fmt::format("CONNACK {}", mqtt::to_string(ack.reason)));
              self->connected_ = true;
              self->shared_.histograms[self->thread_].record(static_cast<std::uint64_t>(
                  std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - self->started_).count()));
              self->shared_.ready.fetch_add(1);
            }
          } catch (const mqtt::ProtocolError& e) {
            return self->fail(e.what());
          }
          self->read();
        });
  }

  asio::ssl::stream<tcp::socket> stream_;
  Shared& shared_;
  unsigned index_;
  unsigned thread_;
  std::array<char, 1024> buffer_{};
  mqtt::FrameReader reader_{1 << 20};
  std::string out_;
  Clock::time_point started_;
  bool connected_ = false, done_ = false;
};

std::unique_ptr<asio::ssl::context> client_tls_context(const Settings& s) {
  auto ctx = std::make_unique<asio::ssl::context>(asio::ssl::context::tls_client);
  ctx->set_verify_mode(s.insecure ? asio::ssl::verify_none : asio::ssl::verify_peer);
  if (!s.ca_file.empty()) {
    ctx->load_verify_file(s.ca_file);
  } else {
    ctx->set_default_verify_paths();
  }
  if (!s.cert_file.empty()) {
    ctx->use_certificate_chain_file(s.cert_file);
    ctx->use_private_key_file(s.key_file.empty() ? s.cert_file : s.key_file, asio::ssl::context::pem);
  }
  return ctx;
}

struct Loops {
  std::vector<std::unique_ptr<asio::io_context>> io;
  std::vector<asio::executor_work_guard<asio::io_context::executor_type>> guards;
  std::vector<std::thread> threads;
  explicit Loops(unsigned n) {
    for (unsigned i = 0; i < n; ++i) {
      io.push_back(std::make_unique<asio::io_context>(1));
      guards.push_back(asio::make_work_guard(*io.back()));
    }
    for (auto& ctx : io) threads.emplace_back([c = ctx.get()] { c->run(); });
  }
  void stop() {
    guards.clear();
    for (auto& ctx : io) ctx->stop();
    for (auto& t : threads) t.join();
    threads.clear();
  }
  ~Loops() {
    if (!threads.empty()) stop();
  }
};

bool wait_for(const std::function<bool()>& cond, double seconds) {
  const auto end = Clock::now() + std::chrono::milliseconds(static_cast<long>(seconds * 1000));
  while (!cond()) {
    if (Clock::now() >= end) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return true;
}

nlohmann::json latency_json(const Histogram& h) {
  return {{"p50", h.percentile(0.50)}, {"p90", h.percentile(0.90)}, {"p99", h.percentile(0.99)}, {"max", h.max()}};
}

void print_latency(const Histogram& h) {
  std::printf("  latency p50 %llu us, p90 %llu us, p99 %llu us, max %llu us\n",
              static_cast<unsigned long long>(h.percentile(0.5)), static_cast<unsigned long long>(h.percentile(0.9)),
              static_cast<unsigned long long>(h.percentile(0.99)), static_cast<unsigned long long>(h.max()));
}

int resolve(Shared& sh) {
  asio::io_context io;
  tcp::resolver resolver(io);
  boost::system::error_code ec;
  sh.endpoints = resolver.resolve(sh.s.host, std::to_string(sh.s.port), ec);
  if (ec) {
    std::fprintf(stderr, "petrel bench: cannot resolve host '%s': %s\n", sh.s.host.c_str(), ec.message().c_str());
    return 1;
  }
  return 0;
}

// ----------------------------------------------------------------- conn --

int run_conn(Settings s) {
  Shared sh;
  sh.s = s;
  sh.version = (s.protocol == "3.1.1" || s.protocol == "311") ? mqtt::Version::V311 : mqtt::Version::V5;
  if (int rc = resolve(sh)) return rc;
  const unsigned threads = s.threads ? s.threads : usable_cores();
  sh.histograms.resize(threads);
  Loops loops(threads);
  std::vector<std::shared_ptr<Client>> clients;
  std::vector<std::shared_ptr<TlsConnClient>> tls_clients;
  const bool tls = s.tls || !s.ca_file.empty() || !s.cert_file.empty() || s.insecure;
  std::unique_ptr<asio::ssl::context> tls_context;
  if (tls) {
    try {
      tls_context = client_tls_context(s);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "petrel bench: TLS setup failed: %s\n", e.what());
      return 1;
    }
  }
  clients.reserve(s.connections);
  const double cpu0 = cpu_seconds();
  const auto t0 = Clock::now();
  for (unsigned i = 0; i < s.connections; ++i) {
    if (s.rate > 0) std::this_thread::sleep_until(t0 + std::chrono::microseconds(static_cast<long>(i * 1e6 / s.rate)));
    if (tls) {
      auto c = std::make_shared<TlsConnClient>(*loops.io[i % threads], *tls_context, sh, i, i % threads);
      tls_clients.push_back(c);
      asio::post(*loops.io[i % threads], [c] { c->start(); });
      continue;
    }
    auto c = std::make_shared<Client>(*loops.io[i % threads], sh, Client::Role::Idle, i, i % threads, "");
    clients.push_back(c);
    asio::post(*loops.io[i % threads], [c] { c->start(); });
  }
  wait_for([&] { return sh.ready + sh.failed >= s.connections; }, 60);
  const auto t1 = Clock::now();
  const double elapsed = std::chrono::duration<double>(t1 - t0).count();
  const double cpu = cpu_seconds() - cpu0;  // the connect phase only
  if (s.hold > 0) {
    if (!s.json) std::fprintf(stderr, "holding %u connections for %.1f s\n", sh.ready.load(), s.hold);
    std::this_thread::sleep_for(std::chrono::milliseconds(static_cast<long>(s.hold * 1000)));
  }
  for (unsigned i = 0; i < clients.size(); ++i)
    asio::post(*loops.io[i % threads], [c = clients[i]] { c->disconnect(); });
  for (unsigned i = 0; i < tls_clients.size(); ++i)
    asio::post(*loops.io[i % threads], [c = tls_clients[i]] { c->disconnect(); });
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  loops.stop();
  Histogram h;
  for (const auto& x : sh.histograms) h.merge(x);
  const double cps = elapsed > 0 ? sh.ready / elapsed : 0;
  const double wall = elapsed > 0 ? elapsed : 1e-9;
  if (s.json) {
    nlohmann::json j{{"scenario", "conn"},
                     {"tls", tls},
                     {"connections", s.connections},
                     {"connected", sh.ready.load()},
                     {"failures", sh.failures},
                     {"connects_per_second", cps},
                     {"latency_us", latency_json(h)},
                     {"duration_s", elapsed},
                     {"bench_cpu_percent", 100 * cpu / wall}};
    std::printf("%s\n", j.dump().c_str());
  } else {
    std::printf("conn: %u of %u connected in %.2f s: %.0f connects/s\n", sh.ready.load(), s.connections, elapsed, cps);
    print_latency(h);
    for (const auto& [why, n] : sh.failures)
      std::printf("  failed: %llu x %s\n", static_cast<unsigned long long>(n), why.c_str());
    std::printf("  bench CPU: %.0f%% of one core\n", 100 * cpu / wall);
  }
  return sh.failed ? 1 : 0;
}

// ---------------------------------------------------- message scenarios --

int run_messages(Settings s) {
  Shared sh;
  sh.s = s;
  sh.version = (s.protocol == "3.1.1" || s.protocol == "311") ? mqtt::Version::V311 : mqtt::Version::V5;
  if (int rc = resolve(sh)) return rc;
  unsigned pubs = s.publishers, subs = s.subscribers;
  if (s.scenario == "pairs") pubs = subs = s.pairs;
  sh.s.publishers = pubs;
  sh.receivers_per_message = s.scenario == "fanout" ? subs : 1;
  const unsigned threads = s.threads ? s.threads : usable_cores();
  sh.histograms.resize(threads);
  Loops loops(threads);
  const std::string base = fmt::format("{}/{}", s.topic, ::getpid());
  auto pub_topic = [&](unsigned i) {
    return s.scenario == "pairs" ? fmt::format("{}/pair/{}", base, i) : fmt::format("{}/pub/{}", base, i);
  };
  auto sub_topic = [&](unsigned i) {
    if (s.scenario == "pairs") return fmt::format("{}/pair/{}", base, i);
    return fmt::format("{}/pub/+", base);
  };
  std::vector<std::shared_ptr<Client>> clients;
  unsigned n = 0;
  for (unsigned i = 0; i < subs; ++i, ++n) {
    auto c =
        std::make_shared<Client>(*loops.io[n % threads], sh, Client::Role::Subscriber, i, n % threads, sub_topic(i));
    clients.push_back(c);
    asio::post(*loops.io[n % threads], [c] { c->start(); });
  }
  if (!wait_for([&] { return sh.ready + sh.failed >= subs; }, 30) || sh.failed) {
    std::fprintf(stderr, "petrel bench: subscribers could not connect/subscribe\n");
    for (const auto& [why, k] : sh.failures)
      std::fprintf(stderr, "  %llu x %s\n", static_cast<unsigned long long>(k), why.c_str());
    return 1;
  }
  for (unsigned i = 0; i < pubs; ++i) sh.pubs.push_back(std::make_unique<PublisherState>());
  std::vector<std::shared_ptr<Client>> publishers;
  for (unsigned i = 0; i < pubs; ++i, ++n) {
    auto& io = *loops.io[n % threads];
    auto c = std::make_shared<Client>(io, sh, Client::Role::Publisher, i, n % threads, pub_topic(i));
    sh.pubs[i]->wake = [&io, w = std::weak_ptr<Client>(c)] {
      asio::post(io, [w] {
        if (auto c = w.lock()) c->resume();
      });
    };
    clients.push_back(c);
    publishers.push_back(c);
    asio::post(io, [c] { c->start(); });
  }
  if (!wait_for([&] { return sh.ready + sh.failed >= subs + pubs; }, 30) || sh.failed) {
    std::fprintf(stderr, "petrel bench: publishers could not connect\n");
    return 1;
  }
  // Connect latencies are not message latencies.
  for (auto& h : sh.histograms) h = Histogram{};
  const double cpu0 = cpu_seconds();
  const auto t0 = Clock::now();
  sh.running = true;
  for (std::size_t i = 0; i < publishers.size(); ++i) {
    asio::post(publishers[i]->executor(), [c = publishers[i]] { c->begin_publishing(); });
  }
  std::uint64_t last = 0;
  const auto end = t0 + std::chrono::milliseconds(static_cast<long>(s.duration * 1000));
  for (int sec = 1; Clock::now() < end; ++sec) {
    std::this_thread::sleep_until(std::min(end, t0 + std::chrono::seconds(sec)));
    const std::uint64_t got = sh.received.load();
    std::uint64_t sent = 0;
    for (auto& p : sh.pubs) sent += p->sent.load();
    if (!s.json)
      std::fprintf(stderr, "\r%4ds  %10llu msgs/s  in flight %6lld  errors %llu   ", sec,
                   static_cast<unsigned long long>(got - last),
                   static_cast<long long>(sent * sh.receivers_per_message - got),
                   static_cast<unsigned long long>(sh.errors.load()));
    last = got;
  }
  sh.stopping = true;
  const auto t1 = Clock::now();
  const std::uint64_t received_in_window = sh.received.load();
  std::uint64_t sent = 0;
  for (auto& p : sh.pubs) sent += p->sent.load();
  const std::uint64_t expected = sent * sh.receivers_per_message;
  wait_for([&] { return sh.received.load() >= expected; }, 3);
  const double cpu = cpu_seconds() - cpu0;
  const double wall = std::chrono::duration<double>(Clock::now() - t0).count();
  if (!s.json) std::fprintf(stderr, "\n");
  for (std::size_t i = 0; i < clients.size(); ++i)
    asio::post(*loops.io[i % threads], [c = clients[i]] { c->disconnect(); });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  loops.stop();
  Histogram h;
  for (const auto& x : sh.histograms) h.merge(x);
  const double elapsed = std::chrono::duration<double>(t1 - t0).count();
  const std::uint64_t received = sh.received.load();
  const std::uint64_t lost = expected > received ? expected - received : 0;
  const double rate = received_in_window / elapsed;
  if (s.json) {
    nlohmann::json j{{"scenario", s.scenario},
                     {"qos", s.qos},
                     {"publishers", pubs},
                     {"subscribers", subs},
                     {"duration_s", elapsed},
                     {"sent", sent},
                     {"received", received},
                     {"expected", expected},
                     {"lost", lost},
                     {"msgs_per_second", rate},
                     {"latency_us", latency_json(h)},
                     {"errors", sh.errors.load()},
                     {"bench_cpu_percent", 100 * cpu / wall},
                     {"bench_threads", threads}};
    std::printf("%s\n", j.dump().c_str());
  } else {
    std::printf("%s QoS %d: %u publishers -> %u subscribers, %.1f s\n", s.scenario.c_str(), s.qos, pubs, subs, elapsed);
    std::printf("  throughput %.0f msgs/s received; sent %llu, received %llu of %llu, lost %llu\n", rate,
                static_cast<unsigned long long>(sent), static_cast<unsigned long long>(received),
                static_cast<unsigned long long>(expected), static_cast<unsigned long long>(lost));
    print_latency(h);
    std::printf("  bench CPU: %.0f%% of one core on %u threads%s\n", 100 * cpu / wall, threads,
                100 * cpu / wall > 90.0 * threads ? " (saturated: these numbers are a floor)" : "");
  }
  return sh.errors ? 1 : 0;
}

void add_common(CLI::App* cmd, Settings& s) {
  cmd->add_option("-H,--host", s.host, "Broker host")->capture_default_str();
  cmd->add_option("-p,--port", s.port, "Broker port")->capture_default_str();
  cmd->add_option("-V,--protocol", s.protocol, "5 or 3.1.1")
      ->check(CLI::IsMember({"5", "3.1.1", "311"}))
      ->capture_default_str();
  cmd->add_option("--threads", s.threads, "Event loops (default: the cores this process may use)");
  cmd->add_flag("--json", s.json, "Print one JSON object instead of the summary");
}

void add_messages(CLI::App* cmd, Settings& s) {
  add_common(cmd, s);
  cmd->add_option("-q,--qos", s.qos, "QoS 0 or 1")->check(CLI::Range(0, 1))->capture_default_str();
  cmd->add_option("-d,--duration", s.duration, "Seconds to publish")->capture_default_str();
  cmd->add_option("-s,--payload", s.payload, "Payload bytes (at least 12)")->capture_default_str();
  cmd->add_option("-r,--rate", s.rate, "Total publish rate in msgs/s (0: as fast as the window allows)");
  cmd->add_option("-w,--inflight", s.inflight, "Messages each publisher keeps in flight end to end")
      ->capture_default_str();
  cmd->add_option("--topic", s.topic, "Topic prefix")->capture_default_str();
}

}  // namespace

void add_command(CLI::App& app, int& exit_code) {
  auto* bench =
      app.add_subcommand("bench", "Load generator: connection rate, fan-in, fan-out, pairs (docs/benchmarks.md)");
  bench->require_subcommand(1);
  auto settings = std::make_shared<Settings>();
  auto* conn = bench->add_subcommand("conn", "Open N connections at a target rate; report connects/s and latency");
  add_common(conn, *settings);
  conn->add_option("-n,--connections", settings->connections, "Connections to open")->capture_default_str();
  conn->add_option("-r,--rate", settings->rate, "Connects per second (0: as fast as possible)");
  conn->add_option("--hold", settings->hold, "Seconds to keep all connections open (idle) before disconnecting");
  conn->add_flag("--tls", settings->tls, "Connect with TLS (implied by --cafile, --cert, --insecure)");
  conn->add_option("--cafile", settings->ca_file, "CA to verify the broker (default: the system's)");
  conn->add_option("--cert", settings->cert_file, "Client certificate (mutual TLS)");
  conn->add_option("--key", settings->key_file, "Client key");
  conn->add_option("--tls-server-name", settings->server_name, "Name to verify (default: the host)");
  conn->add_flag("--insecure", settings->insecure, "Do not verify the broker's certificate");
  conn->callback([settings, &exit_code] { exit_code = run_conn(*settings); });

  // The message scenarios differ only in the count they take.
  auto scenario = [&](const char* name, const char* help, const char* flag, unsigned& count, const char* what) {
    auto* cmd = bench->add_subcommand(name, help);
    add_messages(cmd, *settings);
    cmd->add_option(flag, count, what)->capture_default_str();
    cmd->callback([settings, &exit_code, name] {
      settings->scenario = name;
      if (settings->scenario == "fanin") settings->subscribers = 1;
      if (settings->scenario == "fanout") settings->publishers = 1;
      exit_code = run_messages(*settings);
    });
  };
  scenario("fanin", "Many publishers, one subscriber", "--publishers", settings->publishers, "Publishers");
  scenario("fanout", "One publisher, many subscribers", "--subscribers", settings->subscribers, "Subscribers");
  scenario("pairs", "Publisher-subscriber pairs, each on its own topic", "--pairs", settings->pairs, "Pairs");
}

}  // namespace petrel::bench
