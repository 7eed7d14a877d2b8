// The access-control settings of every listener, resolved from [auth] and
// each [[listener]]'s overrides by app/config.cpp (which also applies the
// secure-by-default rule, docs/security.md): by the time they get here,
// every listener knows whether it admits anonymous clients and which files
// it reads. An empty path means "none".
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "auth/jwt.hpp"

namespace petrel::auth {

struct PolicyOptions {
  std::string listener;  // the listener's name ("" for the [auth] defaults)
  bool allow_anonymous = false;
  std::string password_file;
  std::string acl_file;
  std::string scram_file;  // SCRAM-SHA-256 credentials (enhanced authentication)
  // identity_as_username: the verified certificate's name is the user name,
  // and no password is asked.
  bool certificate_identity = false;
};

// [auth.http]: the operator's own HTTP service decides (docs/security.md).
struct HttpSettings {
  std::string url;      // authentication requests; empty: none
  std::string acl_url;  // ACL requests; empty: none
  std::chrono::milliseconds timeout{5000};
  std::chrono::seconds cache_ttl{60};
  std::size_t cache_size = 100000;
  std::size_t max_connections = 8;
  std::string ca_file;  // https: the CA to verify the service with (empty: the system's)
  bool enabled() const { return !url.empty() || !acl_url.empty(); }
};

struct Options {
  // [auth] as written: used for sessions restored from the store whose
  // listener is no longer configured.
  PolicyOptions defaults;
  std::vector<PolicyOptions> listeners;
  // [auth.jwt]: tokens as passwords, on every listener.
  JwtSettings jwt;
  HttpSettings http;
  // The sources asked, in order: authentication among "password_file",
  // "jwt", "http"; authorization among "jwt" (a token's ACL claims),
  // "acl_file", "http". Empty: every configured source, in that order.
  std::vector<std::string> authentication;
  std::vector<std::string> authorization;
  // Refusals logged per second at most (then "N similar suppressed").
  unsigned log_per_second = 20;

  bool any_scram() const {
    if (!defaults.scram_file.empty()) return true;
    for (const auto& l : listeners)
      if (!l.scram_file.empty()) return true;
    return false;
  }

  // Whether any ACL source exists (else no delivery is ever checked).
  bool any_acl() const {
    if (!defaults.acl_file.empty() || (jwt.enabled() && jwt.acl_claims) || http.enabled()) return true;
    for (const auto& l : listeners)
      if (!l.acl_file.empty()) return true;
    return false;
  }
};

}  // namespace petrel::auth
