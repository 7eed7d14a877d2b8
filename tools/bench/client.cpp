#include "bench/client.hpp"

#include <fmt/format.h>
#include <sched.h>
#include <sys/resource.h>
#include <unistd.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/write.hpp>
#include <cstdio>
#include <cstring>

#include "mqtt/wire.hpp"

namespace petrel::bench {

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

// ---------------------------------------------------------------- Client --

Client::Client(asio::io_context& io, Shared& shared, Role role, unsigned index, unsigned thread, std::string client_id,
               std::string topic)
    : timer_(io),
      shared_(shared),
      role_(role),
      index_(index),
      thread_(thread),
      client_id_(std::move(client_id)),
      topic_(std::move(topic)),
      buffer_(role == Role::Idle ? 1024 : 64 * 1024) {
  if (shared_.tls) {
    tls_.emplace(io, *shared_.tls);
  } else {
    plain_.emplace(io);
  }
}

void Client::start() {
  started_ = Clock::now();
  asio::async_connect(lowest(), shared_.endpoints,
                      [self = shared_from_this()](const boost::system::error_code& ec, const tcp::endpoint&) {
                        if (ec) return self->fail(ec.message());
                        boost::system::error_code ignored;
                        self->lowest().set_option(tcp::no_delay(true), ignored);
                        if (!self->tls_) return self->on_transport_ready();
                        const std::string& host =
                            self->shared_.s.server_name.empty() ? self->shared_.s.host : self->shared_.s.server_name;
                        SSL_set_tlsext_host_name(self->tls_->native_handle(), host.c_str());
                        if (!self->shared_.s.insecure)
                          self->tls_->set_verify_callback(asio::ssl::host_name_verification(host));
                        self->tls_->async_handshake(asio::ssl::stream_base::client,
                                                    [self](const boost::system::error_code& e) {
                                                      if (e) return self->fail("TLS: " + e.message());
                                                      self->on_transport_ready();
                                                    });
                      });
}

void Client::on_transport_ready() {
  mqtt::Connect c;
  c.version = shared_.version;
  c.client_id = client_id_;
  c.keep_alive = 300;
  queue(mqtt::encode(c, c.version));
  read();
}

void Client::begin_publishing() {
  if (role_ != Role::Publisher) return;
  if (shared_.s.rate > 0) {
    per_tick_ = shared_.s.rate / shared_.s.publishers / 1000.0;  // 1 ms ticks
    next_tick_ = Clock::now();
    tick();
  }
  pump();
}

void Client::disconnect() {
  if (!lowest().is_open()) return;
  queue(mqtt::encode(mqtt::Disconnect{}, shared_.version));
  closing_ = true;
}

void Client::fail(const std::string& why) {
  if (done_) return;
  done_ = true;
  shared_.fail(why);
  boost::system::error_code ignored;
  lowest().close(ignored);
}

void Client::read() {
  auto on_read = [self = shared_from_this()](const boost::system::error_code& ec, std::size_t n) {
    if (ec) {
      if (!self->connected_ && !self->done_) self->fail(ec.message());
      if (self->connected_ && !self->closing_ && !self->shared_.stopping) self->shared_.errors.fetch_add(1);
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
  };
  if (tls_) {
    tls_->async_read_some(asio::buffer(buffer_), std::move(on_read));
  } else {
    plain_->async_read_some(asio::buffer(buffer_), std::move(on_read));
  }
}

void Client::handle(const mqtt::Frame& f) {
  switch (f.type()) {
    case mqtt::PacketType::Connack: {
      const auto ack = std::get<mqtt::Connack>(mqtt::decode(f, shared_.version));
      if (ack.reason != mqtt::ReasonCode::Success) return fail(fmt::format("CONNACK {}", mqtt::to_string(ack.reason)));
      if (connected_) break;
      connected_ = true;
      shared_.histograms[thread_].record(static_cast<std::uint64_t>(
          std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - started_).count()));
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

void Client::on_publish(const mqtt::Frame& f) {
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

void Client::prepare_template() {
  mqtt::Publish p;
  p.topic = topic_;
  p.qos = static_cast<std::uint8_t>(shared_.s.qos);
  p.packet_id = 1;
  p.payload.assign(std::max(shared_.s.payload, kStamp), 'x');
  template_.clear();
  id_offset_ = mqtt::encode_publish(p, shared_.version, template_);
  payload_offset_ = template_.size() - p.payload.size();
}

void Client::tick() {
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

void Client::pump() {
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

void Client::queue(const std::string& bytes) {
  out_ += bytes;
  flush();
}

void Client::flush() {
  if (writing_ || out_.empty() || !lowest().is_open()) return;
  writing_ = true;
  std::swap(out_, wbuf_);
  auto on_written = [self = shared_from_this()](const boost::system::error_code& ec, std::size_t) {
    self->writing_ = false;
    self->wbuf_.clear();
    if (ec) {
      if (!self->closing_ && !self->shared_.stopping) self->shared_.errors.fetch_add(1);
      return;
    }
    if (self->closing_ && self->out_.empty()) {
      boost::system::error_code ignored;
      self->lowest().shutdown(tcp::socket::shutdown_both, ignored);
      self->lowest().close(ignored);
      return;
    }
    self->flush();
    self->pump();
  };
  if (tls_) {
    asio::async_write(*tls_, asio::buffer(wbuf_), std::move(on_written));
  } else {
    asio::async_write(*plain_, asio::buffer(wbuf_), std::move(on_written));
  }
}

// --------------------------------------------------------------- helpers --

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

Loops::Loops(unsigned n) {
  for (unsigned i = 0; i < n; ++i) {
    io.push_back(std::make_unique<asio::io_context>(1));
    guards.push_back(asio::make_work_guard(*io.back()));
  }
  for (auto& ctx : io) threads.emplace_back([c = ctx.get()] { c->run(); });
}

void Loops::stop() {
  guards.clear();
  for (auto& ctx : io) ctx->stop();
  for (auto& t : threads) t.join();
  threads.clear();
}

Loops::~Loops() {
  if (!threads.empty()) stop();
}

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
  sh.version = sh.s.version();
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

}  // namespace petrel::bench
