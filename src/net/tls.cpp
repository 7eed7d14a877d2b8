#include "net/tls.hpp"

#include <ctime>

#include <fmt/format.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <boost/asio/ssl/error.hpp>

namespace petrel::net {

namespace ssl = boost::asio::ssl;

namespace {

std::string openssl_errors() {
  std::string out;
  while (unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    if (!out.empty()) out += "; ";
    out += buf;
  }
  return out.empty() ? "unknown OpenSSL error" : out;
}

int tls_version(const std::string& v, const char* key) {
  if (v == "1.2") return TLS1_2_VERSION;
  if (v == "1.3") return TLS1_3_VERSION;
  throw std::runtime_error(fmt::format("{} must be \"1.2\" or \"1.3\", not \"{}\"", key, v));
}

struct AlpnList {
  std::string wire;  // length-prefixed protocol names
};

int select_alpn(SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in, unsigned int inlen,
                void* arg) {
  const auto* list = static_cast<const AlpnList*>(arg);
  unsigned char* selected = nullptr;
  if (SSL_select_next_proto(&selected, outlen, reinterpret_cast<const unsigned char*>(list->wire.data()),
                            static_cast<unsigned>(list->wire.size()), in, inlen) != OPENSSL_NPN_NEGOTIATED)
    return SSL_TLSEXT_ERR_ALERT_FATAL;
  *out = selected;
  return SSL_TLSEXT_ERR_OK;
}

}  // namespace

std::shared_ptr<ssl::context> make_tls_context(const TlsSettings& s) {
  auto ctx = std::make_shared<ssl::context>(ssl::context::tls_server);
  SSL_CTX* native = ctx->native_handle();
  auto fail = [&](const std::string& what) { throw std::runtime_error(fmt::format("{}: {}", what, openssl_errors())); };
  ERR_clear_error();
  ctx->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 | ssl::context::no_sslv3 |
                   ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1 | ssl::context::single_dh_use);
  // Idle TLS connections give their read/write buffers back to OpenSSL.
  SSL_CTX_set_mode(native, SSL_MODE_RELEASE_BUFFERS);
  // Session resumption only when asked for: without it a TLS 1.3 handshake
  // sends no session tickets (each one is encrypted and kept as a session
  // copy) and nothing is cached between connections.
  if (!s.session_tickets) {
    SSL_CTX_set_num_tickets(native, 0);
    SSL_CTX_set_options(native, SSL_OP_NO_TICKET);
    SSL_CTX_set_session_cache_mode(native, SSL_SESS_CACHE_OFF);
  }
  const int min = tls_version(s.min_version, "min_version");
  const int max = tls_version(s.max_version, "max_version");
  if (min > max) throw std::runtime_error("min_version is above max_version");
  SSL_CTX_set_min_proto_version(native, min);
  SSL_CTX_set_max_proto_version(native, max);
  if (!s.ciphers.empty() && SSL_CTX_set_cipher_list(native, s.ciphers.c_str()) != 1)
    fail(fmt::format("invalid TLS 1.2 cipher list '{}'", s.ciphers));
  if (!s.ciphersuites.empty() && SSL_CTX_set_ciphersuites(native, s.ciphersuites.c_str()) != 1)
    fail(fmt::format("invalid TLS 1.3 cipher suites '{}'", s.ciphersuites));

  // Always answer OpenSSL's password question ourselves (empty if none is
  // configured): without a callback it would prompt on the terminal and block.
  ctx->set_password_callback([pw = s.key_password](std::size_t, ssl::context::password_purpose) { return pw; });
  if (s.cert_file.empty()) throw std::runtime_error("cert_file is required for a TLS listener");
  if (s.key_file.empty()) throw std::runtime_error("key_file is required for a TLS listener");
  if (SSL_CTX_use_certificate_chain_file(native, s.cert_file.c_str()) != 1)
    fail(fmt::format("cannot load certificate chain '{}'", s.cert_file));
  if (SSL_CTX_use_PrivateKey_file(native, s.key_file.c_str(), SSL_FILETYPE_PEM) != 1)
    fail(fmt::format("cannot load private key '{}' (wrong file or key_password?)", s.key_file));
  if (SSL_CTX_check_private_key(native) != 1)
    fail(fmt::format("private key '{}' does not match certificate '{}'", s.key_file, s.cert_file));

