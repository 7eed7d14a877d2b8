// The [http] section of the configuration (docs/configuration.md): where the
// operator API listens and the limits that keep a hostile or broken HTTP
// client from costing more than its share.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace petrel::http {

struct Options {
  bool enabled = true;
  std::string bind = "127.0.0.1";
  std::uint16_t port = 8888;
  // Bearer tokens, one per line. Empty: no token is asked for, which the
  // configuration allows on a loopback address only.
  std::string token_file;
  // Users for HTTP Basic: a Mosquitto-format password file (it may be the
  // MQTT listeners' [auth] password_file); app/ checks the passwords
  // (Operations::check_password). Either this or token_file may guard an
  // address that is not loopback.
  std::string password_file;
  bool tls = false;  // serve HTTPS (the certificate comes from app/, net::TlsContext)
  // Open HTTP connections at once; past it a new one gets 429 and is closed.
  std::uint32_t max_connections = 64;
  // Largest request body and largest request header block.
  std::uint32_t max_body_size = 1 << 20;
  std::uint32_t max_header_size = 16 * 1024;
  // A request's header block must arrive within header_timeout of its first
  // byte being awaited (on a new connection: of the accept, TLS handshake
  // included); its body within body_timeout; a response must be written
  // within body_timeout; an idle kept-alive connection is closed after
  // keep_alive_timeout.
  std::chrono::milliseconds header_timeout{5000};
  std::chrono::milliseconds body_timeout{10000};
  std::chrono::milliseconds keep_alive_timeout{30000};
};

}  // namespace petrel::http
