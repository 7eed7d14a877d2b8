// petrel's configuration: a TOML file (toml++) overlaid by command-line
// flags (CLI11). Every option is documented in docs/configuration.md and in
// config/petrel.toml. A bad file fails start with "file:line:column: what".
#pragma once

#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>

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

struct Config {
  std::string log_level = "info";
  net::ServerOptions server;  // event loops and listeners
  broker::BrokerConfig broker;
  StoreOptions store;
  HttpConfig http;
};

class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The defaults: one TCP listener on 0.0.0.0:1883.
Config default_config();

// Parses a TOML file; throws ConfigError naming file, line and problem.
Config load_config_file(const std::string& path);

// Parses TOML text (`source` names it in errors).
Config parse_config(std::string_view toml, const std::string& source);

// The configuration as JSON (GET /api/v1/config), secrets (key passwords)
// redacted (config_json.cpp).
nlohmann::json config_json(const Config& c);

}  // namespace petrel::app
