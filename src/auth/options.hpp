// The access-control settings of every listener, resolved from [auth] and
// each [[listener]]'s overrides by app/config.cpp (which also applies the
// secure-by-default rule, docs/security.md): by the time they get here,
// every listener knows whether it admits anonymous clients and which files
// it reads. An empty path means "none".
#pragma once

#include <string>
#include <vector>

#include "auth/jwt.hpp"

namespace petrel::auth {

struct PolicyOptions {
  std::string listener;  // the listener's name ("" for the [auth] defaults)
  bool allow_anonymous = false;
  std::string password_file;
  std::string acl_file;
  // identity_as_username: the verified certificate's name is the user name,
  // and no password is asked.
  bool certificate_identity = false;
};

struct Options {
  // [auth] as written: used for sessions restored from the store whose
  // listener is no longer configured.
  PolicyOptions defaults;
  std::vector<PolicyOptions> listeners;
  // [auth.jwt]: tokens as passwords, on every listener.
  JwtSettings jwt;
  // Refusals logged per second at most (then "N similar suppressed").
  unsigned log_per_second = 20;

  // Whether any ACL source exists (else no delivery is ever checked).
  bool any_acl() const {
    if (!defaults.acl_file.empty() || (jwt.enabled() && jwt.acl_claims)) return true;
    for (const auto& l : listeners)
      if (!l.acl_file.empty()) return true;
    return false;
  }
};

}  // namespace petrel::auth
