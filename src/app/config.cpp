#include "app/config.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cctype>
#include <fstream>
#include <sstream>
#include <toml++/toml.h>

#include "auth/http_client.hpp"
#include "auth/password_file.hpp"
#include "bridge/bridge.hpp"
#include "http/tokens.hpp"
#include "mqtt/topic.hpp"

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
    // Check the type first: toml++ converts a float to an integer on request,
    // which is undefined for values out of range (found by the config fuzzer).
    if (!n->is_integer()) fail(*n, fmt::format("'{}' must be an integer", key));
    auto v = n->value<std::int64_t>();
    if (!v) fail(*n, fmt::format("'{}' must be an integer", key));
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

  // The TLS keys shared by TLS listeners and [http] (cert_file and key_file
  // are read and checked by the caller).
  void tls_settings(const toml::table& t, net::TlsSettings& tls) const {
    string(t, "key_password", tls.key_password);
    string(t, "ca_file", tls.ca_file);
    string(t, "ca_dir", tls.ca_dir);
    string(t, "crl_file", tls.crl_file);
    string(t, "min_version", tls.min_version);
    string(t, "max_version", tls.max_version);
    for (const char* key : {"min_version", "max_version"}) {
      const std::string& v = std::string_view(key) == "min_version" ? tls.min_version : tls.max_version;
      if (v != "1.2" && v != "1.3") fail(*t.get(key), fmt::format("'{}' must be \"1.2\" or \"1.3\"", key));
    }
    string(t, "ciphers", tls.ciphers);
    string(t, "ciphersuites", tls.ciphersuites);
    if (const toml::node* n = t.get("alpn")) {
      const auto* arr = n->as_array();
      if (!arr) fail(*n, "'alpn' must be an array of strings");
      for (const auto& e : *arr) {
        if (!e.is_string()) fail(e, "'alpn' must be an array of strings");
        tls.alpn.push_back(*e.value<std::string>());
      }
    }
    std::string policy = "none";
    string(t, "client_cert", policy);
    if (policy == "none") {
      tls.client_cert = net::ClientCertPolicy::None;
    } else if (policy == "optional") {
      tls.client_cert = net::ClientCertPolicy::Optional;
    } else if (policy == "required") {
      tls.client_cert = net::ClientCertPolicy::Required;
    } else {
      fail(*t.get("client_cert"), "'client_cert' must be \"none\", \"optional\" or \"required\"");
    }
    if (tls.client_cert != net::ClientCertPolicy::None && tls.ca_file.empty() && tls.ca_dir.empty())
      fail(*t.get("client_cert"), "client_cert = optional/required needs ca_file or ca_dir");
    std::string identity = "none";
    string(t, "identity_as_username", identity);
    if (identity == "none") {
      tls.identity_as_username = net::IdentitySource::None;
    } else if (identity == "cn") {
      tls.identity_as_username = net::IdentitySource::CommonName;
    } else if (identity == "san") {
      tls.identity_as_username = net::IdentitySource::SubjectAltName;
    } else {
      fail(*t.get("identity_as_username"), "'identity_as_username' must be \"none\", \"cn\" or \"san\"");
    }
  }

  net::ListenerSpec listener(const toml::node& node, const toml::table& t, std::size_t index) const {
    static constexpr std::string_view tls_keys[] = {
        "cert_file",   "key_file", "key_password", "ca_file",     "ca_dir",
        "crl_file",    "min_version", "max_version", "ciphers",   "ciphersuites",
        "alpn",        "client_cert", "identity_as_username", "max_pending_handshakes", "session_tickets"};
    static constexpr std::string_view ws_keys[] = {"path", "trusted_proxies"};
    for (const auto& [k, v] : t) {
      bool ok = k.str() == "name" || k.str() == "type" || k.str() == "bind" || k.str() == "port" ||
                k.str() == "max_connections" || k.str() == "allow_anonymous" || k.str() == "password_file" ||
                k.str() == "acl_file" || k.str() == "scram_file";
      for (auto key : tls_keys) ok = ok || k.str() == key;
      for (auto key : ws_keys) ok = ok || k.str() == key;
      if (!ok) fail(v, fmt::format("unknown key '{}' in [[listener]]", k.str()));
    }
    net::ListenerSpec spec;
    spec.name = fmt::format("listener-{}", index);
    string(t, "name", spec.name);
    string(t, "type", spec.type);
    if (spec.type != "tcp" && spec.type != "tls" && spec.type != "ws" && spec.type != "wss")
      fail(*t.get("type"),
           fmt::format("listener type '{}' is not supported (supported: tcp, tls, ws, wss)", spec.type));
    const bool tls_type = spec.type == "tls" || spec.type == "wss";
    const bool ws_type = spec.type == "ws" || spec.type == "wss";
    string(t, "bind", spec.bind);
    // Default ports: IANA's for MQTT and MQTT over TLS; for WebSocket the
    // ones NanoMQ and EMQX use.
    spec.port = spec.type == "tls" ? 8883 : spec.type == "ws" ? 8083 : spec.type == "wss" ? 8084 : 1883;
    integer(t, "port", spec.port, 0, 65535);
    integer(t, "max_connections", spec.max_connections, 0, 10'000'000);
    if (!ws_type) {
      for (auto key : ws_keys)
        if (const toml::node* n = t.get(key))
          fail(*n, fmt::format("'{}' applies to type = \"ws\" and \"wss\" listeners only", key));
    } else {
      string(t, "path", spec.ws.path);
      if (spec.ws.path.empty() || spec.ws.path.front() != '/' ||
          spec.ws.path.find_first_of(" ?#") != std::string::npos)
        fail(*t.get("path"), "'path' must start with '/' and contain no space, '?' or '#'");
      if (const toml::node* n = t.get("trusted_proxies")) {
        const auto* arr = n->as_array();
        if (!arr) fail(*n, "'trusted_proxies' must be an array of IP addresses");
        for (const auto& e : *arr) {
          if (!e.is_string()) fail(e, "'trusted_proxies' must be an array of IP addresses");
          boost::system::error_code ec;
          auto address = boost::asio::ip::make_address(*e.value<std::string>(), ec);
          if (ec) fail(e, fmt::format("'{}' is not an IP address", *e.value<std::string>()));
          spec.ws.trusted_proxies.push_back(address);
        }
      }
    }
    if (!tls_type) {
      for (auto key : tls_keys)
        if (const toml::node* n = t.get(key))
          fail(*n, fmt::format("'{}' applies to type = \"tls\" and \"wss\" listeners only", key));
      return spec;
    }
    string(t, "cert_file", spec.tls.cert_file);
    string(t, "key_file", spec.tls.key_file);
    if (spec.tls.cert_file.empty() || spec.tls.key_file.empty())
      fail(node, fmt::format("TLS listener '{}' needs cert_file and key_file", spec.name));
    tls_settings(t, spec.tls);
    integer(t, "max_pending_handshakes", spec.tls.max_pending_handshakes, 1, 1'000'000);
    boolean(t, "session_tickets", spec.tls.session_tickets);
    return spec;
  }

  std::string origin(const toml::node& node) const {
    const auto& src = node.source();
    return fmt::format("{}:{}:{}", source_, src.begin.line, src.begin.column);
  }

  AuthSpec auth_spec(const toml::node& node, const toml::table& t) const {
    AuthSpec a;
    a.origin = origin(node);
    if (t.get("allow_anonymous")) {
      bool v = false;
      boolean(t, "allow_anonymous", v);
      a.allow_anonymous = v;
    }
    for (const char* key : {"password_file", "acl_file", "scram_file"}) {
      if (!t.get(key)) continue;
      std::string v;
      string(t, key, v);
      (std::string_view(key) == "password_file" ? a.password_file
       : std::string_view(key) == "acl_file"    ? a.acl_file
                                                : a.scram_file) = v;
    }
    return a;
  }

  std::vector<std::string> sources(const toml::table& t, std::string_view key,
                                   std::initializer_list<std::string_view> allowed) const {
    std::vector<std::string> out;
    const toml::node* n = t.get(key);
    if (!n) return out;
    const auto* arr = n->as_array();
    const std::string list = fmt::format("{}", fmt::join(allowed, ", "));
    if (!arr) fail(*n, fmt::format("'{}' must be an array of source names ({})", key, list));
    for (const auto& e : *arr) {
      const auto v = e.value<std::string>();
      bool ok = false;
      for (auto a : allowed) ok = ok || (v && *v == a);
      if (!ok) fail(e, fmt::format("'{}' lists '{}': the sources are {}", key, v.value_or("?"), list));
      for (const auto& seen : out)
        if (seen == *v) fail(e, fmt::format("'{}' lists '{}' twice", key, *v));
      out.push_back(*v);
    }
    return out;
  }

  auth::HttpSettings auth_http(const toml::table& t) const {
    known_keys(t, "[auth.http]",
               {"url", "acl_url", "timeout", "cache_ttl", "cache_size", "max_connections", "ca_file"});
    auth::HttpSettings h;
    for (const char* key : {"url", "acl_url"}) {
      std::string& v = std::string_view(key) == "url" ? h.url : h.acl_url;
      string(t, key, v);
      if (v.empty()) continue;
      try {
        (void)auth::HttpTarget::parse(v);
      } catch (const std::invalid_argument& e) {
        fail(*t.get(key), e.what());
      }
    }
    if (!h.enabled()) fail(t, "[auth.http] needs 'url' (authentication) or 'acl_url' (ACL) or both");
    std::int64_t ms = h.timeout.count(), ttl = h.cache_ttl.count();
    integer(t, "timeout", ms, 1, 600'000);
    integer(t, "cache_ttl", ttl, 0, 86'400);
    h.timeout = std::chrono::milliseconds(ms);
    h.cache_ttl = std::chrono::seconds(ttl);
    integer(t, "cache_size", h.cache_size, 16, 100'000'000);
    integer(t, "max_connections", h.max_connections, 1, 1000);
    string(t, "ca_file", h.ca_file);
    return h;
  }

  auth::JwtSettings jwt(const toml::node& node, const toml::table& t) const {
    known_keys(t, "[auth.jwt]",
               {"algorithm", "secret", "secret_file", "public_key_file", "claim", "claim_equals", "require_exp",
                "leeway", "acl_claims", "publish_claim", "subscribe_claim"});
    auth::JwtSettings j;
    string(t, "algorithm", j.algorithm);
    if (j.algorithm != "HS256" && j.algorithm != "RS256" && j.algorithm != "ES256")
      fail(t.get("algorithm") ? *t.get("algorithm") : node, "'algorithm' must be \"HS256\", \"RS256\" or \"ES256\"");
    string(t, "secret", j.secret);
    string(t, "secret_file", j.secret_file);
    string(t, "public_key_file", j.public_key_file);
    if (j.algorithm == "HS256") {
      if (j.secret.empty() == j.secret_file.empty())
        fail(node, "HS256 needs one of 'secret' and 'secret_file'");
      if (const toml::node* n = t.get("public_key_file")) fail(*n, "'public_key_file' is for RS256 and ES256");
    } else {
      if (j.public_key_file.empty()) fail(node, fmt::format("{} needs 'public_key_file'", j.algorithm));
      for (const char* key : {"secret", "secret_file"})
        if (const toml::node* n = t.get(key)) fail(*n, fmt::format("'{}' is for HS256", key));
    }
    string(t, "claim", j.claim);
    string(t, "claim_equals", j.claim_equals);
    if (j.claim.empty() != j.claim_equals.empty())
      fail(node, "'claim' and 'claim_equals' go together");
    if (!j.claim_equals.empty() && j.claim_equals != "username" && j.claim_equals != "client_id")
      fail(*t.get("claim_equals"), "'claim_equals' must be \"username\" or \"client_id\"");
    boolean(t, "require_exp", j.require_exp);
    integer(t, "leeway", j.leeway, 0, 86400);
    boolean(t, "acl_claims", j.acl_claims);
    string(t, "publish_claim", j.publish_claim);
    string(t, "subscribe_claim", j.subscribe_claim);
    return j;
  }

  Config parse(const toml::table& root) const {
    Config c = default_config();
    known_keys(root, "the top level",
               {"threads", "log", "listener", "mqtt", "sys", "store", "http", "auth", "bridge"});
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
        c.server.listeners.push_back(listener(item, t, c.server.listeners.size() + 1));
        c.listener_auth.push_back(auth_spec(item, t));
      }
      if (c.server.listeners.empty()) fail(*n, "at least one [[listener]] is required");
    }
    if (auto* m = table(root, "mqtt")) {
      known_keys(*m, "[mqtt]",
                 {"max_packet_size", "max_keep_alive", "max_session_expiry", "receive_maximum", "max_inflight",
                  "max_queued_messages", "queue_qos0_offline", "topic_alias_maximum", "topic_alias_to_client",
                  "max_qos", "retain_available", "allow_empty_client_id", "connect_timeout", "max_queued_bytes",
                  "max_connections", "max_client_id_length", "max_topic_length", "max_topic_levels",
                  "max_subscriptions", "max_retained_messages", "max_user_properties",
                  "allow_control_characters"});
      auto& b = c.broker;
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
      integer(*m, "max_queued_bytes", b.max_queued_bytes, 0, std::int64_t{1} << 40);
      integer(*m, "max_connections", c.server.max_connections, 0, 10'000'000);
      integer(*m, "max_client_id_length", b.max_client_id_length, 23, 65535);
      integer(*m, "max_topic_length", b.max_topic_length, 1, 65535);
      integer(*m, "max_topic_levels", b.max_topic_levels, 1, 65535);
      integer(*m, "max_subscriptions", b.max_subscriptions, 0, 100'000'000);
      integer(*m, "max_retained_messages", b.max_retained_messages, 0, std::int64_t{1} << 40);
      integer(*m, "max_user_properties", b.max_user_properties, 0, 65535);
      boolean(*m, "retain_available", b.retain_available);
      boolean(*m, "allow_empty_client_id", b.allow_empty_client_id);
      boolean(*m, "allow_control_characters", b.allow_control_characters);
      std::int64_t seconds = b.connect_timeout.count() / 1000;
      integer(*m, "connect_timeout", seconds, 1, 3600);
      b.connect_timeout = std::chrono::seconds(seconds);
    }
    if (auto* s = table(root, "store")) {
      known_keys(*s, "[store]", {"type", "path", "durability", "flush_interval"});
      auto& st = c.store;
      string(*s, "type", st.type);
      if (st.type != "sqlite" && st.type != "memory")
        fail(*s->get("type"), "'type' must be \"sqlite\" or \"memory\"");
      string(*s, "path", st.sqlite.path);
      if (st.sqlite.path.empty()) fail(*s->get("path"), "'path' must not be empty");
      std::string durability = "sync";
      string(*s, "durability", durability);
      if (durability != "sync" && durability != "periodic")
        fail(*s->get("durability"), "'durability' must be \"sync\" or \"periodic\"");
      st.sqlite.sync = durability == "sync";
      std::int64_t ms = st.sqlite.flush_interval.count();
      integer(*s, "flush_interval", ms, 1, 3'600'000);
      st.sqlite.flush_interval = std::chrono::milliseconds(ms);
      if (st.type == "memory")
        for (const char* key : {"path", "durability", "flush_interval"})
          if (const toml::node* n = s->get(key)) fail(*n, fmt::format("'{}' applies to type = \"sqlite\" only", key));
    }
    if (auto* a = table(root, "auth")) {
      known_keys(*a, "[auth]",
                 {"allow_anonymous", "password_file", "acl_file", "scram_file", "jwt", "http", "authentication",
                  "authorization"});
      c.auth_spec = auth_spec(*a, *a);
      if (auto* j = table(*a, "jwt")) c.jwt = jwt(*a->get("jwt"), *j);
      if (auto* h = table(*a, "http")) c.auth_http = auth_http(*h);
      c.authentication = sources(*a, "authentication", {"password_file", "jwt", "http"});
      c.authorization = sources(*a, "authorization", {"claims", "acl_file", "http"});
      for (const auto& name : c.authentication)
        if (name == "http" && c.auth_http.url.empty())
          fail(*a->get("authentication"), "'http' in 'authentication' needs [auth.http] url");
        else if (name == "jwt" && !c.jwt.enabled())
          fail(*a->get("authentication"), "'jwt' in 'authentication' needs [auth.jwt]");
      for (const auto& name : c.authorization)
        if (name == "http" && c.auth_http.acl_url.empty())
          fail(*a->get("authorization"), "'http' in 'authorization' needs [auth.http] acl_url");
    }
    if (auto* s = table(root, "sys")) {
      known_keys(*s, "[sys]", {"interval"});
      std::int64_t seconds = c.broker.sys_interval.count();
      integer(*s, "interval", seconds, 0, 86400);
      c.broker.sys_interval = std::chrono::seconds(seconds);
    }
    if (auto* h = table(root, "http")) http(*h, c.http);
    if (const toml::node* n = root.get("bridge")) {
      if (!n->is_array_of_tables()) fail(*n, "'bridge' must be an array of tables ([[bridge]])");
      for (const auto& item : *n->as_array()) {
        c.bridges.push_back(bridge(item, *item.as_table(), c.bridges.size() + 1));
        for (std::size_t i = 0; i + 1 < c.bridges.size(); ++i)
          if (c.bridges[i].name == c.bridges.back().name)
            fail(item, fmt::format("a second bridge named '{}'", c.bridges.back().name));
      }
    }
    // A WebSocket message carries MQTT packets: none may exceed the largest packet.
    c.server.max_message_size = c.broker.max_packet_size;
    return c;
  }


  // [[bridge]] (docs/bridges.md).
  bridge::BridgeSettings bridge(const toml::node& node, const toml::table& t, std::size_t index) const {
    known_keys(t, "[[bridge]]",
               {"name", "address", "tls", "ca_file", "cert_file", "key_file", "key_password", "server_name",
                "version", "client_id", "username", "password", "password_file", "keep_alive", "clean_start",
                "session_expiry", "max_queued_messages", "max_queued_bytes", "max_inflight", "connect_timeout",
                "reconnect_delay_min", "reconnect_delay_max", "forward", "subscribe"});
    bridge::BridgeSettings b;
    b.origin = origin(node);
    b.name = fmt::format("bridge-{}", index);
    string(t, "name", b.name);
    const bool name_ok = !b.name.empty() && b.name.size() <= 64 &&
                         std::all_of(b.name.begin(), b.name.end(), [](char ch) {
                           return std::isalnum(static_cast<unsigned char>(ch)) || ch == '-' || ch == '_' || ch == '.';
                         });
    if (!name_ok)
      fail(t.get("name") ? *t.get("name") : node,
           fmt::format("bridge name '{}' must be 1-64 letters, digits, '-', '_' or '.' (it names a $SYS topic and "
                       "a session)",
                       b.name));
    boolean(t, "tls", b.tls.enabled);
    std::string address;
    string(t, "address", address);
    if (address.empty()) fail(node, fmt::format("bridge '{}' needs address = \"host:port\"", b.name));
    if (!split_address(address, b.host, b.port, b.tls.enabled ? 8883 : 1883))
      fail(*t.get("address"), fmt::format("'{}' is not host:port (an IPv6 address goes in brackets: "
                                          "\"[::1]:1883\")",
                                          address));
    for (const char* key : {"ca_file", "cert_file", "key_file", "key_password", "server_name"}) {
      if (!t.get(key)) continue;
      if (!b.tls.enabled) fail(*t.get(key), fmt::format("'{}' needs tls = true", key));
    }
    string(t, "ca_file", b.tls.ca_file);
    string(t, "cert_file", b.tls.cert_file);
    string(t, "key_file", b.tls.key_file);
    string(t, "key_password", b.tls.key_password);
    string(t, "server_name", b.tls.server_name);
    if (b.tls.cert_file.empty() != b.tls.key_file.empty())
      fail(t.get("cert_file") ? *t.get("cert_file") : *t.get("key_file"), "cert_file and key_file go together");
    if (b.tls.enabled) {
      try {
        (void)bridge::make_client_tls_context(b.tls);
      } catch (const std::exception& e) {
        fail(t.get("tls") ? *t.get("tls") : node, fmt::format("bridge '{}': {}", b.name, e.what()));
      }
    }
    int version = 5;
    integer(t, "version", version, 4, 5);
    b.version = version == 5 ? mqtt::Version::V5 : mqtt::Version::V311;
    b.client_id = b.name;
    string(t, "client_id", b.client_id);
    if (b.client_id.empty() || b.client_id.size() > 65535)
      fail(*t.get("client_id"), "'client_id' must not be empty (the remote keeps the bridge's session under it)");
    if (t.get("username")) {
      std::string u;
      string(t, "username", u);
      b.username = u;
    }
    if (t.get("password") && t.get("password_file"))
      fail(*t.get("password_file"), "'password' and 'password_file' are exclusive");
    if (t.get("password")) {
      std::string pw;
      string(t, "password", pw);
      b.password = pw;
    }
    if (t.get("password_file")) {
      std::string path;
      string(t, "password_file", path);
      std::ifstream in(path, std::ios::binary);
      if (!in) fail(*t.get("password_file"), fmt::format("cannot read password_file '{}'", path));
      std::stringstream ss;
      ss << in.rdbuf();
      std::string pw = ss.str();
      while (!pw.empty() && (pw.back() == '\n' || pw.back() == '\r')) pw.pop_back();
      b.password = pw;
    }
    if (b.password && !b.username && b.version != mqtt::Version::V5)
      fail(node, "MQTT 3.1.1 (version = 4) sends a password only with a username");
    integer(t, "keep_alive", b.keep_alive, 0, 65535);
    boolean(t, "clean_start", b.clean_start);
    integer(t, "session_expiry", b.session_expiry, 0, 0xFFFFFFFF);
    integer(t, "max_queued_messages", b.max_queued_messages, 1, 100'000'000);
    integer(t, "max_queued_bytes", b.max_queued_bytes, 0, std::int64_t{1} << 40);
    integer(t, "max_inflight", b.max_inflight, 1, 65535);
    std::int64_t connect_s = b.connect_timeout.count() / 1000;
    integer(t, "connect_timeout", connect_s, 1, 3600);
    b.connect_timeout = std::chrono::seconds(connect_s);
    std::int64_t min_ms = b.reconnect_delay_min.count(), max_ms = b.reconnect_delay_max.count();
    integer(t, "reconnect_delay_min", min_ms, 1, 3'600'000);
    integer(t, "reconnect_delay_max", max_ms, 1, 3'600'000);
    if (max_ms < min_ms)
      fail(t.get("reconnect_delay_max") ? *t.get("reconnect_delay_max") : *t.get("reconnect_delay_min"),
           fmt::format("reconnect_delay_max ({} ms) is below reconnect_delay_min ({} ms)", max_ms, min_ms));
    b.reconnect_delay_min = std::chrono::milliseconds(min_ms);
    b.reconnect_delay_max = std::chrono::milliseconds(max_ms);
    auto rules = [&](const char* key, auto&& each) {
      const toml::node* n = t.get(key);
      if (!n) return;
      if (!n->is_array_of_tables()) fail(*n, fmt::format("'{}' must be an array of tables ([[bridge.{}]])", key, key));
      for (const auto& item : *n->as_array()) each(item, *item.as_table());
    };
    auto filter = [&](const toml::table& r, const toml::node& item, const char* table_name) {
      std::string f;
      string(r, "filter", f);
      if (f.empty()) fail(item, fmt::format("[[{}]] needs 'filter'", table_name));
      if (mqtt::parse_shared(f)) fail(*r.get("filter"), "a bridge rule cannot use a shared subscription ($share/...)");
      if (!mqtt::valid_topic_filter(f)) fail(*r.get("filter"), fmt::format("'{}' is not a valid topic filter", f));
      return f;
    };
    auto prefix = [&](const toml::table& r, const char* key) {
      std::string p;
      string(r, key, p);
      if (p.find_first_of("+#") != std::string::npos || p.find('\0') != std::string::npos)
        fail(*r.get(key), fmt::format("'{}' may not contain '+', '#' or NUL", key));
      return p;
    };
    rules("forward", [&](const toml::node& item, const toml::table& r) {
      known_keys(r, "[[bridge.forward]]", {"filter", "remote_prefix", "qos", "retain"});
      bridge::ForwardRule rule;
      rule.filter = filter(r, item, "bridge.forward");
      rule.remote_prefix = prefix(r, "remote_prefix");
      integer(r, "qos", rule.qos, 0, 2);
      boolean(r, "retain", rule.retain);
      b.forward.push_back(std::move(rule));
    });
    rules("subscribe", [&](const toml::node& item, const toml::table& r) {
      known_keys(r, "[[bridge.subscribe]]", {"filter", "local_prefix", "qos"});
      bridge::SubscribeRule rule;
      rule.filter = filter(r, item, "bridge.subscribe");
      rule.local_prefix = prefix(r, "local_prefix");
      integer(r, "qos", rule.qos, 0, 2);
      if ((rule.local_prefix + rule.filter).starts_with("$SYS"))
        fail(*r.get("filter"), "messages from the remote cannot be published on petrel's own $SYS topics: set "
                               "local_prefix");
      b.subscribe.push_back(std::move(rule));
    });
    if (b.forward.empty() && b.subscribe.empty())
      fail(node, fmt::format("bridge '{}' has no [[bridge.forward]] and no [[bridge.subscribe]] rule", b.name));
    return b;
  }

  // "host:port", "[v6]:port", or "host" (the default port).
  static bool split_address(const std::string& a, std::string& host, std::uint16_t& port, std::uint16_t fallback) {
    std::string port_text;
    if (!a.empty() && a.front() == '[') {
      const auto close = a.find(']');
      if (close == std::string::npos || close == 1) return false;
      host = a.substr(1, close - 1);
      if (close + 1 < a.size()) {
        if (a[close + 1] != ':') return false;
        port_text = a.substr(close + 2);
        if (port_text.empty()) return false;
      }
    } else {
      const auto colon = a.rfind(':');
      if (colon != std::string::npos && a.find(':') != colon) return false;  // IPv6 without brackets
      host = colon == std::string::npos ? a : a.substr(0, colon);
      if (colon != std::string::npos) {
        port_text = a.substr(colon + 1);
        if (port_text.empty()) return false;
      }
    }
    if (host.empty() || host.find_first_of(" /") != std::string::npos) return false;
    port = fallback;
    if (port_text.empty()) return true;
    if (port_text.size() > 5 || port_text.find_first_not_of("0123456789") != std::string::npos) return false;
    const int p = std::stoi(port_text);
    if (p < 1 || p > 65535) return false;
    port = static_cast<std::uint16_t>(p);
    return true;
  }

  void http(const toml::table& t, HttpConfig& c) const {
    known_keys(t, "[http]",
               {"enabled", "bind", "port", "token_file", "password_file", "max_connections", "max_body_size",
                "max_header_size",
                "header_timeout", "body_timeout", "keep_alive_timeout", "cert_file", "key_file", "key_password",
                "ca_file", "ca_dir", "crl_file", "min_version", "max_version", "ciphers", "ciphersuites",
                "client_cert"});
    auto& o = c.options;
    boolean(t, "enabled", o.enabled);
    string(t, "bind", o.bind);
    integer(t, "port", o.port, 0, 65535);
    string(t, "token_file", o.token_file);
    string(t, "password_file", o.password_file);
    integer(t, "max_connections", o.max_connections, 1, 100'000);
    integer(t, "max_body_size", o.max_body_size, 1024, 1 << 30);
    integer(t, "max_header_size", o.max_header_size, 1024, 1 << 20);
    for (auto [key, value] : {std::pair{"header_timeout", &o.header_timeout}, std::pair{"body_timeout", &o.body_timeout},
                              std::pair{"keep_alive_timeout", &o.keep_alive_timeout}}) {
      std::int64_t seconds = value->count() / 1000;
      integer(t, key, seconds, 1, 3600);
      *value = std::chrono::seconds(seconds);
    }
    boost::system::error_code ec;
    const auto address = boost::asio::ip::make_address(o.bind, ec);
    if (ec) fail(t.get("bind") ? *t.get("bind") : t, fmt::format("'{}' is not an IP address", o.bind));
    string(t, "cert_file", c.tls.cert_file);
    string(t, "key_file", c.tls.key_file);
    o.tls = !c.tls.cert_file.empty() || !c.tls.key_file.empty();
    if (o.tls && (c.tls.cert_file.empty() || c.tls.key_file.empty()))
      fail(t, "[http] serves HTTPS with both cert_file and key_file (or neither, for plain HTTP)");
    if (!o.tls)
      for (auto key : {"key_password", "ca_file", "ca_dir", "crl_file", "min_version", "max_version", "ciphers",
                       "ciphersuites", "client_cert"})
        if (const toml::node* n = t.get(key)) fail(*n, fmt::format("'{}' needs cert_file and key_file in [http]", key));
    if (o.tls) tls_settings(t, c.tls);
    if (!o.enabled) return;
    // The API can disconnect clients and publish: off loopback, it must
    // not be open to whoever reaches the port.
    if (!address.is_loopback() && o.token_file.empty() && o.password_file.empty())
      fail(t.get("bind") ? *t.get("bind") : t,
           fmt::format("[http] bind = \"{}\" is not a loopback address, so the HTTP API needs token_file "
                       "(bearer tokens) or password_file (HTTP Basic); set one, bind to 127.0.0.1, or set "
                       "enabled = false",
                       o.bind));
    if (!o.password_file.empty()) {
      try {
        auth::PasswordFile::load(o.password_file);
      } catch (const std::exception& e) {
        fail(*t.get("password_file"), e.what());
      }
    }
    if (!o.token_file.empty()) {
      try {
        http::load_tokens(o.token_file);
      } catch (const std::exception& e) {
        fail(*t.get("token_file"), e.what());
      }
    }
  }

 private:
  std::string source_;
};

}  // namespace

