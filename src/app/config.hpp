// petrel's configuration: a TOML file (toml++) overlaid by command-line
// flags (CLI11). Every option is documented in docs/configuration.md and in
// config/petrel.toml. A bad file fails start with "file:line:column: what".
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "auth/options.hpp"
#include "bridge/settings.hpp"
#include "broker/config.hpp"
#include "http/options.hpp"
#include "net/server.hpp"
#include "store/sqlite_store.hpp"

namespace petrel::app {

struct StoreOptions {
  std::string type = "sqlite";  // or "memory"
  store::SqliteOptions sqlite;
};

// The operator's HTTP listener ([http]): its options, and its certificate
// when it serves HTTPS (the same keys as a TLS MQTT listener).
struct HttpConfig {
  http::Options options;
  net::TlsSettings tls;  // used when options.tls
};

// Access-control keys as written, in [auth] or one [[listener]] (unset:
// not written there).
struct AuthSpec {
  std::optional<bool> allow_anonymous;
  std::optional<std::string> password_file;
  std::optional<std::string> acl_file;
  std::optional<std::string> scram_file;
  std::string origin;  // "FILE:LINE:COLUMN" of the table, for errors
};

struct Config {
  std::string log_level = "info";
  net::ServerOptions server;  // event loops and listeners
  broker::BrokerConfig broker;
  StoreOptions store;
  HttpConfig http;
  AuthSpec auth_spec;                 // [auth]
  auth::JwtSettings jwt;              // [auth.jwt]
  auth::HttpSettings auth_http;       // [auth.http]
  std::vector<std::string> authentication, authorization;  // [auth] source orders
  std::vector<AuthSpec> listener_auth;  // per listener, by index (missing: no overrides)
  auth::Options auth;                 // resolved by resolve_auth()
  std::vector<bridge::BridgeSettings> bridges;  // [[bridge]]
};

class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The defaults: one TCP listener on 127.0.0.1:1883.
Config default_config();

// Parses a TOML file; throws ConfigError naming file, line and problem.
Config load_config_file(const std::string& path);

// Parses TOML text (`source` names it in errors).
Config parse_config(std::string_view toml, const std::string& source);

// The configuration as JSON (GET /api/v1/config), secrets (key passwords)
// redacted (config_json.cpp).
nlohmann::json config_json(const Config& c);

// Resolves every listener's access control from [auth] and its own keys into
// config.auth, applying the secure-by-default rule: a listener that has no
// authentication (no password_file, no certificate identity, no JWT) and no
// allow_anonymous setting admits anonymous clients only on a loopback
// address; on any other address petrel refuses to start (ConfigError saying
// which listener and what to write). Call after command-line overrides.
void resolve_auth(Config& config);

}  // namespace petrel::app