  if (s.client_cert != ClientCertPolicy::None) {
    if (s.ca_file.empty() && s.ca_dir.empty())
      throw std::runtime_error("client_cert = optional/required needs ca_file or ca_dir");
    if (!s.ca_file.empty()) {
      if (SSL_CTX_load_verify_locations(native, s.ca_file.c_str(), nullptr) != 1)
        fail(fmt::format("cannot load CA file '{}'", s.ca_file));
      if (STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(s.ca_file.c_str()))
        SSL_CTX_set_client_CA_list(native, names);
    }
    if (!s.ca_dir.empty() && SSL_CTX_load_verify_locations(native, nullptr, s.ca_dir.c_str()) != 1)
      fail(fmt::format("cannot use CA directory '{}'", s.ca_dir));
    if (!s.crl_file.empty()) {
      X509_STORE* store = SSL_CTX_get_cert_store(native);
      X509_LOOKUP* lookup = X509_STORE_add_lookup(store, X509_LOOKUP_file());
      if (!lookup || X509_load_crl_file(lookup, s.crl_file.c_str(), X509_FILETYPE_PEM) <= 0)
        fail(fmt::format("cannot load CRL file '{}'", s.crl_file));
      X509_STORE_set_flags(store, X509_V_FLAG_CRL_CHECK);
    }
    // A client certificate must be good for client authentication: one
    // whose extended key usage is serverAuth only is refused.
    SSL_CTX_set_purpose(native, X509_PURPOSE_SSL_CLIENT);
    int mode = SSL_VERIFY_PEER;
    if (s.client_cert == ClientCertPolicy::Required) mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
    SSL_CTX_set_verify(native, mode, nullptr);
  } else {
    SSL_CTX_set_verify(native, SSL_VERIFY_NONE, nullptr);
  }

  // The chain petrel sends with its certificate, built once here. When the
  // certificate file holds no chain, OpenSSL otherwise builds one on every
  // handshake: an X509_verify_cert of petrel's own certificate against the
  // CA store (issuer lookups, a signature check, allocations and locks),
  // about a tenth of a mutual-TLS handshake's CPU (docs/benchmarks.md, issue
  // 17). Built the same way (what the store has of it, the root included
  // when it is there; errors ignored, as OpenSSL ignores them per handshake),
  // so what goes on the wire does not change. A chain in the file is kept.
  STACK_OF(X509)* chain = nullptr;
  if (SSL_CTX_get0_chain_certs(native, &chain) == 1 && (chain == nullptr || sk_X509_num(chain) == 0))
    SSL_CTX_build_cert_chain(native, SSL_BUILD_CHAIN_FLAG_IGNORE_ERROR | SSL_BUILD_CHAIN_FLAG_CLEAR_ERROR);
  ERR_clear_error();

  if (!s.alpn.empty()) {
    auto list = std::make_shared<AlpnList>();
    for (const auto& p : s.alpn) {
      if (p.empty() || p.size() > 255) throw std::runtime_error(fmt::format("invalid ALPN protocol '{}'", p));
      list->wire.push_back(static_cast<char>(p.size()));
      list->wire += p;
    }
    SSL_CTX_set_alpn_select_cb(native, select_alpn, list.get());
    // Keep the list alive as long as the context: tie it to the shared_ptr.
    auto holder = std::shared_ptr<ssl::context>(ctx.get(), [ctx, list](ssl::context*) {});
    return holder;
  }
  return ctx;
}

namespace {

std::chrono::system_clock::time_point to_time_point(const ASN1_TIME* t) {
  std::tm tm{};
  if (!t || ASN1_TIME_to_tm(t, &tm) != 1) return {};
  return std::chrono::system_clock::from_time_t(timegm(&tm));
}

std::string name_line(const X509_NAME* name) {
  BIO* bio = BIO_new(BIO_s_mem());
  if (!bio) return {};
  X509_NAME_print_ex(bio, name, 0, XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB);
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio, &data);
  std::string out(data, static_cast<std::size_t>(n > 0 ? n : 0));
  BIO_free(bio);
  return out;
}

}  // namespace

CertificateInfo certificate_info(const ssl::context& context) {
  CertificateInfo info;
  X509* cert = SSL_CTX_get0_certificate(const_cast<ssl::context&>(context).native_handle());
  if (!cert) return info;
  info.subject = name_line(X509_get_subject_name(cert));
  info.issuer = name_line(X509_get_issuer_name(cert));
  if (BIGNUM* bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), nullptr)) {
    if (char* hex = BN_bn2hex(bn)) {
      info.serial = hex;
      OPENSSL_free(hex);
    }
    BN_free(bn);
  }
  info.not_before = to_time_point(X509_get0_notBefore(cert));
  info.not_after = to_time_point(X509_get0_notAfter(cert));
  return info;
}

TlsContext::TlsContext(TlsSettings settings) : settings_(std::move(settings)), context_(make_tls_context(settings_)) {
  status_.certificate = certificate_info(*context_);
  status_.loaded_at = std::chrono::system_clock::now();
}

std::shared_ptr<ssl::context> TlsContext::current() const {
  std::lock_guard lock(mutex_);
  return context_;
}

