#include "net/tls_socket.hpp"

#include <cerrno>
#include <climits>

namespace petrel::net {

TlsSocket::TlsSocket(Socket socket, SSL_CTX* ctx) : socket_(std::move(socket)), ssl_(SSL_new(ctx)) {
  if (!ssl_) throw std::bad_alloc();
  boost::system::error_code ec;
  socket_.non_blocking(true, ec);  // OpenSSL reads and writes the descriptor itself
  SSL_set_fd(ssl_, static_cast<int>(socket_.native_handle()));  // BIO_NOCLOSE: the Socket closes it
  SSL_set_accept_state(ssl_);
  // Release the record buffers whenever they are empty (an idle connection
  // keeps none); partial writes, and retries from a moved buffer, as Asio's
  // composed writes make them.
  SSL_set_mode(ssl_, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
}

TlsSocket::~TlsSocket() {
  if (ssl_) SSL_free(ssl_);
}

TlsSocket::Result TlsSocket::classify(int ret) {
  const int err = SSL_get_error(ssl_, ret);
  switch (err) {
    case SSL_ERROR_WANT_READ: return {Status::WantRead, 0, {}};
    case SSL_ERROR_WANT_WRITE: return {Status::WantWrite, 0, {}};
    case SSL_ERROR_ZERO_RETURN: return {Status::Failed, 0, boost::asio::error::eof};
    case SSL_ERROR_SYSCALL: {
      if (const unsigned long e = ERR_get_error())
        return {Status::Failed, 0, {static_cast<int>(e), boost::asio::error::get_ssl_category()}};
      if (ret < 0 && errno != 0) return {Status::Failed, 0, {errno, boost::system::system_category()}};
      // The peer closed the TCP connection without close_notify.
      return {Status::Failed, 0, boost::asio::ssl::error::stream_truncated};
    }
    default: {
      const unsigned long e = ERR_get_error();
#ifdef SSL_R_UNEXPECTED_EOF_WHILE_READING
      // OpenSSL 3 reports a peer that closed without close_notify as an
      // error; it is the connection ending (as Asio's ssl stream says too).
      if (ERR_GET_REASON(e) == SSL_R_UNEXPECTED_EOF_WHILE_READING)
        return {Status::Failed, 0, boost::asio::ssl::error::stream_truncated};
#endif
      return {Status::Failed, 0,
              {static_cast<int>(e ? e : static_cast<unsigned long>(err)), boost::asio::error::get_ssl_category()}};
    }
  }
}

TlsSocket::Result TlsSocket::try_handshake() {
  ERR_clear_error();
  errno = 0;
  const int r = SSL_do_handshake(ssl_);
  if (r == 1) return {Status::Done, 0, {}};
  return classify(r);
}

TlsSocket::Result TlsSocket::try_read(void* data, std::size_t size) {
  ERR_clear_error();
  errno = 0;
  const int n = SSL_read(ssl_, data, static_cast<int>(std::min<std::size_t>(size, INT_MAX)));
  if (n > 0) return {Status::Done, static_cast<std::size_t>(n), {}};
  return classify(n);
}

TlsSocket::Result TlsSocket::try_write(const void* data, std::size_t size) {
  ERR_clear_error();
  errno = 0;
  const int n = SSL_write(ssl_, data, static_cast<int>(std::min<std::size_t>(size, INT_MAX)));
  if (n > 0) return {Status::Done, static_cast<std::size_t>(n), {}};
  return classify(n);
}

void TlsSocket::try_shutdown() noexcept {
  if (ssl_ && SSL_is_init_finished(ssl_)) {
    ERR_clear_error();
    SSL_shutdown(ssl_);
  }
  ERR_clear_error();
}

void teardown(boost::beast::role_type role, TlsSocket& s, boost::system::error_code& ec) {
  s.try_shutdown();
  boost::beast::websocket::teardown(role, s.next_layer(), ec);
}

}  // namespace petrel::net
