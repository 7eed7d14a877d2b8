#include "app/config.hpp"

#include <fmt/format.h>

#include <toml++/toml.h>
#include <fstream>
#include <sstream>

namespace petrel::app {
namespace {

class Parser {
 public:
  explicit Parser(std::string source) : source_(std::move(source)) {}

  [[noreturn]] void fail(const toml::node& node, const std::string& what) const {
    const auto& src = node.source();
    throw ConfigError(fmt::format("{}:{}:{}: {}", source_, src.begin.line, src.begin.column, what));
  }

  // Rejects keys this table does not know (a typo must not pass silently).
  void known_keys(const toml::table& t, std::string_view table_name,
                  std::initializer_list<std::string_view> keys) const {
    for (const auto& [k, v] : t) {
      bool ok = false;
      for (auto key : keys) ok = ok || k.str() == key;
      if (!ok) fail(v, fmt::format("unknown key '{}' in {}", k.str(), table_name));
    }
  }

  template <class T>
  void integer(const toml::table& t, std::string_view key, T& out, std::int64_t min, std::int64_t max) const {
    const toml::node* n = t.get(key);
    if (!n) return;
    auto v = n->value<std::int64_t>();
    if (!n->is_integer() || !v) fail(*n, fmt::format("'{}' must be an integer", key));
    if (*v < min || *v > max) fail(*n, fmt::format("'{}' must be between {} and {}, not {}", key, min, max, *v));
    out = static_cast<T>(*v);
  }

  void boolean(const toml::table& t, std::string_view key, bool& out) const {
    const toml::node* n = t.get(key);
    if (!n) return;
    if (!n->is_boolean()) fail(*n, fmt::format("'{}' must be true or false", key));
    out = *n->value<bool>();
  }

  void string(const toml::table& t, std::string_view key, std::string& out) const {
    const toml::node* n = t.get(key);
    if (!n) return;
    if (!n->is_string()) fail(*n, fmt::format("'{}' must be a string", key));
    out = *n->value<std::string>();
  }

  const toml::table* table(const toml::table& t, std::string_view key) const {
    const toml::node* n = t.get(key);
    if (!n) return nullptr;
    if (!n->is_table()) fail(*n, fmt::format("'{}' must be a table ([{}])", key, key));
    return n->as_table();
  }

  Config parse(const toml::table& root) const {
    Config c = default_config();
    known_keys(root, "the top level", {"threads", "log", "listener", "mqtt", "sys"});
    integer(root, "threads", c.server.threads, 0, 1024);
    if (auto* log = table(root, "log")) {
      known_keys(*log, "[log]", {"level"});
      string(*log, "level", c.log_level);
      static constexpr std::string_view levels[] = {"trace", "debug", "info", "warn", "error", "critical", "off"};
      bool ok = false;
      for (auto l : levels) ok = ok || l == c.log_level;
      if (!ok) fail(*log->get("level"), "'level' must be one of trace, debug, info, warn, error, critical, off");
    }
    if (const toml::node* n = root.get("listener")) {
      if (!n->is_array_of_tables()) fail(*n, "'listener' must be an array of tables ([[listener]])");
      c.server.listeners.clear();
      for (const auto& item : *n->as_array()) {
        const auto& t = *item.as_table();
        known_keys(t, "[[listener]]", {"name", "type", "bind", "port"});
        net::ListenerSpec spec;
        spec.name = fmt::format("listener-{}", c.server.listeners.size() + 1);
        string(t, "name", spec.name);
        std::string type = "tcp";
        string(t, "type", type);
        if (type != "tcp")
          fail(*t.get("type"), fmt::format("listener type '{}' is not supported (supported: tcp)", type));
        string(t, "bind", spec.bind);
        integer(t, "port", spec.port, 0, 65535);
        c.server.listeners.push_back(spec);
      }
      if (c.server.listeners.empty()) fail(*n, "at least one [[listener]] is required");
    }
    if (auto* m = table(root, "mqtt")) {
      known_keys(*m, "[mqtt]",
                 {"max_packet_size", "max_keep_alive", "max_session_expiry", "receive_maximum", "max_inflight",
                  "max_queued_messages", "queue_qos0_offline", "topic_alias_maximum", "topic_alias_to_client",
                  "max_qos", "retain_available", "allow_empty_client_id", "connect_timeout"});
      auto& b = c.server.broker;
      integer(*m, "max_packet_size", b.max_packet_size, 64, 268'435'460);
      integer(*m, "max_keep_alive", b.max_keep_alive, 1, 65535);
      integer(*m, "max_session_expiry", b.max_session_expiry, 0, 0xFFFFFFFF);
      integer(*m, "receive_maximum", b.receive_maximum, 1, 65535);
      integer(*m, "max_inflight", b.max_inflight, 1, 65535);
      integer(*m, "max_queued_messages", b.max_queued_messages, 1, 100'000'000);
      boolean(*m, "queue_qos0_offline", b.queue_qos0_offline);
      integer(*m, "topic_alias_maximum", b.topic_alias_maximum, 0, 65535);
      boolean(*m, "topic_alias_to_client", b.topic_alias_to_client);
      integer(*m, "max_qos", b.max_qos, 0, 2);
      boolean(*m, "retain_available", b.retain_available);
      boolean(*m, "allow_empty_client_id", b.allow_empty_client_id);
      std::int64_t seconds = b.connect_timeout.count() / 1000;
      integer(*m, "connect_timeout", seconds, 1, 3600);
      b.connect_timeout = std::chrono::seconds(seconds);
    }
    if (auto* s = table(root, "sys")) {
      known_keys(*s, "[sys]", {"interval"});
      std::int64_t seconds = c.server.broker.sys_interval.count();
      integer(*s, "interval", seconds, 0, 86400);
      c.server.broker.sys_interval = std::chrono::seconds(seconds);
    }
    return c;
  }

 private:
  std::string source_;
};

}  // namespace

Config default_config() {
  Config c;
  c.server.listeners.push_back(net::ListenerSpec{"default", "0.0.0.0", 1883});
  return c;
}

Config parse_config(std::string_view text, const std::string& source) {
  toml::table root;
  try {
    root = toml::parse(text, source);
  } catch (const toml::parse_error& e) {
    const auto& src = e.source();
    throw ConfigError(fmt::format("{}:{}:{}: {}", source, src.begin.line, src.begin.column, e.description()));
  }
  return Parser(source).parse(root);
}

Config load_config_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ConfigError(fmt::format("{}: cannot open configuration file", path));
  std::stringstream ss;
  ss << in.rdbuf();
  return parse_config(ss.str(), path);
}

}  // namespace petrel::app
