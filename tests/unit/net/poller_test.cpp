// The per-loop epoll set and its sockets (net/poller.hpp), over socketpairs.
#include "net/poller.hpp"

#include <gtest/gtest.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace petrel::net {
namespace {

// One end of a socketpair as a PolledSocket; the other end stays a plain descriptor.
struct Pair {
  explicit Pair(boost::asio::io_context& loop) {
    int fds[2];
    EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fds), 0);
    Socket s(loop);
    s.assign(boost::asio::ip::tcp::v4(), fds[0]);
    polled.emplace(std::move(s));
    peer = fds[1];
  }
  ~Pair() { ::close(peer); }
  std::optional<PolledSocket> polled;
  int peer = -1;
};

struct Resident final : LoopResident, std::enable_shared_from_this<Resident> {
  explicit Resident(boost::asio::io_context& loop) : pair(loop) {}
  void run_batched() override {}
  void on_deadline() override {}
  void on_ready(std::uint32_t events) override {
    ++ready_calls;
    if (!pair.polled->is_open()) return;  // closed earlier in the batch (as Connection checks closed_)
    pair.polled->note(events);
    if (on_ready_hook) on_ready_hook();
  }
  std::shared_ptr<LoopResident> self() override { return shared_from_this(); }
  Pair pair;
  int ready_calls = 0;
  std::function<void()> on_ready_hook;
};

std::string drain(int fd) {
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof buf)) > 0) out.append(buf, static_cast<std::size_t>(n));
  return out;
}

TEST(PolledSocket, GatherWriteStopsWhereTheSocketIsFullAndGoesOnFromThere) {
  boost::asio::io_context loop;
  Pair p(loop);
  const int small = 4096;
  ASSERT_EQ(::setsockopt(p.polled->native_handle(), SOL_SOCKET, SO_SNDBUF, &small, sizeof small), 0);
  // 300 buffers of different sizes and contents: more than the socket takes at once.
  std::vector<std::string> parts;
  std::string expected;
  for (int i = 0; i < 300; ++i) {
    parts.emplace_back(static_cast<std::size_t>(100 + i * 7), static_cast<char>('a' + i % 26));
    expected += parts.back();
  }
  std::vector<boost::asio::const_buffer> buffers;
  for (const auto& s : parts) buffers.emplace_back(s.data(), s.size());

  PolledSocket::WriteCursor at;
  std::string received;
  std::size_t written = 0;
  int blocked = 0;
  while (at.index < buffers.size()) {
    boost::system::error_code ec;
    written += p.polled->write_some(buffers, at, ec);
    if (ec) {
      ASSERT_EQ(ec, boost::asio::error::would_block);
      EXPECT_FALSE(p.polled->writable());
      ++blocked;
    }
    received += drain(p.peer);
  }
  received += drain(p.peer);
  EXPECT_GT(blocked, 0);  // the test covered a partial write
  EXPECT_EQ(written, expected.size());
  EXPECT_EQ(received, expected);
}

TEST(PolledSocket, ReadSaysWouldBlockWhenDryAndEofWhenThePeerCloses) {
  boost::asio::io_context loop;
  Pair p(loop);
  char buf[16];
  boost::system::error_code ec;
  p.polled->note(EPOLLIN);
  EXPECT_EQ(p.polled->read_some(boost::asio::buffer(buf), ec), 0u);
  EXPECT_EQ(ec, boost::asio::error::would_block);
  EXPECT_FALSE(p.polled->readable());
  ASSERT_EQ(::write(p.peer, "hello", 5), 5);
  ec = {};
  EXPECT_EQ(p.polled->read_some(boost::asio::buffer(buf), ec), 5u);
  EXPECT_FALSE(ec);
  ::shutdown(p.peer, SHUT_WR);
  p.polled->read_some(boost::asio::buffer(buf), ec);
  EXPECT_EQ(ec, boost::asio::error::eof);
}

TEST(Poller, TellsARegisteredSocketWhenItBecomesReadable) {
  boost::asio::io_context loop;
  auto r = std::make_shared<Resident>(loop);
  boost::system::error_code ec;
  r->pair.polled->start_polling(*r, ec);
  ASSERT_FALSE(ec);
  loop.poll();  // the registration reports the socket writable
  EXPECT_TRUE(r->pair.polled->writable());
  EXPECT_FALSE(r->pair.polled->readable());
  r->on_ready_hook = [&] { loop.stop(); };
  ASSERT_EQ(::write(r->pair.peer, "x", 1), 1);
  loop.restart();
  loop.run_for(std::chrono::seconds(5));
  EXPECT_TRUE(r->pair.polled->readable());
  r->pair.polled->close(ec);
  Poller::local().clear();
}

TEST(Poller, OneConnectionClosingAnotherInTheSameBatchLeavesNoDanglingPointer) {
  boost::asio::io_context loop;
  auto a = std::make_shared<Resident>(loop);
  auto b = std::make_shared<Resident>(loop);
  boost::system::error_code ec;
  a->pair.polled->start_polling(*a, ec);
  b->pair.polled->start_polling(*b, ec);
  loop.poll();
  // Both readable at once: whichever is served first closes the other and
  // drops the last reference the test holds to it.
  std::weak_ptr<Resident> wa = a, wb = b;
  a->on_ready_hook = [&] {
    if (auto other = wb.lock()) {
      other->pair.polled->close(ec);
      b.reset();
    }
  };
  b->on_ready_hook = [&] {
    if (auto other = wa.lock()) {
      other->pair.polled->close(ec);
      a.reset();
    }
  };
  const int peer_a = ::dup(a->pair.peer), peer_b = ::dup(b->pair.peer);
  ASSERT_EQ(::write(peer_a, "x", 1), 1);
  ASSERT_EQ(::write(peer_b, "y", 1), 1);
  loop.restart();
  loop.run_for(std::chrono::milliseconds(200));
  // Exactly one was closed by the other; the closed one was destroyed once
  // the batch was over, not inside it (ASan would see the use after free).
  EXPECT_NE(static_cast<bool>(a), static_cast<bool>(b));
  EXPECT_TRUE(wa.expired() != wb.expired());
  ::close(peer_a);
  ::close(peer_b);
  if (a) a->pair.polled->close(ec);
  if (b) b->pair.polled->close(ec);
  Poller::local().clear();
}

}  // namespace
}  // namespace petrel::net