Config default_config() {
  Config c;
  net::ListenerSpec spec;
  spec.name = "default";
  // Secure by default: with no configuration, petrel serves this machine only.
  spec.bind = "127.0.0.1";
  c.server.listeners.push_back(spec);
  return c;
}

void resolve_auth(Config& c) {
  const AuthSpec& global = c.auth_spec;
  c.auth = {};
  c.auth.defaults.allow_anonymous = global.allow_anonymous.value_or(false);
  c.auth.defaults.password_file = global.password_file.value_or("");
  c.auth.defaults.acl_file = global.acl_file.value_or("");
  c.auth.defaults.scram_file = global.scram_file.value_or("");
  c.auth.jwt = c.jwt;
  c.auth.http = c.auth_http;
  c.auth.authentication = c.authentication;
  c.auth.authorization = c.authorization;
  for (std::size_t i = 0; i < c.server.listeners.size(); ++i) {
    const net::ListenerSpec& l = c.server.listeners[i];
    const AuthSpec own = i < c.listener_auth.size() ? c.listener_auth[i] : AuthSpec{};
    auth::PolicyOptions p;
    p.listener = l.name;
    p.password_file = own.password_file ? *own.password_file : c.auth.defaults.password_file;
    p.acl_file = own.acl_file ? *own.acl_file : c.auth.defaults.acl_file;
    p.scram_file = own.scram_file ? *own.scram_file : c.auth.defaults.scram_file;
    p.certificate_identity = l.tls.identity_as_username != net::IdentitySource::None &&
                             (l.type == "tls" || l.type == "wss");
    const bool authenticates =
        !p.password_file.empty() || !p.scram_file.empty() || p.certificate_identity || c.jwt.enabled() ||
        !c.auth_http.url.empty();
    if (auto allow = own.allow_anonymous ? own.allow_anonymous : global.allow_anonymous) {
      p.allow_anonymous = *allow;
    } else if (authenticates) {
      p.allow_anonymous = false;
    } else {
      boost::system::error_code ec;
      const auto address = boost::asio::ip::make_address(l.bind, ec);
      if (ec || !address.is_loopback()) {
        const std::string where = own.origin.empty() ? std::string("the command line") : own.origin;
        throw ConfigError(fmt::format(
            "{}: listener '{}' on {}:{} has no authentication and would admit anonymous clients from the network; "
            "set allow_anonymous = true (in [auth] or in the listener) to allow that, or give it a password_file",
            where, l.name, l.bind, l.port));
      }
      p.allow_anonymous = true;  // loopback: this machine only
    }
    c.auth.listeners.push_back(std::move(p));
  }
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
