#include "net/poller.hpp"

#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <array>
#include <boost/asio/post.hpp>
#include <cerrno>

namespace petrel::net {

namespace {

boost::system::error_code last_error() {
  return {errno, boost::system::system_category()};
}

// After a read or write that failed (not EINTR): EAGAIN means the socket is
// drained (or full), so the edge it announced is spent.
boost::system::error_code failure(bool& edge) {
  if (errno != EAGAIN && errno != EWOULDBLOCK) return last_error();
  edge = false;
  return boost::asio::error::would_block;
}

}  // namespace

// ------------------------------------------------------------- Poller --

Poller& Poller::local() {
  thread_local Poller poller;
  return poller;
}

bool Poller::add(int fd, LoopResident& r, const LoopExecutor& executor, boost::system::error_code& ec) {
  if (epoll_ < 0) {
    epoll_ = ::epoll_create1(EPOLL_CLOEXEC);
    if (epoll_ < 0) {
      ec = last_error();
      return false;
    }
    watch_.emplace(executor, epoll_);
    arm();
  }
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
  ev.data.ptr = &r;
  if (::epoll_ctl(epoll_, EPOLL_CTL_ADD, fd, &ev) != 0) {
    ec = last_error();
    return false;
  }
  return true;
}

void Poller::remove(int fd) {
  if (epoll_ >= 0) ::epoll_ctl(epoll_, EPOLL_CTL_DEL, fd, nullptr);
}

void Poller::clear() {
  serving_.clear();
  if (watch_) {
    boost::system::error_code ignored;
    watch_->close(ignored);  // closes epoll_
    watch_.reset();
  }
  epoll_ = -1;
  posted_ = false;
}

void Poller::arm() {
  // Armed before the epoll set is read (drain), never after: an event that
  // arrives while a batch is served then finds the wait pending, and the
  // edge Asio sees for it is not lost.
  watch_->async_wait(Watch::wait_read, [this](const boost::system::error_code& ec) {
    if (ec) return;  // the loop is stopping (clear)
    arm();
    drain();
  });
}

void Poller::drain() {
  posted_ = false;
  serving_.clear();  // if serving the last batch threw
  std::array<epoll_event, kBatch> events;
  const int n = ::epoll_wait(epoll_, events.data(), kBatch, 0);
  if (n <= 0) return;
  // Hold the whole batch first: serving one connection may close another.
  for (int i = 0; i < n; ++i) serving_.push_back(static_cast<LoopResident*>(events[i].data.ptr)->self());
  for (int i = 0; i < n; ++i) serving_[i]->on_ready(events[i].events);
  serving_.clear();
  // A full batch may have left ready connections behind (edge-triggered:
  // no new edge announces them): serve them after what is queued now.
  if (n == kBatch && !posted_) {
    posted_ = true;
    boost::asio::post(watch_->get_executor(), [this] { drain(); });
  }
}

// ------------------------------------------------------- PolledSocket --

PolledSocket::PolledSocket(Socket&& s) : loop_(&s.get_executor().context()) {
  boost::system::error_code ec;
  fd_ = s.is_open() ? static_cast<int>(s.release(ec)) : -1;
  if (ec) fd_ = -1;
}

PolledSocket::~PolledSocket() {
  // Closing the descriptor takes it out of the epoll set (it is never
  // duplicated); the Poller itself may belong to another thread.
  if (fd_ >= 0) ::close(fd_);
}

void PolledSocket::start_polling(LoopResident& owner, boost::system::error_code& ec) {
  if (fd_ < 0) {
    ec = boost::asio::error::bad_descriptor;
    return;
  }
  registered_ = Poller::local().add(fd_, owner, get_executor(), ec);
}

void PolledSocket::note(std::uint32_t events) {
  if (fd_ < 0) return;
  if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) readable_ = true;
  if (events & (EPOLLOUT | EPOLLHUP | EPOLLERR)) writable_ = true;
}

void PolledSocket::non_blocking(bool on, boost::system::error_code& ec) {
  int arg = on ? 1 : 0;
  if (::ioctl(fd_, FIONBIO, &arg) != 0) ec = last_error();
}

void PolledSocket::set_raw_option(int level, int name, const void* data, std::size_t size,
                                  boost::system::error_code& ec) {
  if (::setsockopt(fd_, level, name, data, static_cast<socklen_t>(size)) != 0) ec = last_error();
}

boost::asio::ip::tcp::endpoint PolledSocket::remote_endpoint(boost::system::error_code& ec) const {
  boost::asio::ip::tcp::endpoint ep;
  socklen_t len = static_cast<socklen_t>(ep.capacity());
  if (::getpeername(fd_, ep.data(), &len) != 0) {
    ec = last_error();
    return {};
  }
  ep.resize(len);
  return ep;
}

std::size_t PolledSocket::read_some(boost::asio::mutable_buffer b, boost::system::error_code& ec) {
  while (true) {
    const ssize_t n = ::recv(fd_, b.data(), b.size(), 0);
    if (n > 0) return static_cast<std::size_t>(n);
    if (n == 0) {
      ec = boost::asio::error::eof;
      return 0;
    }
    if (errno == EINTR) continue;
    ec = failure(readable_);
    return 0;
  }
}

std::size_t PolledSocket::write_some(const std::vector<boost::asio::const_buffer>& buffers, WriteCursor& at,
                                     boost::system::error_code& ec) {
  std::size_t total = 0;
  while (at.index < buffers.size()) {
    std::array<iovec, 64> iov;
    std::size_t k = 0;
    for (std::size_t i = at.index; i < buffers.size() && k < iov.size(); ++i, ++k) {
      const std::size_t skip = i == at.index ? at.offset : 0;
      iov[k].iov_base = const_cast<char*>(static_cast<const char*>(buffers[i].data())) + skip;
      iov[k].iov_len = buffers[i].size() - skip;
    }
    msghdr m{};
    m.msg_iov = iov.data();
    m.msg_iovlen = k;
    const ssize_t n = ::sendmsg(fd_, &m, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      ec = failure(writable_);
      return total;
    }
    total += static_cast<std::size_t>(n);
    std::size_t left = static_cast<std::size_t>(n);
    while (at.index < buffers.size() && left >= buffers[at.index].size() - at.offset) {
      left -= buffers[at.index].size() - at.offset;
      ++at.index;
      at.offset = 0;
    }
    at.offset += left;
  }
  return total;
}

void PolledSocket::shutdown(shutdown_type what, boost::system::error_code& ec) {
  if (fd_ < 0) {
    ec = boost::asio::error::bad_descriptor;
    return;
  }
  if (::shutdown(fd_, static_cast<int>(what)) != 0) ec = last_error();
}

void PolledSocket::close(boost::system::error_code& ec) {
  if (fd_ < 0) return;
  if (registered_) Poller::local().remove(fd_);
  registered_ = false;
  if (::close(fd_) != 0) ec = last_error();
  fd_ = -1;
  readable_ = writable_ = false;
}

}  // namespace petrel::net
