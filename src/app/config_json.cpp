// The configuration in force as JSON, for GET /api/v1/config: every option
// with its value after defaults, file and flags. Secrets are redacted: key
// passwords show as "(redacted)" when set; the token file shows its path
// only (its tokens are never read here).
#include <nlohmann/json.hpp>

#include "app/config.hpp"

namespace petrel::app {

using nlohmann::json;

namespace {

json tls_json(const net::TlsSettings& t) {
  const char* policy[] = {"none", "optional", "required"};
  const char* identity[] = {"none", "cn", "san"};
  return json{{"cert_file", t.cert_file},
              {"key_file", t.key_file},
              {"key_password", t.key_password.empty() ? json(nullptr) : json("(redacted)")},
              {"ca_file", t.ca_file},
              {"ca_dir", t.ca_dir},
              {"crl_file", t.crl_file},
              {"min_version", t.min_version},
              {"max_version", t.max_version},
              {"ciphers", t.ciphers},
              {"ciphersuites", t.ciphersuites},
              {"alpn", t.alpn},
              {"client_cert", policy[static_cast<int>(t.client_cert)]},
              {"identity_as_username", identity[static_cast<int>(t.identity_as_username)]},
              {"max_pending_handshakes", t.max_pending_handshakes},
              {"session_tickets", t.session_tickets}};
}

}  // namespace

json config_json(const Config& c) {
  json listeners = json::array();
  for (const auto& l : c.server.listeners) {
    json j{{"name", l.name}, {"type", l.type}, {"bind", l.bind}, {"port", l.port}, {"max_connections", l.max_connections}};
    if (l.type == "tls" || l.type == "wss") j.update(tls_json(l.tls));
    if (l.type == "ws" || l.type == "wss") {
      j["path"] = l.ws.path;
      json proxies = json::array();
      for (const auto& a : l.ws.trusted_proxies) proxies.push_back(a.to_string());
      j["trusted_proxies"] = proxies;
    }
    listeners.push_back(std::move(j));
  }
  const auto& b = c.broker;
  const auto& h = c.http.options;
  json http{{"enabled", h.enabled},
            {"bind", h.bind},
            {"port", h.port},
            {"token_file", h.token_file},
            {"password_file", h.password_file},
            {"max_connections", h.max_connections},
            {"max_body_size", h.max_body_size},
            {"max_header_size", h.max_header_size},
            {"header_timeout", h.header_timeout.count() / 1000},
            {"body_timeout", h.body_timeout.count() / 1000},
            {"keep_alive_timeout", h.keep_alive_timeout.count() / 1000}};
  if (h.tls) http.update(tls_json(c.http.tls));
  json bridges = json::array();
  for (const auto& br : c.bridges) {
    json forward = json::array(), subscribe = json::array();
    for (const auto& r : br.forward)
      forward.push_back({{"filter", r.filter}, {"remote_prefix", r.remote_prefix}, {"qos", r.qos}, {"retain", r.retain}});
    for (const auto& r : br.subscribe)
      subscribe.push_back({{"filter", r.filter}, {"local_prefix", r.local_prefix}, {"qos", r.qos}});
    const bool v6 = br.host.find(':') != std::string::npos;
    json j{{"name", br.name},
           {"address", v6 ? "[" + br.host + "]:" + std::to_string(br.port) : br.host + ":" + std::to_string(br.port)},
           {"tls", br.tls.enabled},
           {"version", br.version == mqtt::Version::V5 ? 5 : 4},
           {"client_id", br.client_id},
           {"keep_alive", br.keep_alive},
           {"clean_start", br.clean_start},
           {"session_expiry", br.session_expiry},
           {"max_queued_messages", br.max_queued_messages},
           {"max_queued_bytes", br.max_queued_bytes},
           {"max_inflight", br.max_inflight},
           {"connect_timeout", br.connect_timeout.count() / 1000},
           {"reconnect_delay_min", br.reconnect_delay_min.count()},
           {"reconnect_delay_max", br.reconnect_delay_max.count()},
           {"forward", forward},
           {"subscribe", subscribe}};
    if (br.username) j["username"] = *br.username;
    if (br.password) j["password"] = "(redacted)";
    if (br.tls.enabled) {
      j["ca_file"] = br.tls.ca_file;
      j["cert_file"] = br.tls.cert_file;
      j["key_file"] = br.tls.key_file;
      j["server_name"] = br.tls.server_name;
      if (!br.tls.key_password.empty()) j["key_password"] = "(redacted)";
    }
    bridges.push_back(std::move(j));
  }
  return json{
      {"bridge", bridges},
      {"threads", c.server.threads},
      {"log", {{"level", c.log_level}}},
      {"listener", listeners},
      {"mqtt",
       {{"max_packet_size", b.max_packet_size},
        {"max_keep_alive", b.max_keep_alive},
        {"max_session_expiry", b.max_session_expiry},
        {"receive_maximum", b.receive_maximum},
        {"max_inflight", b.max_inflight},
        {"max_queued_messages", b.max_queued_messages},
        {"queue_qos0_offline", b.queue_qos0_offline},
        {"topic_alias_maximum", b.topic_alias_maximum},
        {"topic_alias_to_client", b.topic_alias_to_client},
        {"max_qos", b.max_qos},
        {"retain_available", b.retain_available},
        {"allow_empty_client_id", b.allow_empty_client_id},
        {"allow_control_characters", b.allow_control_characters},
        {"connect_timeout", b.connect_timeout.count() / 1000},
        {"max_connections", c.server.max_connections},
        {"max_client_id_length", b.max_client_id_length},
        {"max_topic_length", b.max_topic_length},
        {"max_topic_levels", b.max_topic_levels},
        {"max_subscriptions", b.max_subscriptions},
        {"max_queued_bytes", b.max_queued_bytes},
        {"max_retained_messages", b.max_retained_messages},
        {"max_user_properties", b.max_user_properties}}},
      {"store",
       {{"type", c.store.type},
        {"path", c.store.sqlite.path},
        {"durability", c.store.sqlite.sync ? "sync" : "periodic"},
        {"flush_interval", c.store.sqlite.flush_interval.count()}}},
      {"sys", {{"interval", b.sys_interval.count()}}},
      {"http", http},
  };
}

}  // namespace petrel::app
