// net::Connection: one client's network connection. It owns the socket, the
// write queue and the connection's timer, and feeds received bytes to its
// broker::Client. Everything here runs on the connection's own event loop;
// the only entry points from other threads are wake() and kick(), which post.
//
// Reading: the connection waits for readability and then reads into a
// per-thread buffer, so an idle connection holds no read buffer at all. A
// busy one reads at most kReadBudget bytes per turn of the loop, so one fast
// sender cannot starve the other connections of its loop.
//
// Writing: packets are queued as chunks, either copies (small acks) or slices
// of shared, immutable buffers (PUBLISH encoded once for many subscribers),
// and written with one gather write per batch. A peer that does not read
// what it provokes (acks, pings) stops being read once 4 MiB are queued.
//
// Errors: every failure here (reset, EOF, protocol error, timeout) belongs to
// this connection alone; it closes the socket, tells its Client, and is gone.
#pragma once

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <memory>
#include <string>
#include <vector>

#include "broker/broker.hpp"
#include "broker/client.hpp"
#include "broker/transport.hpp"

namespace petrel::net {

class Connection final : public broker::Transport, public std::enable_shared_from_this<Connection> {
 public:
  Connection(boost::asio::ip::tcp::socket socket, broker::Broker& broker);
  ~Connection() override;

  void start();

  // broker::Transport
  void send(std::string_view bytes) override;
  void send_shared(const std::shared_ptr<const std::string>& buf, std::size_t offset, std::size_t length) override;
  std::size_t pending_bytes() const override { return queued_bytes_ + writing_bytes_; }
  void close() override;
  const std::string& peer() const override { return peer_; }
  std::shared_ptr<broker::Transport> shared_transport() override { return shared_from_this(); }
  void wake() override;
  void kick(mqtt::ReasonCode reason) override;

 private:
  struct Chunk {
    std::shared_ptr<const std::string> shared;  // null: the bytes are in the owned buffer
    std::size_t offset;
    std::size_t length;
  };

  void wait_readable();
  void on_readable();
  void start_write();
  void on_written(const boost::system::error_code& ec, std::size_t n);
  void arm_timer();
  void on_timer();
  void shutdown(std::string_view why);
  // Runs `fn` as one dispatch: writes are started once afterwards.
  template <class F>
  void dispatch(F&& fn);

  boost::asio::ip::tcp::socket socket_;
  boost::asio::steady_timer timer_;
  broker::Broker& broker_;
  broker::Client client_;
  std::string peer_;

  std::vector<Chunk> queued_;
  std::string queued_owned_;
  std::size_t queued_bytes_ = 0;
  std::vector<Chunk> writing_;
  std::string writing_owned_;
  std::size_t writing_bytes_ = 0;
  std::vector<boost::asio::const_buffer> buffers_;

  broker::Clock::time_point deadline_;
  bool writing_now_ = false;
  bool in_dispatch_ = false;
  bool close_requested_ = false;
  bool read_paused_ = false;
  bool closed_ = false;
};

}  // namespace petrel::net
