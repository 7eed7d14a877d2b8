// TLS for listeners (OpenSSL 3 through Boost.Asio ssl): the settings of one
// TLS listener, building an ssl::context from them, swapping it on reload,
// and turning OpenSSL's failures into sentences an operator can act on.
//
// A context is immutable once built. TlsContext::reload() builds a new one
// from the files and swaps it in for new handshakes; connections already
// established keep the context they started with. If the new files are
// invalid, reload() keeps the old context and returns why.
#pragma once

#include <boost/asio/ssl/context.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

typedef struct ssl_st SSL;

namespace petrel::net {

enum class ClientCertPolicy : std::uint8_t { None, Optional, Required };
enum class IdentitySource : std::uint8_t { None, CommonName, SubjectAltName };

struct TlsSettings {
  std::string cert_file;  // certificate chain, PEM
  std::string key_file;   // private key, PEM (optionally encrypted)
  std::string key_password;
  std::string ca_file;  // CAs for client verification
  std::string ca_dir;
  std::string crl_file;
  std::string min_version = "1.2";  // "1.2" or "1.3"
  std::string max_version = "1.3";
  std::string ciphers;            // TLS 1.2 cipher list (OpenSSL syntax); empty: OpenSSL's default
  std::string ciphersuites;       // TLS 1.3 cipher suites; empty: OpenSSL's default
  std::vector<std::string> alpn;  // accepted ALPN protocols; empty: no ALPN
  ClientCertPolicy client_cert = ClientCertPolicy::None;
  IdentitySource identity_as_username = IdentitySource::None;
  std::uint32_t max_pending_handshakes = 512;
  // Let clients resume sessions (TLS 1.3 tickets, TLS 1.2 tickets): a
  // reconnecting client then skips the full handshake, at the cost of a
  // ticket for every handshake.
  bool session_tickets = false;
};

// Builds a server context; throws std::runtime_error naming the file and
// OpenSSL's reason.
std::shared_ptr<boost::asio::ssl::context> make_tls_context(const TlsSettings& s);

// The server certificate a context presents (the leaf of cert_file).
struct CertificateInfo {
  std::string subject;  // one line, RFC 2253 ("CN=broker.example,O=Example")
  std::string issuer;
  std::string serial;  // hexadecimal
  std::chrono::system_clock::time_point not_before{}, not_after{};
};
CertificateInfo certificate_info(const boost::asio::ssl::context& context);

class TlsContext {
 public:
  explicit TlsContext(TlsSettings settings);  // throws like make_tls_context
  std::shared_ptr<boost::asio::ssl::context> current() const;
  // Rebuilds from the files. Returns an error message, or nothing on success.
  std::optional<std::string> reload();
  const TlsSettings& settings() const { return settings_; }

  // What the operator API shows of this context. Thread-safe.
  struct Status {
    CertificateInfo certificate;                       // of the context in use
    std::chrono::system_clock::time_point loaded_at;   // when the context in use was built
    std::chrono::system_clock::time_point last_reload{};  // last reload attempt; {} if none yet
    std::optional<std::string> last_reload_error;      // why the last attempt failed, if it did
    std::uint64_t reloads = 0;                         // successful reloads since start
  };
  Status status() const;

 private:
  TlsSettings settings_;
  mutable std::mutex mutex_;
  std::shared_ptr<boost::asio::ssl::context> context_;
  Status status_;  // guarded by mutex_
};

// Why a handshake failed, in words: the certificate verification error if
// there was one ("client certificate verify failed: certificate has
// expired"), else OpenSSL's reason ("TLS alert: unknown CA", "wrong version
// number").
std::string describe_handshake_failure(SSL* ssl, const boost::system::error_code& ec);

// A short, stable label for metrics ("certificate_expired", "no_client_certificate", ...).
std::string failure_label(SSL* ssl, const boost::system::error_code& ec);

// The peer certificate's identity (CN or first DNS/email SAN), if any.
std::optional<std::string> certificate_identity(SSL* ssl, IdentitySource source);

}  // namespace petrel::net
