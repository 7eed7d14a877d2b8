// The JSON API's handlers. Listings are pages (`limit`, at most kMaxPage,
// and a cursor `after`, the last key of the previous page); the answer says
// where the next page starts ("next", null after the last). Errors are JSON
// ({"error": {"status", "message"}}) with the status that fits: 400 for a
// request petrel cannot use (saying what is wrong), 404 for what does not
// exist, 409 for what cannot be done in the current state, 413 for a
// message larger than the broker accepts.
#include "http/api.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>

#include "http/dashboard.hpp"
#include "http/server.hpp"
#include "http/shapes.hpp"
#include "mqtt/topic.hpp"
#include "mqtt/utf8.hpp"

namespace petrel::http {

using nlohmann::json;

namespace {

// A request the handler cannot use: answered 400 (or the given status).
struct BadRequest {
  int status;
  std::string message;
};

std::size_t page_limit(const Request& r, std::size_t fallback = 100) {
  auto it = r.query.find("limit");
  if (it == r.query.end()) return fallback;
  std::size_t n = 0;
  const auto& v = it->second;
  if (v.empty() || v.size() > 7 || v.find_first_not_of("0123456789") != std::string::npos || (n = std::stoul(v)) < 1 ||
      n > kMaxPage)
    throw BadRequest{400, fmt::format("'limit' must be an integer from 1 to {}, not '{}'", kMaxPage, v)};
  return n;
}

std::optional<std::string> query(const Request& r, const char* key) {
  auto it = r.query.find(key);
  if (it == r.query.end()) return std::nullopt;
  return it->second;
}

std::optional<bool> query_bool(const Request& r, const char* key) {
  auto v = query(r, key);
  if (!v) return std::nullopt;
  if (*v == "true" || *v == "1") return true;
  if (*v == "false" || *v == "0") return false;
  throw BadRequest{400, fmt::format("'{}' must be true or false, not '{}'", key, *v)};
}

broker::SessionQuery session_query(const Request& r) {
  broker::SessionQuery q;
  q.limit = page_limit(r);
  q.after = query(r, "after").value_or("");
  q.client_id_prefix = query(r, "prefix").value_or("");
  q.username = query(r, "user");
  q.listener = query(r, "listener");
  return q;
}

json page(json items, std::size_t limit, const std::string& last) {
  const bool full = items.size() == limit;
  return json{{"items", std::move(items)}, {"next", full ? json(last) : json(nullptr)}};
}

json sessions_page(broker::Broker& b, broker::SessionQuery q) {
  json items = json::array();
  std::string last;
  for (const auto& s : b.list_sessions(q)) {
    items.push_back(session_json(s));
    last = s.client_id;
  }
  return page(std::move(items), q.limit, last);
}

json session_detail(broker::Broker& b, const broker::SessionInfo& s) {
  json j = session_json(s);
  json subs = json::array();
  for (const auto& sub : b.session_subscriptions(s.client_id)) subs.push_back(subscription_json(sub, false));
  j["subscription_list"] = std::move(subs);
  return j;
}

// The JSON body of a POST, as an object.
json body_object(const Request& r) {
  json j;
  try {
    j = json::parse(r.body);
  } catch (const json::parse_error& e) {
    throw BadRequest{400, fmt::format("the body is not valid JSON: {}", e.what())};
  }
  if (!j.is_object()) throw BadRequest{400, "the body must be a JSON object"};
  return j;
}

void only_keys(const json& j, std::string_view where, std::initializer_list<std::string_view> keys) {
  for (const auto& [k, v] : j.items()) {
    bool ok = false;
    for (auto key : keys) ok = ok || k == key;
    if (!ok) throw BadRequest{400, fmt::format("unknown key '{}' in {}", k, where)};
  }
}

template <class T>
T integer(const json& j, const char* key, T min, T max, T fallback) {
  if (!j.contains(key)) return fallback;
  const auto& v = j[key];
  if (!v.is_number_integer() || v.get<std::int64_t>() < static_cast<std::int64_t>(min) ||
      v.get<std::int64_t>() > static_cast<std::int64_t>(max))
    throw BadRequest{400, fmt::format("'{}' must be an integer from {} to {}", key, min, max)};
  return static_cast<T>(v.get<std::int64_t>());
}

std::string string_of(const json& j, const char* key) {
  if (!j[key].is_string()) throw BadRequest{400, fmt::format("'{}' must be a string", key)};
  return j[key].get<std::string>();
}

std::string bytes_of(const json& j, const char* text_key, const char* base64_key, bool required) {
  const bool text = j.contains(text_key), b64 = j.contains(base64_key);
  if (text && b64) throw BadRequest{400, fmt::format("give '{}' or '{}', not both", text_key, base64_key)};
  if (text) return string_of(j, text_key);
  if (b64) {
    auto decoded = base64_decode(string_of(j, base64_key));
    if (!decoded) throw BadRequest{400, fmt::format("'{}' is not base64", base64_key)};
    return *decoded;
  }
  if (required) throw BadRequest{400, fmt::format("'{}' or '{}' is required", text_key, base64_key)};
  return {};
}

mqtt::Properties publish_properties(const json& p, const std::string& payload) {
  if (!p.is_object()) throw BadRequest{400, "'properties' must be an object"};
  only_keys(p, "properties",
            {"payload_format_indicator", "message_expiry_interval", "content_type", "response_topic",
             "correlation_data", "correlation_data_base64", "user_properties"});
  mqtt::Properties props;
  if (p.contains("payload_format_indicator")) {
    props.payload_format_indicator = integer<std::uint8_t>(p, "payload_format_indicator", 0, 1, 0);
    if (*props.payload_format_indicator == 1 && !mqtt::valid_utf8(payload))
      throw BadRequest{400, "payload_format_indicator is 1 but the payload is not UTF-8"};
  }
  if (p.contains("message_expiry_interval"))
    props.message_expiry_interval = integer<std::uint32_t>(p, "message_expiry_interval", 0, 0xFFFFFFFF, 0);
  if (p.contains("content_type")) props.content_type = string_of(p, "content_type");
  if (p.contains("response_topic")) {
    props.response_topic = string_of(p, "response_topic");
    if (!mqtt::valid_topic_name(*props.response_topic))
      throw BadRequest{400, "'response_topic' is not a valid topic name"};
  }
  if (p.contains("correlation_data") || p.contains("correlation_data_base64"))
    props.correlation_data = bytes_of(p, "correlation_data", "correlation_data_base64", false);
  if (p.contains("user_properties")) {
    const auto& u = p["user_properties"];
    if (u.is_object()) {
      for (const auto& [k, v] : u.items()) {
        if (!v.is_string()) throw BadRequest{400, "user_properties values must be strings"};
        props.user_properties.emplace_back(k, v.get<std::string>());
      }
    } else if (u.is_array()) {
      for (const auto& pair : u) {
        if (!pair.is_array() || pair.size() != 2 || !pair[0].is_string() || !pair[1].is_string())
          throw BadRequest{400, "user_properties must be [[name, value], ...] or {name: value}"};
        props.user_properties.emplace_back(pair[0].get<std::string>(), pair[1].get<std::string>());
      }
    } else {
      throw BadRequest{400, "user_properties must be [[name, value], ...] or {name: value}"};
    }
  }
  return props;
}

Response publish(broker::Broker& b, const Request& r) {
  const json j = body_object(r);
  only_keys(j, "the publish request", {"topic", "payload", "payload_base64", "qos", "retain", "properties"});
  if (!j.contains("topic")) throw BadRequest{400, "'topic' is required"};
  const std::string topic = string_of(j, "topic");
  const auto& cfg = b.config();
  if (!mqtt::valid_mqtt_utf8(topic) || !mqtt::valid_topic_name(topic))
    throw BadRequest{400, fmt::format("'{}' is not a valid topic name (no wildcards, not empty)", topic)};
  if (topic.starts_with('$')) throw BadRequest{400, "topics starting with '$' are reserved for the broker"};
  if (topic.size() > cfg.max_topic_length ||
      static_cast<std::size_t>(std::count(topic.begin(), topic.end(), '/')) + 1 > cfg.max_topic_levels)
    throw BadRequest{400, "the topic is longer or deeper than max_topic_length / max_topic_levels"};
  std::string payload = bytes_of(j, "payload", "payload_base64", false);
  if (payload.size() + topic.size() > cfg.max_packet_size)
    throw BadRequest{413, fmt::format("the message is larger than max_packet_size ({} bytes)", cfg.max_packet_size)};
  const auto qos = integer<std::uint8_t>(j, "qos", 0, 2, 0);
  if (qos > cfg.max_qos) throw BadRequest{400, fmt::format("qos {} is above max_qos {}", qos, cfg.max_qos)};
  bool retain = false;
  if (j.contains("retain")) {
    if (!j["retain"].is_boolean()) throw BadRequest{400, "'retain' must be true or false"};
    retain = j["retain"].get<bool>();
  }
  if (retain && !cfg.retain_available) throw BadRequest{400, "retained messages are disabled (retain_available)"};
  if (retain && !payload.empty() && b.retained_quota_exceeded(topic))
    throw BadRequest{409, "max_retained_messages reached: the retained message was not stored"};
  mqtt::Properties props;
  if (j.contains("properties")) props = publish_properties(j["properties"], payload);
  auto message = broker::Message::create(topic, payload, qos, retain, props, "");
  const std::size_t delivered = b.publish(message);
  return Response::json(200, {{"topic", topic}, {"qos", qos}, {"retain", retain}, {"delivered", delivered}});
}

json stats_json(broker::Broker& b) {
  auto& s = b.stats();
  using S = broker::Stats;
  auto per_qos = [](const broker::Stats::ByQos& c) {
    return json{{"messages", {S::get(c.messages[0]), S::get(c.messages[1]), S::get(c.messages[2])}},
                {"bytes", {S::get(c.bytes[0]), S::get(c.bytes[1]), S::get(c.bytes[2])}}};
  };
  return json{{"version", PETREL_VERSION},
              {"time", iso_time(std::chrono::system_clock::now())},
              {"clients_connected", S::get(s.clients_connected)},
              {"sessions", b.session_count()},
              {"subscriptions", S::get(s.subscriptions)},
              {"retained", b.retained_count()},
              {"in", per_qos(s.in)},
              {"out", per_qos(s.out)},
              {"dropped", S::get(s.publish_dropped)},
              {"bytes_received", S::get(s.bytes_received)},
              {"bytes_sent", S::get(s.bytes_sent)}};
}

json bridge_json(const BridgeStatus& b) {
  json j{{"name", b.name},
         {"address", b.address},
         {"tls", b.tls},
         {"version", b.version},
         {"client_id", b.client_id},
         {"state", b.state},
         {"connected", b.connected},
         {"since", iso_time(b.since)},
         {"queued", b.queued},
         {"inflight", b.inflight},
         {"forwarded", b.forwarded},
         {"received", b.received},
         {"dropped", b.dropped},
         {"refused", b.refused},
         {"resent", b.resent},
         {"connects", b.connects},
         {"last_error", b.last_error.empty() ? json(nullptr) : json(b.last_error)},
         {"last_error_at", b.last_error.empty() ? json(nullptr) : iso_time(b.last_error_at)}};
  if (b.connected) j["remote_receive_maximum"] = b.remote_receive_maximum;
  return j;
}

json listeners_json(const Operations& ops) {
  const auto now = std::chrono::system_clock::now();
  json out = json::array();
  for (const auto& l : ops.listeners()) out.push_back(listener_json(l, now));
  return out;
}

// Wraps a handler: BadRequest becomes its error answer.
Router::Handler guarded(std::function<Response(const Request&)> fn) {
  return [fn = std::move(fn)](const Request& r) {
    try {
      return fn(r);
    } catch (const BadRequest& e) {
      return Response::error(e.status, e.message);
    }
  };
}

}  // namespace

void add_routes(Router& router, ApiContext ctx) {
  auto& b = ctx.broker;
  const Operations& ops = ctx.ops;
  auto get = [&](std::string pattern, std::function<Response(const Request&)> fn, bool open = false) {
    router.add("GET", std::move(pattern), guarded(std::move(fn)), open);
  };
  auto post = [&](std::string pattern, std::function<Response(const Request&)> fn) {
    router.add("POST", std::move(pattern), guarded(std::move(fn)));
  };
  auto del = [&](std::string pattern, std::function<Response(const Request&)> fn) {
    router.add("DELETE", std::move(pattern), guarded(std::move(fn)));
  };

  // --- health ---------------------------------------------------------
  get("/health", [](const Request&) { return Response::json(200, {{"status", "ok"}}); }, true);
  get("/ready", [&ops](const Request&) {
    const auto r = ops.readiness();
    return Response::json(r.ready ? 200 : 503, {{"ready", r.ready},
                                                {"reasons", r.reasons},
                                                {"listeners", listeners_json(ops)},
                                                {"store", store_json(ops.store())}});
  }, true);

  // --- metrics --------------------------------------------------------
  get("/metrics", [ctx](const Request&) {
    Response r;
    r.content_type = "text/plain; version=0.0.4; charset=utf-8";
    r.body = render_metrics(ctx);
    return r;
  });

  // --- clients and sessions -------------------------------------------
  get("/api/v1/stats", [&b](const Request&) { return Response::json(200, stats_json(b)); });
  get("/api/v1/clients", [&b](const Request& r) {
    auto q = session_query(r);
    q.online = true;
    return Response::json(200, sessions_page(b, q));
  });
  get("/api/v1/clients/{id}", [&b](const Request& r) {
    const auto& id = r.params.at("id");
    auto s = b.find_session(id);
    if (!s || !s->online)
      throw BadRequest{404, fmt::format("no client '{}' is connected{}", id, s ? " (its session is offline)" : "")};
    return Response::json(200, session_detail(b, *s));
  });
  del("/api/v1/clients/{id}", [&b](const Request& r) {
    const auto& id = r.params.at("id");
    auto s = b.find_session(id);
    if (!s) throw BadRequest{404, fmt::format("no client '{}'", id)};
    // v5 clients get DISCONNECT 0x98 (Administrative action); the session
    // stays as its expiry says.
    if (!b.disconnect_client(id, mqtt::ReasonCode::AdministrativeAction))
      throw BadRequest{409, fmt::format("client '{}' is not connected (its session is offline)", id)};
    return Response::json(202, {{"client_id", id}, {"disconnecting", true}});
  });
  get("/api/v1/sessions", [&b](const Request& r) {
    auto q = session_query(r);
    q.online = query_bool(r, "online");
    return Response::json(200, sessions_page(b, q));
  });
  get("/api/v1/sessions/{id}", [&b](const Request& r) {
    const auto& id = r.params.at("id");
    auto s = b.find_session(id);
    if (!s) throw BadRequest{404, fmt::format("no session '{}'", id)};
    return Response::json(200, session_detail(b, *s));
  });
  del("/api/v1/sessions/{id}", [&b](const Request& r) {
    const auto& id = r.params.at("id");
    if (!b.delete_session(id)) throw BadRequest{404, fmt::format("no session '{}'", id)};
    return Response::json(200, {{"client_id", id}, {"deleted", true}});
  });
  get("/api/v1/subscriptions", [&b](const Request& r) {
    broker::SubscriptionQuery q;
    q.limit = page_limit(r);
    q.after_client_id = query(r, "after").value_or("");
    q.filter_prefix = query(r, "filter_prefix").value_or("");
    json items = json::array();
    const auto subs = b.list_subscriptions(q);
    for (const auto& s : subs) items.push_back(subscription_json(s, true));
    // A session's subscriptions are never split across pages: the next page
    // starts after the last session listed.
    const bool more = subs.size() >= q.limit;
    return Response::json(200, json{{"items", std::move(items)},
                                    {"next", more ? json(subs.back().client_id) : json(nullptr)}});
  });

  // --- retained messages ----------------------------------------------
  get("/api/v1/retained", [&b](const Request& r) {
    const std::string filter = query(r, "filter").value_or("#");
    const bool shared = mqtt::parse_shared(filter).has_value();
    if (shared || !mqtt::valid_topic_filter(filter))
      throw BadRequest{400, fmt::format("'{}' is not a valid topic filter", filter)};
    const auto limit = page_limit(r);
    json items = json::array();
    std::string last;
    for (const auto& m : b.retained_messages(filter, limit, query(r, "after").value_or(""))) {
      items.push_back(message_json(*m));
      last = std::string(m->topic());
    }
    return Response::json(200, page(std::move(items), limit, last));
  });
  auto one_retained = [&b](const Request& r) -> broker::MessagePtr {
    const auto& topic = r.params.at("topic");
    if (!mqtt::valid_topic_name(topic)) throw BadRequest{400, fmt::format("'{}' is not a valid topic name", topic)};
    auto found = b.retained_messages(topic, 1);
    if (found.empty() || found.front()->topic() != topic)
      throw BadRequest{404, fmt::format("no retained message on '{}'", topic)};
    return found.front();
  };
  get("/api/v1/retained/{topic*}", [one_retained](const Request& r) {
    return Response::json(200, message_json(*one_retained(r)));
  });
  del("/api/v1/retained/{topic*}", [&b, one_retained](const Request& r) {
    const auto m = one_retained(r);
    if (!b.delete_retained(m->topic())) throw BadRequest{404, fmt::format("no retained message on '{}'", m->topic())};
    return Response::json(200, {{"topic", m->topic()}, {"deleted", true}});
  });
  post("/api/v1/publish", [&b](const Request& r) { return publish(b, r); });

  // --- bridges ----------------------------------------------------------
  get("/api/v1/bridges", [&ops](const Request&) {
    json items = json::array();
    if (ops.bridges)
      for (const auto& br : ops.bridges()) items.push_back(bridge_json(br));
    return Response::json(200, {{"items", items}});
  });
  get("/api/v1/bridges/{name}", [&ops](const Request& r) {
    const auto& name = r.params.at("name");
    if (ops.bridges)
      for (const auto& br : ops.bridges())
        if (br.name == name) return Response::json(200, bridge_json(br));
    throw BadRequest{404, fmt::format("no bridge '{}'", name)};
  });

  // --- listeners, reloads, configuration ------------------------------
  get("/api/v1/listeners", [&ops](const Request&) { return Response::json(200, {{"items", listeners_json(ops)}}); });
  get("/api/v1/listeners/{name}", [&ops](const Request& r) {
    const auto now = std::chrono::system_clock::now();
    for (const auto& l : ops.listeners())
      if (l.name == r.params.at("name")) return Response::json(200, listener_json(l, now));
    throw BadRequest{404, fmt::format("no listener '{}'", r.params.at("name"))};
  });
  post("/api/v1/listeners/{name}/reload", [&ops](const Request& r) {
    const auto& name = r.params.at("name");
    std::string error;
    switch (ops.reload_listener(name, error)) {
      case ListenerReload::NoSuchListener: throw BadRequest{404, fmt::format("no listener '{}'", name)};
      case ListenerReload::NotTls:
        throw BadRequest{409, fmt::format("listener '{}' has no certificates to reload (not tls or wss)", name)};
      case ListenerReload::Failed:
        throw BadRequest{409, fmt::format("TLS reload failed, keeping the previous certificates: {}", error)};
      case ListenerReload::Reloaded: break;
    }
    const auto now = std::chrono::system_clock::now();
    for (const auto& l : ops.listeners())
      if (l.name == name) return Response::json(200, {{"reloaded", true}, {"listener", listener_json(l, now)}});
    return Response::json(200, {{"reloaded", true}});
  });
  post("/api/v1/reload", [&ops](const Request&) {
    json results = json::array();
    bool all = true;
    for (const auto& r : ops.reload_all()) {
      results.push_back({{"target", r.target}, {"ok", r.ok}, {"error", r.ok ? json(nullptr) : json(r.error)}});
      all = all && r.ok;
    }
    return Response::json(200, {{"reloaded", all}, {"results", results}});
  });
  get("/api/v1/config", [&ops](const Request&) { return Response::json(200, ops.effective_config()); });

  // --- the dashboard --------------------------------------------------
  for (const auto& asset : dashboard_assets()) {
    router.add("GET", std::string(asset.path), [asset](const Request&) {
      Response r;
      r.content_type = std::string(asset.content_type);
      r.body = std::string(asset.body);
      r.headers.emplace_back("Content-Security-Policy",
                             "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'");
      return r;
    }, true);
  }
}

}  // namespace petrel::http
