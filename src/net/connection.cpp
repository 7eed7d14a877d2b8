#include "net/connection.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <array>
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>

namespace petrel::net {

namespace asio = boost::asio;
using broker::Clock;

namespace {

// Bytes one connection may read per turn of its event loop before it yields
// to the other connections of the loop.
constexpr std::size_t kReadBudget = 256 * 1024;
// Bytes queued for writing above which the connection stops reading.
constexpr std::size_t kReadPauseBytes = 4 << 20;
// How long a connection may take to write out its last bytes once closing.
constexpr auto kCloseGrace = std::chrono::seconds(5);

thread_local std::array<char, 64 * 1024> read_buffer;

std::string format_peer(const asio::ip::tcp::socket& s) {
  boost::system::error_code ec;
  auto ep = s.remote_endpoint(ec);
  if (ec) return "unknown";
  if (ep.address().is_v6()) return fmt::format("[{}]:{}", ep.address().to_string(), ep.port());
  return fmt::format("{}:{}", ep.address().to_string(), ep.port());
}

}  // namespace

Connection::Connection(asio::ip::tcp::socket socket, broker::Broker& broker)
    : socket_(std::move(socket)),
      timer_(socket_.get_executor()),
      broker_(broker),
      client_(broker, *this),
      peer_(format_peer(socket_)) {
  boost::system::error_code ec;
  socket_.non_blocking(true, ec);
  socket_.set_option(asio::ip::tcp::no_delay(true), ec);
}

Connection::~Connection() = default;

void Connection::start() {
  broker::Stats::add(broker_.stats().connections_accepted);
  deadline_ = Clock::now() + broker_.config().connect_timeout;
  arm_timer();
  wait_readable();
}

template <class F>
void Connection::dispatch(F&& fn) {
  const bool outer = !in_dispatch_;
  in_dispatch_ = true;
  fn();
  if (outer) {
    in_dispatch_ = false;
    start_write();
  }
}

// --------------------------------------------------------------- reading --

void Connection::wait_readable() {
  socket_.async_wait(asio::ip::tcp::socket::wait_read,
                     [self = shared_from_this()](const boost::system::error_code& ec) {
                       if (ec) {
                         if (ec != asio::error::operation_aborted) self->shutdown(ec.message());
                         return;
                       }
                       self->on_readable();
                     });
}

void Connection::on_readable() {
  if (closed_ || close_requested_) return;
  const bool was_connected = client_.connected();
  std::size_t total = 0;
  bool lost = false;
  dispatch([&] {
    while (total < kReadBudget && !client_.closing()) {
      boost::system::error_code ec;
      const std::size_t n = socket_.read_some(asio::buffer(read_buffer), ec);
      if (ec == asio::error::would_block || ec == asio::error::try_again) break;
      if (ec) {
        client_.on_closed(ec == asio::error::eof ? std::string("connection closed by peer") : ec.message());
        lost = true;
        return;
      }
      total += n;
      broker::Stats::add(broker_.stats().bytes_received, n);
      client_.on_bytes(std::string_view(read_buffer.data(), n));
    }
  });
  if (lost) {
    shutdown("connection lost");
    return;
  }
  if (closed_ || close_requested_) return;
  if (client_.connected()) {
    const auto ka = client_.keep_alive();
    deadline_ = ka ? Clock::now() + std::chrono::milliseconds(ka * 1500) : Clock::time_point::max();
    if (!was_connected) arm_timer();
  }
  if (pending_bytes() > kReadPauseBytes) {
    // The peer is not reading what it provokes (acks, pings): stop reading
    // until the writes drain, instead of buffering without bound.
    read_paused_ = true;
  } else if (total >= kReadBudget) {
    asio::post(socket_.get_executor(), [self = shared_from_this()] { self->on_readable(); });
  } else {
    wait_readable();
  }
}

// --------------------------------------------------------------- writing --

void Connection::send(std::string_view bytes) {
  if (closed_ || bytes.empty()) return;
  if (!queued_.empty() && !queued_.back().shared &&
      queued_.back().offset + queued_.back().length == queued_owned_.size()) {
    queued_.back().length += bytes.size();
  } else {
    queued_.push_back(Chunk{nullptr, queued_owned_.size(), bytes.size()});
  }
  queued_owned_.append(bytes);
  queued_bytes_ += bytes.size();
  if (!in_dispatch_) start_write();
}

void Connection::send_shared(const std::shared_ptr<const std::string>& buf, std::size_t offset, std::size_t length) {
  if (closed_ || length == 0) return;
  queued_.push_back(Chunk{buf, offset, length});
  queued_bytes_ += length;
  if (!in_dispatch_) start_write();
}

void Connection::start_write() {
  if (closed_ || writing_now_) return;
  if (queued_.empty()) {
    if (close_requested_) shutdown("closed by broker");
    return;
  }
  std::swap(queued_, writing_);
  std::swap(queued_owned_, writing_owned_);
  writing_bytes_ = queued_bytes_;
  queued_bytes_ = 0;
  buffers_.clear();
  for (const auto& c : writing_) {
    const char* base = c.shared ? c.shared->data() : writing_owned_.data();
    buffers_.emplace_back(base + c.offset, c.length);
  }
  writing_now_ = true;
  asio::async_write(socket_, buffers_, [self = shared_from_this()](const boost::system::error_code& ec, std::size_t n) {
    self->on_written(ec, n);
  });
}

void Connection::on_written(const boost::system::error_code& ec, std::size_t n) {
  writing_now_ = false;
  broker::Stats::add(broker_.stats().bytes_sent, n);
  writing_.clear();
  writing_owned_.clear();
  writing_bytes_ = 0;
  if (ec) {
    if (ec != asio::error::operation_aborted) shutdown(fmt::format("write failed: {}", ec.message()));
    return;
  }
  if (closed_) return;
  dispatch([&] { client_.flush(); });
  if (read_paused_ && !close_requested_ && pending_bytes() < kReadPauseBytes / 2) {
    read_paused_ = false;
    wait_readable();
  }
}

// --------------------------------------------------- cross-thread entries --

void Connection::wake() {
  asio::post(socket_.get_executor(), [self = shared_from_this()] {
    if (!self->closed_) self->dispatch([&] { self->client_.flush(); });
  });
}

void Connection::kick(mqtt::ReasonCode reason) {
  asio::post(socket_.get_executor(), [self = shared_from_this(), reason] {
    if (!self->closed_) self->dispatch([&] { self->client_.kick(reason); });
  });
}

// ------------------------------------------------------- timers, closing --

void Connection::arm_timer() {
  timer_.expires_at(deadline_);
  timer_.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
    if (!ec) self->on_timer();
  });
}

void Connection::on_timer() {
  if (closed_) return;
  if (Clock::now() < deadline_) {
    arm_timer();
    return;
  }
  if (close_requested_) {
    shutdown("peer did not read the last bytes in time");
    return;
  }
  dispatch([&] { client_.on_timeout(); });
}

void Connection::close() {
  if (closed_ || close_requested_) return;
  close_requested_ = true;
  deadline_ = Clock::now() + kCloseGrace;
  arm_timer();
  if (!in_dispatch_) start_write();
}

void Connection::shutdown(std::string_view why) {
  if (closed_) return;
  closed_ = true;
  client_.on_closed(why);
  boost::system::error_code ec;
  timer_.cancel();
  socket_.shutdown(asio::ip::tcp::socket::shutdown_both, ec);
  socket_.close(ec);
  queued_.clear();
  queued_owned_.clear();
  queued_bytes_ = 0;
}

}  // namespace petrel::net
