#include "http/shapes.hpp"

#include <fmt/format.h>

#include <cmath>
#include <ctime>

#include "mqtt/packets.hpp"
#include "mqtt/utf8.hpp"

namespace petrel::http {

using nlohmann::json;

json iso_time(std::chrono::system_clock::time_point t) {
  if (t.time_since_epoch().count() == 0) return nullptr;
  const std::time_t secs = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return std::string(buf);
}

namespace {
constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int b64_value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}
}  // namespace

std::string base64_encode(std::string_view bytes) {
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 2 < bytes.size(); i += 3) {
    const unsigned v = (static_cast<unsigned char>(bytes[i]) << 16) | (static_cast<unsigned char>(bytes[i + 1]) << 8) |
                       static_cast<unsigned char>(bytes[i + 2]);
    out += {kAlphabet[v >> 18], kAlphabet[(v >> 12) & 63], kAlphabet[(v >> 6) & 63], kAlphabet[v & 63]};
  }
  if (i + 1 == bytes.size()) {
    const unsigned v = static_cast<unsigned char>(bytes[i]) << 16;
    out += {kAlphabet[v >> 18], kAlphabet[(v >> 12) & 63], '=', '='};
  } else if (i + 2 == bytes.size()) {
    const unsigned v = (static_cast<unsigned char>(bytes[i]) << 16) | (static_cast<unsigned char>(bytes[i + 1]) << 8);
    out += {kAlphabet[v >> 18], kAlphabet[(v >> 12) & 63], kAlphabet[(v >> 6) & 63], '='};
  }
  return out;
}

std::optional<std::string> base64_decode(std::string_view text) {
  while (!text.empty() && text.back() == '=') text.remove_suffix(1);
  if (text.size() % 4 == 1) return std::nullopt;
  std::string out;
  out.reserve(text.size() * 3 / 4);
  unsigned acc = 0;
  int bits = 0;
  for (char c : text) {
    const int v = b64_value(c);
    if (v < 0) return std::nullopt;
    acc = (acc << 6) | static_cast<unsigned>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xFF));
    }
  }
  return out;
}

json session_json(const broker::SessionInfo& s) {
  return json{
      {"client_id", s.client_id},
      {"online", s.online},
      {"username", s.username ? json(*s.username) : json(nullptr)},
      {"listener", s.listener.empty() ? json(nullptr) : json(s.listener)},
      {"peer", s.peer.empty() ? json(nullptr) : json(s.peer)},
      {"protocol", std::string(mqtt::to_string(s.version))},
      {"clean_start", s.clean_start},
      {"keep_alive", s.keep_alive},
      {"connected_at", iso_time(s.connected_at)},
      {"changed_at", iso_time(s.changed_at)},
      {"session_expiry_interval", s.expiry_interval},
      {"subscriptions", s.subscriptions},
      {"queued", s.queued},
      {"queued_bytes", s.queued_bytes},
      {"inflight", s.inflight},
      {"inbound_qos2", s.inbound_qos2},
      {"will_pending", s.will_pending},
  };
}

json subscription_json(const broker::SubscriptionInfo& s, bool with_client_id) {
  json j{{"filter", s.filter},
         {"qos", s.options.qos},
         {"no_local", s.options.no_local},
         {"retain_as_published", s.options.retain_as_published},
         {"retain_handling", s.options.retain_handling},
         {"subscription_id", s.subscription_id ? json(s.subscription_id) : json(nullptr)}};
  if (with_client_id) j["client_id"] = s.client_id;
  return j;
}

json message_json(const broker::Message& m) {
  const auto& p = m.properties();
  json props = json::object();
  if (p.payload_format_indicator) props["payload_format_indicator"] = *p.payload_format_indicator;
  if (p.content_type) props["content_type"] = *p.content_type;
  if (p.response_topic) props["response_topic"] = *p.response_topic;
  if (p.correlation_data) props["correlation_data_base64"] = base64_encode(*p.correlation_data);
  if (auto left = m.remaining_expiry(broker::Clock::now())) props["message_expiry_interval"] = *left;
  if (!p.user_properties.empty()) {
    json users = json::array();
    for (const auto& [k, v] : p.user_properties) users.push_back({k, v});
    props["user_properties"] = users;
  }
  const bool text = mqtt::valid_utf8(m.payload());
  return json{{"topic", m.topic()},
              {"qos", m.qos()},
              {"size", m.payload().size()},
              {"payload", text ? json(m.payload()) : json(nullptr)},
              {"payload_base64", base64_encode(m.payload())},
              {"properties", props}};
}

json certificate_json(const CertificateStatus& c, std::chrono::system_clock::time_point now) {
  const double days = std::chrono::duration<double>(c.not_after - now).count() / 86400.0;
  return json{{"subject", c.subject},
              {"issuer", c.issuer},
              {"serial", c.serial},
              {"not_before", iso_time(c.not_before)},
              {"not_after", iso_time(c.not_after)},
              {"days_until_expiry", std::floor(days * 10) / 10},
              {"loaded_at", iso_time(c.loaded_at)},
              {"last_reload", iso_time(c.last_reload)},
              {"last_reload_error", c.last_reload_error ? json(*c.last_reload_error) : json(nullptr)},
              {"reloads", c.reloads}};
}

json listener_json(const ListenerStatus& l, std::chrono::system_clock::time_point now) {
  json failures = json::object();
  json refusals = json::object(), handshakes = json::object(), timeouts = json::object();
  for (const auto& f : l.failures) {
    json c{{"total", f.count.total}, {"last_minute", f.count.last_minute}};
    (f.kind == "refusal" ? refusals : f.kind == "timeout" ? timeouts : handshakes)[f.reason] = c;
  }
  json j{{"name", l.name},
         {"type", l.type},
         {"bind", l.bind},
         {"port", l.port},
         {"state", l.state},
         {"state_since", iso_time(l.state_since)},
         {"last_accept_error", l.last_accept_error.empty() ? json(nullptr) : json(l.last_accept_error)},
         {"last_accept_error_at", iso_time(l.last_accept_error_at)},
         {"connections", l.connections},
         {"accepts", {{"total", l.accepts.total}, {"last_minute", l.accepts.last_minute}}},
         {"refusals", refusals},
         {"handshake_failures", handshakes},
         {"timeouts", timeouts},
         {"certificate", l.certificate ? certificate_json(*l.certificate, now) : json(nullptr)}};
  if (l.type == "tls" || l.type == "wss") {
    j["handshakes"] = {{"in_progress", l.handshakes_in_progress}, {"completed", l.handshakes_completed}};
  }
  return j;
}

json store_json(const StoreStatus& s) {
  json j{{"type", s.type},
         {"writable", s.writable},
         {"last_error", s.error.empty() ? json(nullptr) : json(s.error)},
         {"last_error_at", iso_time(s.error_at)},
         {"commits", s.commits},
         {"errors", s.errors},
         {"backlog", s.backlog}};
  if (s.commit_latency && s.commit_latency->count)
    j["commit_latency_mean_seconds"] = s.commit_latency->sum / static_cast<double>(s.commit_latency->count);
  return j;
}

}  // namespace petrel::http