std::optional<std::string> TlsContext::reload() {
  const auto now = std::chrono::system_clock::now();
  try {
    auto fresh = make_tls_context(settings_);
    auto info = certificate_info(*fresh);
    std::lock_guard lock(mutex_);
    context_ = std::move(fresh);
    status_.certificate = std::move(info);
    status_.loaded_at = now;
    status_.last_reload = now;
    status_.last_reload_error.reset();
    ++status_.reloads;
    return std::nullopt;
  } catch (const std::exception& e) {
    std::lock_guard lock(mutex_);
    status_.last_reload = now;
    status_.last_reload_error = e.what();
    return std::string(e.what());
  }
}

TlsContext::Status TlsContext::status() const {
  std::lock_guard lock(mutex_);
  return status_;
}

namespace {

long verify_error(SSL* ssl) {
  if (!ssl) return X509_V_OK;
  return SSL_get_verify_result(ssl);
}

}  // namespace

std::string describe_handshake_failure(SSL* ssl, const boost::system::error_code& ec) {
  const long v = verify_error(ssl);
  if (v != X509_V_OK) return fmt::format("client certificate verify failed: {}", X509_verify_cert_error_string(v));
  if (ec.category() == boost::asio::error::get_ssl_category()) {
    const int reason = ERR_GET_REASON(static_cast<unsigned long>(ec.value()));
    if (reason == SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE) return "no client certificate";
    if (reason >= SSL_AD_REASON_OFFSET && reason < SSL_AD_REASON_OFFSET + 256) {
      // The peer sent an alert, e.g. "unknown CA" when it rejected our certificate.
      return fmt::format("TLS alert from client: {}", SSL_alert_desc_string_long(reason - SSL_AD_REASON_OFFSET));
    }
    const char* r = ERR_reason_error_string(static_cast<unsigned long>(ec.value()));
    return r ? std::string(r) : ec.message();
  }
  if (ec == boost::asio::ssl::error::stream_truncated) return "client closed the connection during the handshake";
  if (ec == boost::asio::error::eof) return "client closed the connection during the handshake";
  return ec.message();
}

std::string failure_label(SSL* ssl, const boost::system::error_code& ec) {
  const long v = verify_error(ssl);
  switch (v) {
    case X509_V_OK: break;
    case X509_V_ERR_CERT_HAS_EXPIRED: return "certificate_expired";
    case X509_V_ERR_CERT_NOT_YET_VALID: return "certificate_not_yet_valid";
    case X509_V_ERR_CERT_REVOKED: return "certificate_revoked";
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN: return "certificate_self_signed";
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
    case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE: return "certificate_unknown_issuer";
    case X509_V_ERR_INVALID_PURPOSE: return "certificate_wrong_purpose";
    default: return "certificate_invalid";
  }
  if (ec.category() == boost::asio::error::get_ssl_category()) {
    const int reason = ERR_GET_REASON(static_cast<unsigned long>(ec.value()));
    if (reason == SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE) return "no_client_certificate";
    if (reason >= SSL_AD_REASON_OFFSET && reason < SSL_AD_REASON_OFFSET + 256) return "alert_from_client";
    if (reason == SSL_R_WRONG_VERSION_NUMBER || reason == SSL_R_HTTP_REQUEST) return "not_tls";
    if (reason == SSL_R_UNSUPPORTED_PROTOCOL) return "unsupported_protocol";
    if (reason == SSL_R_NO_SHARED_CIPHER) return "no_shared_cipher";
    return "tls_error";
  }
  return "connection_lost";
}

std::optional<std::string> certificate_identity(SSL* ssl, IdentitySource source) {
  if (source == IdentitySource::None || !ssl) return std::nullopt;
  X509* cert = SSL_get1_peer_certificate(ssl);
  if (!cert) return std::nullopt;
  std::optional<std::string> out;
  if (source == IdentitySource::CommonName) {
    X509_NAME* name = X509_get_subject_name(cert);
    const int i = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
    if (i >= 0) {
      ASN1_STRING* data = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, i));
      unsigned char* utf8 = nullptr;
      const int n = ASN1_STRING_to_UTF8(&utf8, data);
      if (n >= 0) out = std::string(reinterpret_cast<char*>(utf8), static_cast<std::size_t>(n));
      OPENSSL_free(utf8);
    }
  } else {
    auto* names = static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
    for (int i = 0; names && i < sk_GENERAL_NAME_num(names) && !out; ++i) {
      const GENERAL_NAME* g = sk_GENERAL_NAME_value(names, i);
      if (g->type == GEN_DNS || g->type == GEN_EMAIL || g->type == GEN_URI) {
        const ASN1_IA5STRING* s = g->d.ia5;
        out = std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                          static_cast<std::size_t>(ASN1_STRING_length(s)));
      }
    }
    GENERAL_NAMES_free(names);
  }
  X509_free(cert);
  return out;
}

}  // namespace petrel::net
