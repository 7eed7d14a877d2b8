#include "bench/client.hpp"

#include <fmt/format.h>
#include <sched.h>
#include <sys/resource.h>
#include <unistd.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>
#include <cstdio>
#include <cstring>
#include <random>

#include "mqtt/wire.hpp"

namespace petrel::bench {

std::uint64_t now_ns() {
  return static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch()).count());
}

std::uint32_t new_run_id() {
  std::random_device rd;
  return rd() ^ static_cast<std::uint32_t>(::getpid());
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
                        if (ec)
                          return self->fail(fmt::format("cannot connect to {}:{}: {}", self->shared_.s.host,
                                                        self->shared_.s.effective_port(), ec.message()));
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
  c.keep_alive = keep_alive_;
  c.username = shared_.s.username;
  c.password = shared_.s.password;
  if (const auto expiry = shared_.s.session_expiry) {
    c.clean_start = false;
    if (c.version == mqtt::Version::V5) c.properties.session_expiry_interval = expiry;
  }
  queue(mqtt::encode(c, c.version));
  read();
}

void Client::begin_publishing() {
  if (role_ != Role::Publisher) return;
  const double rate = shared_.rate_per_publisher;
  if (rate > 0) {
    // A tick every 1/rate seconds (at least 1 ms) brings that many messages'
    // worth of tokens. Publishers start at offsets spread over one interval,
    // so that slow rates do not send every publisher's message at once.
    const double interval = std::max(0.001, 1.0 / rate);
    interval_ = std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(interval));
    per_tick_ = rate * interval;
    const auto n = std::max<std::size_t>(1, shared_.pubs.size());
    next_tick_ = Clock::now() + interval_ * static_cast<long>(index_ % n) / static_cast<long>(n);
    schedule_tick();
  }
  pump();
}

void Client::disconnect() {
  if (!lowest().is_open()) return mark_closed();
  timer_.cancel();
  closing_ = true;
  queue(mqtt::encode(mqtt::Disconnect{}, shared_.version));
}

void Client::fail(const std::string& why, int code) {
  if (done_) return;
  done_ = true;
  shared_.fail(why, code);
  boost::system::error_code ignored;
  lowest().close(ignored);
  timer_.cancel();
  mark_closed();
}

void Client::mark_closed() {
  if (closed_) return;
  closed_ = true;
  shared_.closed.fetch_add(1);
  // A publisher whose connection is gone will not get further: a run
  // waiting for every count must not wait for it.
  if (role_ == Role::Publisher && !finished_) {
    finished_ = true;
    shared_.finished.fetch_add(1);
  }
}

void Client::read() {
  auto on_read = [self = shared_from_this()](const boost::system::error_code& ec, std::size_t n) {
    if (ec) {
      if (!self->connected_ && !self->done_) return self->fail(ec.message());
      if (self->connected_ && !self->closing_ && !self->done_ && !self->broker_disconnected_ && !self->shared_.stopping)
        self->shared_.error(ec == asio::error::eof ? "connection closed by the broker" : ec.message());
      self->timer_.cancel();
      return self->mark_closed();
    }
    try {
      self->reader_.borrow(std::string_view(self->buffer_.data(), n));
      while (auto f = self->reader_.next()) self->handle(*f);
      self->reader_.keep_rest();  // the next read reuses buffer_
    } catch (const mqtt::ProtocolError& e) {
      self->shared_.errors.fetch_add(1);
      return self->fail(e.what());
    }
    if (self->done_) return;
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
  if (done_) return;
  switch (f.type()) {
    case mqtt::PacketType::Connack: on_connack(f); break;
    case mqtt::PacketType::Suback: on_suback(f); break;
    case mqtt::PacketType::Publish: on_publish(f); break;
    case mqtt::PacketType::Puback:
    case mqtt::PacketType::Pubrec:
    case mqtt::PacketType::Pubcomp: on_ack(f); break;
    case mqtt::PacketType::Pubrel:  // QoS 2, receiving side: release, complete
      if (f.body.size() >= 2)
        append_ack(0x70, static_cast<std::uint16_t>((static_cast<std::uint8_t>(f.body[0]) << 8) |
                                                    static_cast<std::uint8_t>(f.body[1])));
      break;
    case mqtt::PacketType::Disconnect: {
      const auto d = std::get<mqtt::Disconnect>(mqtt::decode(f, shared_.version));
      broker_disconnected_ = true;
      if (!closing_ && !shared_.stopping)
        shared_.error(fmt::format("the broker disconnected: {} (0x{:02X})", mqtt::to_string(d.reason),
                                  static_cast<unsigned>(d.reason)));
      break;
    }
    default: break;
  }
}

void Client::on_connack(const mqtt::Frame& f) {
  const auto ack = std::get<mqtt::Connack>(mqtt::decode(f, shared_.version));
  if (ack.reason != mqtt::ReasonCode::Success)
    return fail(fmt::format("broker refused the connection: {} (0x{:02X})", mqtt::to_string(ack.reason),
                            static_cast<unsigned>(ack.reason)),
                4);
  if (connected_) return;
  connected_ = true;
  // bench conn's latency is connect to CONNACK; the message commands' is
  // end to end, recorded as messages arrive (maybe before the run starts).
  if (role_ == Role::Idle)
    shared_.histograms[thread_].record(static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - started_).count()));
  const auto& props = ack.properties;
  if (props.server_keep_alive) keep_alive_ = *props.server_keep_alive;
  if (props.maximum_packet_size) max_packet_ = *props.maximum_packet_size;
  // The broker's Receive Maximum bounds this client's unacknowledged QoS 1
  // and 2 publishes (MQTT 5 section 4.9); within it, the window.
  const unsigned receive_max = props.receive_maximum.value_or(65535);
  ack_window_ = std::min(receive_max, shared_.end_to_end ? 30000u : std::max(1u, shared_.s.inflight));
  switch (role_) {
    case Role::Subscriber: {
      mqtt::Subscribe s;
      s.packet_id = 1;
      s.subscriptions.push_back({topic_, {static_cast<std::uint8_t>(shared_.s.qos), false, false, 0}});
      queue(mqtt::encode(s, shared_.version));
      break;
    }
    case Role::Publisher:
      if (props.maximum_qos && *props.maximum_qos < shared_.s.qos)
        return fail(fmt::format("the broker accepts QoS {} at most", *props.maximum_qos));
      prepare_template();
      if (max_packet_ && template_.size() > max_packet_)
        return fail(fmt::format("a PUBLISH of {} bytes exceeds the broker's maximum packet size ({} bytes)",
                                template_.size(), max_packet_));
      shared_.ready.fetch_add(1);
      break;
    case Role::Idle: shared_.ready.fetch_add(1); break;
  }
}

void Client::on_suback(const mqtt::Frame& f) {
  const auto ack = std::get<mqtt::Suback>(mqtt::decode(f, shared_.version));
  for (const auto rc : ack.reasons) {
    if (static_cast<unsigned>(rc) < 0x80) continue;
    return fail(
        fmt::format("subscription to '{}' refused: {} (0x{:02X})", topic_,
                    shared_.version == mqtt::Version::V5 ? mqtt::to_string(rc) : "failure", static_cast<unsigned>(rc)),
        5);
  }
  shared_.ready.fetch_add(1);
  schedule_ping();
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
  const std::uint64_t now = now_ns();
  if (first_rx_ns_ == 0) first_rx_ns_ = now;
  last_rx_ns_ = now;
  Stamp st;
  if (read_stamp(payload, st)) {
    shared_.histograms[thread_].record(now > st.sent_ns ? (now - st.sent_ns) / 1000 : 0);
    if (shared_.end_to_end && st.run == shared_.run_id && st.publisher < shared_.pubs.size()) {
      auto& ps = *shared_.pubs[st.publisher];
      ps.received.fetch_add(1, std::memory_order_relaxed);
      if (ps.waiting.load(std::memory_order_relaxed) && ps.waiting.exchange(false)) ps.wake();
    }
    if (shared_.track_sequences) {
      auto add = [this](const auto& d) {
        if (d.lost) shared_.lost.fetch_add(d.lost, std::memory_order_relaxed);
        if (d.duplicates) shared_.duplicates.fetch_add(d.duplicates, std::memory_order_relaxed);
        if (d.out_of_order) shared_.out_of_order.fetch_add(d.out_of_order, std::memory_order_relaxed);
      };
      if (shared_.group_tracking) {
        std::lock_guard lock(shared_.group_mutex);
        add(shared_.group.record(st.run, st.publisher, st.sequence));
      } else {
        add(tracker_.record(st.run, st.publisher, st.sequence));
      }
    }
  } else {
    shared_.foreign.fetch_add(1, std::memory_order_relaxed);
  }
  const std::uint64_t n = shared_.received.fetch_add(1, std::memory_order_relaxed) + 1;
  if (shared_.stop_after && n >= shared_.stop_after) shared_.count_reached.store(true);
  if (qos == 1) append_ack(0x40, id);  // PUBACK
  if (qos == 2) append_ack(0x50, id);  // PUBREC
}

// PUBACK, PUBREC, PUBCOMP for this client's publishes. The reason code (MQTT
// 5) is the byte after the packet identifier; absent means success.
void Client::on_ack(const mqtt::Frame& f) {
  if (role_ != Role::Publisher || f.body.size() < 2) return;
  const auto id =
      static_cast<std::uint16_t>((static_cast<std::uint8_t>(f.body[0]) << 8) | static_cast<std::uint8_t>(f.body[1]));
  const unsigned reason = f.body.size() >= 3 ? static_cast<std::uint8_t>(f.body[2]) : 0;
  auto& ps = *shared_.pubs[index_];
  if (reason >= 0x80) {  // refused: the exchange ends here
    if (acks_pending_ > 0) --acks_pending_;
    ps.refused.fetch_add(1, std::memory_order_relaxed);
    shared_.error(
        fmt::format("publish refused: {} (0x{:02X})", mqtt::to_string(static_cast<mqtt::ReasonCode>(reason)), reason));
  } else if (f.type() == mqtt::PacketType::Pubrec) {
    append_ack(0x62, id);  // PUBREL; PUBCOMP ends it
    return;
  } else {
    if (acks_pending_ > 0) --acks_pending_;
    ps.acked.fetch_add(1, std::memory_order_relaxed);
  }
  pump();
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
  write_stamp_constants(template_.data() + payload_offset_, index_, shared_.run_id);
}

void Client::schedule_tick() {
  timer_.expires_at(next_tick_);
  timer_.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
    if (!ec) self->tick();
  });
}

void Client::tick() {
  if (shared_.stopping || done_) return;
  tokens_ = std::min(tokens_ + per_tick_, std::max(2.0, per_tick_ * 2));
  pump();
  // Absolute deadlines: the rate does not drift with the timer's lateness.
  next_tick_ += interval_;
  schedule_tick();
}

// Subscribers may only receive: a PINGREQ at half the keep alive keeps the
// broker from taking them for dead.
void Client::schedule_ping() {
  if (keep_alive_ == 0) return;
  timer_.expires_after(std::chrono::seconds(std::max(1, keep_alive_ / 2)));
  timer_.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
    if (ec || self->done_ || self->closing_) return;
    self->queue(std::string("\xC0\x00", 2));
    self->schedule_ping();
  });
}

void Client::pump() {
  if (role_ != Role::Publisher || !shared_.running || done_) return;
  auto& ps = *shared_.pubs[index_];
  const std::uint64_t limit = shared_.messages_per_publisher;
  const unsigned window = shared_.s.inflight;
  const bool acked = shared_.s.qos > 0;
  while (!shared_.stopping && out_.size() < kBatch && !(limit && seq_ >= limit)) {
    if (shared_.end_to_end) {
      const std::uint64_t sent = seq_;
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
    }
    if (acked && acks_pending_ >= ack_window_) break;
    if (per_tick_ > 0) {
      if (tokens_ < 1) break;
      tokens_ -= 1;
    }
    const std::size_t at = out_.size();
    out_.append(template_);
    if (acked) {
      next_id_ = static_cast<std::uint16_t>(next_id_ == 65535 ? 1 : next_id_ + 1);
      out_[at + id_offset_] = static_cast<char>(next_id_ >> 8);
      out_[at + id_offset_ + 1] = static_cast<char>(next_id_ & 0xFF);
      ++acks_pending_;
    }
    write_stamp(out_.data() + at + payload_offset_, now_ns(), static_cast<std::uint32_t>(seq_));
    ++seq_;
    ps.sent.fetch_add(1, std::memory_order_relaxed);
  }
  flush();
  check_finished();
}

// A publisher with a count is finished when it has sent it, written it and
// had all of it acknowledged.
void Client::check_finished() {
  const std::uint64_t limit = shared_.messages_per_publisher;
  if (finished_ || role_ != Role::Publisher || limit == 0 || seq_ < limit) return;
  if (acks_pending_ > 0 || writing_ || !out_.empty()) return;
  finished_ = true;
  shared_.finished.fetch_add(1);
}

void Client::queue(const std::string& bytes) {
  out_ += bytes;
  flush();
}

void Client::append_ack(std::uint8_t first_byte, std::uint16_t id) {
  const char ack[4] = {static_cast<char>(first_byte), 0x02, static_cast<char>(id >> 8), static_cast<char>(id & 0xFF)};
  out_.append(ack, 4);
}

void Client::flush() {
  if (writing_ || out_.empty() || !lowest().is_open()) return;
  writing_ = true;
  std::swap(out_, wbuf_);
  auto on_written = [self = shared_from_this()](const boost::system::error_code& ec, std::size_t) {
    self->writing_ = false;
    self->wbuf_.clear();
    if (ec) {
      if (!self->closing_ && !self->done_ && !self->shared_.stopping) self->shared_.error(ec.message());
      return self->mark_closed();
    }
    if (self->closing_ && self->out_.empty()) {
      boost::system::error_code ignored;
      self->lowest().shutdown(tcp::socket::shutdown_both, ignored);
      self->lowest().close(ignored);
      return self->mark_closed();
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

void quiesce(Loops& loops) {
  auto passed = std::make_shared<std::atomic<std::size_t>>(0);
  for (auto& io : loops.io) asio::post(*io, [passed] { passed->fetch_add(1); });
  wait_for([&] { return passed->load() == loops.io.size(); }, 10);
}

namespace {
std::atomic<bool> g_interrupted{false};
extern "C" void on_interrupt(int) {
  g_interrupted.store(true);
}
}  // namespace

InterruptGuard::InterruptGuard() {
  g_interrupted = false;
  struct sigaction sa {};
  sa.sa_handler = on_interrupt;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, &old_int_);
  sigaction(SIGTERM, &sa, &old_term_);
}

InterruptGuard::~InterruptGuard() {
  sigaction(SIGINT, &old_int_, nullptr);
  sigaction(SIGTERM, &old_term_, nullptr);
}

bool InterruptGuard::interrupted() {
  return g_interrupted.load();
}

void run_seconds(Clock::time_point t0, std::optional<Clock::time_point> end, const std::function<bool()>& done,
                 const std::function<void(int)>& each_second) {
  int second = 1;
  while (!done() && !InterruptGuard::interrupted()) {
    const auto now = Clock::now();
    if (end && now >= *end) break;
    if (now >= t0 + std::chrono::seconds(second)) each_second(second++);
    auto wake = std::min(t0 + std::chrono::seconds(second), now + std::chrono::milliseconds(5));
    if (end) wake = std::min(wake, *end);
    std::this_thread::sleep_until(wake);
  }
}

void print_progress(int second, std::uint64_t msgs, const char* label, long long value, std::uint64_t errors) {
  std::fprintf(stderr, "\r%4ds  %10llu msgs/s  %s %6lld  errors %llu   ", second, static_cast<unsigned long long>(msgs),
               label, value, static_cast<unsigned long long>(errors));
}

CpuUse cpu_use(double cpu_seconds, double wall_seconds, unsigned threads) {
  CpuUse u;
  u.percent = wall_seconds > 0 ? 100 * cpu_seconds / wall_seconds : 0;
  u.threads = threads;
  u.saturated = u.percent > 90.0 * std::min(threads, usable_cores());
  return u;
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
  sh.endpoints = resolver.resolve(sh.s.host, std::to_string(sh.s.effective_port()), ec);
  if (ec) {
    std::fprintf(stderr, "petrel bench: cannot resolve host '%s': %s\n", sh.s.host.c_str(), ec.message().c_str());
    return 1;
  }
  return 0;
}

}  // namespace petrel::bench
