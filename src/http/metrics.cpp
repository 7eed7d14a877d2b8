// /metrics: every family petrel exports, in one place (docs/operations.md
// lists them with what to alert on). Counters end in _total, units are base
// units (seconds, bytes), label values come from the broker (listener names,
// reasons). The process families use the standard process_* names, so that
// existing dashboards find them.
#include <fmt/format.h>

#include "http/api.hpp"
#include "http/prometheus.hpp"
#include "http/server.hpp"
#include "mqtt/packets.hpp"

namespace petrel::http {

namespace {

double seconds_since_epoch(TimePoint t) { return std::chrono::duration<double>(t.time_since_epoch()).count(); }

}  // namespace

std::string render_metrics(const ApiContext& ctx) {
  using S = broker::Stats;
  PrometheusWriter w;
  auto& b = ctx.broker;
  auto& s = b.stats();
  const auto totals = b.session_totals();
  const char* qos_name[] = {"0", "1", "2"};

  w.family("petrel_build_info", "gauge", "petrel's version (the value is always 1)");
  w.sample({{"version", PETREL_VERSION}}, std::uint64_t{1});

  // --- clients and sessions
  w.family("petrel_connections", "gauge", "MQTT clients connected, by listener and protocol version");
  for (const auto& [key, n] : totals.connected)
    w.sample({{"listener", key.first}, {"protocol", mqtt::to_string(key.second)}}, std::uint64_t{n});
  w.family("petrel_sessions", "gauge", "Sessions, online (a client is connected) or offline (kept for their expiry)");
  w.sample({{"state", "online"}}, std::uint64_t{totals.online});
  w.sample({{"state", "offline"}}, std::uint64_t{totals.offline});
  w.family("petrel_connects_total", "counter", "CONNECTs by result: accepted, or refused by access control");
  w.sample({{"result", "accepted"}}, S::get(s.connects));
  w.sample({{"result", "not_authorized"}}, S::get(s.connect_denied));
  w.family("petrel_disconnects_total", "counter",
           "Connections that left their session: normal (DISCONNECT without will), abnormal (connection lost, "
           "keep-alive timeout, protocol error, DISCONNECT with will, kicked by the server), taken_over");
  w.sample({{"reason", "normal"}}, S::get(s.disconnects_normal));
  w.sample({{"reason", "abnormal"}}, S::get(s.disconnects_abnormal));
  w.sample({{"reason", "taken_over"}}, S::get(s.disconnects_taken_over));
  w.family("petrel_administrative_disconnects_total", "counter",
           "Clients disconnected by an operator (HTTP API; v5 clients get DISCONNECT 0x98)");
  w.sample({}, S::get(s.disconnects_administrative));
  w.family("petrel_protocol_errors_total", "counter",
           "Connections closed or CONNECTs refused for a protocol violation or a refused CONNECT");
  w.sample({}, S::get(s.protocol_errors));
  w.family("petrel_auth_refusals_total", "counter", "Refused by access control, by action");
  w.sample({{"action", "connect"}}, S::get(s.connect_denied));
  w.sample({{"action", "publish"}}, S::get(s.publish_denied));
  w.sample({{"action", "subscribe"}}, S::get(s.subscribe_denied));

  // --- messages
  w.family("petrel_messages_in_total", "counter",
           "Application messages routed ($SYS excluded: from clients, wills and the HTTP API), by QoS");
  for (int q = 0; q < 3; ++q) w.sample({{"qos", qos_name[q]}}, S::get(s.in.messages[q]));
  w.family("petrel_messages_out_total", "counter",
           "Deliveries queued to subscribers' sessions ($SYS excluded), by the QoS of the delivery");
  for (int q = 0; q < 3; ++q) w.sample({{"qos", qos_name[q]}}, S::get(s.out.messages[q]));
  w.family("petrel_message_bytes_in_total", "counter", "Topic and payload bytes of the messages in, by QoS");
  for (int q = 0; q < 3; ++q) w.sample({{"qos", qos_name[q]}}, S::get(s.in.bytes[q]));
  w.family("petrel_message_bytes_out_total", "counter", "Topic and payload bytes of the deliveries out, by QoS");
  for (int q = 0; q < 3; ++q) w.sample({{"qos", qos_name[q]}}, S::get(s.out.bytes[q]));
  w.family("petrel_messages_dropped_total", "counter",
           "Messages dropped for one subscriber, by cause: queue_full (max_queued_messages/bytes), "
           "expired_or_too_large (expired, or above the client's Maximum Packet Size, when dequeued)");
  const auto dropped = S::get(s.publish_dropped), full = S::get(s.dropped_queue_full);
  w.sample({{"cause", "queue_full"}}, full);
  w.sample({{"cause", "expired_or_too_large"}}, dropped > full ? dropped - full : 0);
  w.family("petrel_publish_packets_received_total", "counter", "PUBLISH packets received from clients");
  w.sample({}, S::get(s.publish_received));
  w.family("petrel_publish_packets_sent_total", "counter", "PUBLISH packets sent to clients (resends included)");
  w.sample({}, S::get(s.publish_sent));
  w.family("petrel_packets_received_total", "counter", "MQTT packets received");
  w.sample({}, S::get(s.messages_received));
  w.family("petrel_packets_sent_total", "counter", "MQTT packets sent");
  w.sample({}, S::get(s.messages_sent));
  w.family("petrel_network_bytes_received_total", "counter", "Bytes read from MQTT connections");
  w.sample({}, S::get(s.bytes_received));
  w.family("petrel_network_bytes_sent_total", "counter", "Bytes written to MQTT connections");
  w.sample({}, S::get(s.bytes_sent));
  w.family("petrel_queued_messages", "gauge", "Messages queued in sessions, waiting to be sent");
  w.sample({}, totals.queued);
  w.family("petrel_queued_bytes", "gauge", "Topic and payload bytes queued in sessions");
  w.sample({}, totals.queued_bytes);
  w.family("petrel_inflight_messages", "gauge", "Outbound QoS 1/2 messages awaiting acknowledgement");
  w.sample({}, totals.inflight);
  w.family("petrel_inbound_qos2_messages", "gauge", "Inbound QoS 2 messages awaiting PUBREL");
  w.sample({}, totals.inbound_qos2);
  w.family("petrel_subscriptions", "gauge", "Subscriptions, all sessions");
  w.sample({}, S::get(s.subscriptions));
  w.family("petrel_retained_messages", "gauge", "Retained messages ($SYS included)");
  w.sample({}, std::uint64_t{b.retained_count()});
  w.family("petrel_internal_errors_total", "counter",
           "Exceptions contained at a connection's or a loop's boundary (each is a bug report)");
  w.sample({}, S::get(s.internal_errors));

  // --- listeners
  const auto listeners = ctx.ops.listeners();
  const auto now = std::chrono::system_clock::now();
  w.family("petrel_listener_accepting", "gauge", "1 while the listener accepts connections, 0 otherwise");
  for (const auto& l : listeners) w.sample({{"listener", l.name}, {"type", l.type}}, l.state == "accepting" ? 1.0 : 0.0);
  w.family("petrel_listener_connections", "gauge", "Open connections of the listener (before and after CONNECT)");
  for (const auto& l : listeners) w.sample({{"listener", l.name}}, l.connections);
  w.family("petrel_listener_accepts_total", "counter", "Connections accepted by the listener");
  for (const auto& l : listeners) w.sample({{"listener", l.name}}, l.accepts.total);
  w.family("petrel_listener_refusals_total", "counter",
           "Connections closed at once by a limit (max_connections, too_many_handshakes)");
  for (const auto& l : listeners)
    for (const auto& f : l.failures)
      if (f.kind == "refusal") w.sample({{"listener", l.name}, {"reason", f.reason}}, f.count.total);
  w.family("petrel_handshake_failures_total", "counter",
           "TLS handshakes and WebSocket upgrades that failed, by listener and reason");
  for (const auto& l : listeners)
    for (const auto& f : l.failures)
      if (f.kind == "handshake") w.sample({{"listener", l.name}, {"reason", f.reason}}, f.count.total);
  w.family("petrel_connect_timeouts_total", "counter", "Connections closed for not completing CONNECT in time");
  for (const auto& l : listeners)
    for (const auto& f : l.failures)
      if (f.kind == "timeout") w.sample({{"listener", l.name}, {"reason", f.reason}}, f.count.total);
  w.family("petrel_tls_handshakes_total", "counter", "TLS handshakes completed");
  for (const auto& l : listeners)
    if (l.certificate) w.sample({{"listener", l.name}}, l.handshakes_completed);

  // --- certificates
  std::vector<std::pair<std::string, CertificateStatus>> certs;
  for (const auto& l : listeners)
    if (l.certificate) certs.emplace_back(l.name, *l.certificate);
  if (ctx.ops.http_certificate)
    if (auto c = ctx.ops.http_certificate()) certs.emplace_back("http", *c);
  w.family("petrel_tls_certificate_expiry_timestamp_seconds", "gauge",
           "When the server certificate in use expires (Unix time); alert on it minus time()");
  for (const auto& [name, c] : certs)
    w.sample({{"listener", name}, {"subject", c.subject}}, seconds_since_epoch(c.not_after));
  w.family("petrel_tls_certificate_loaded_timestamp_seconds", "gauge", "When the certificate in use was (re)loaded");
  for (const auto& [name, c] : certs) w.sample({{"listener", name}}, seconds_since_epoch(c.loaded_at));
  w.family("petrel_tls_certificate_reload_failed", "gauge", "1 if the last reload of the listener's certificates failed");
  for (const auto& [name, c] : certs) w.sample({{"listener", name}}, c.last_reload_error ? 1.0 : 0.0);
  (void)now;

  // --- store
  const auto store = ctx.ops.store();
  w.family("petrel_store_writable", "gauge", "1 while the store commits, 0 while its commits fail (retried)");
  w.sample({{"type", store.type}}, store.writable ? 1.0 : 0.0);
  w.family("petrel_store_commits_total", "counter", "Transactions the store committed");
  w.sample({}, store.commits);
  w.family("petrel_store_errors_total", "counter", "Failed store commits (each retried)");
  w.sample({}, store.errors);
  w.family("petrel_store_backlog", "gauge", "Changes reported to the store and not committed yet");
  w.sample({}, store.backlog);
  if (store.commit_latency) {
    const auto& h = *store.commit_latency;
    w.family("petrel_store_commit_duration_seconds", "histogram", "Time a store commit takes (fsync included)");
    w.histogram({}, h.bounds, h.buckets, h.sum);
  }

  // --- the HTTP listener itself
  const auto& hs = ctx.stats;
  w.family("petrel_http_connections", "gauge", "Open connections of the HTTP listener");
  w.sample({}, hs.connections_open);
  w.family("petrel_http_refusals_total", "counter", "HTTP connections refused over [http] max_connections (429)");
  w.sample({}, hs.connections_refused);
  w.family("petrel_http_timeouts_total", "counter", "HTTP connections closed for missing a header/body deadline");
  w.sample({}, hs.timeouts);
  w.family("petrel_http_responses_total", "counter", "HTTP responses, by status code");
  for (const auto& [code, n] : hs.responses) w.sample({{"code", std::to_string(code)}}, n);

  // --- bridges (docs/bridges.md)
  if (ctx.ops.bridges) {
    const auto bridges = ctx.ops.bridges();
    if (!bridges.empty()) {
      w.family("petrel_bridge_connected", "gauge", "1 while the bridge is connected to its remote broker");
      for (const auto& b : bridges) w.sample({{"bridge", b.name}}, std::uint64_t{b.connected ? 1u : 0u});
      w.family("petrel_bridge_queued_messages", "gauge",
               "Messages in the bridge's offline queue, waiting to be sent to the remote");
      for (const auto& b : bridges) w.sample({{"bridge", b.name}}, b.queued);
      w.family("petrel_bridge_inflight_messages", "gauge", "QoS 1/2 messages sent to the remote, not yet acknowledged");
      for (const auto& b : bridges) w.sample({{"bridge", b.name}}, b.inflight);
      w.family("petrel_bridge_forwarded_total", "counter",
               "Messages forwarded to the remote (QoS 1/2: acknowledged by it; QoS 0: written)");
      for (const auto& b : bridges) w.sample({{"bridge", b.name}}, b.forwarded);
      w.family("petrel_bridge_received_total", "counter", "Messages received from the remote and published locally");
      for (const auto& b : bridges) w.sample({{"bridge", b.name}}, b.received);
      w.family("petrel_bridge_dropped_total", "counter",
               "Messages not forwarded, by cause: refused (QoS 1/2 refused to the publisher, queue full), "
               "other (QoS 0 evicted or not queued with the queue full, expired, too large for the remote)");
      for (const auto& b : bridges) {
        w.sample({{"bridge", b.name}, {"cause", "refused"}}, b.refused);
        w.sample({{"bridge", b.name}, {"cause", "other"}}, b.dropped > b.refused ? b.dropped - b.refused : 0);
      }
      w.family("petrel_bridge_resent_total", "counter", "PUBLISH and PUBREL packets sent again after a reconnect");
      for (const auto& b : bridges) w.sample({{"bridge", b.name}}, b.resent);
      w.family("petrel_bridge_connects_total", "counter", "Connections to the remote accepted (CONNACK success)");
      for (const auto& b : bridges) w.sample({{"bridge", b.name}}, b.connects);
    }
  }

  // --- the process
  const auto p = ctx.ops.process();
  w.family("process_cpu_seconds_total", "counter", "User and system CPU time of the process");
  w.sample({}, p.cpu_seconds);
  w.family("process_resident_memory_bytes", "gauge", "Resident memory of the process");
  w.sample({}, p.resident_bytes);
  w.family("process_virtual_memory_bytes", "gauge", "Virtual memory of the process");
  w.sample({}, p.virtual_bytes);
  w.family("process_open_fds", "gauge", "Open file descriptors");
  w.sample({}, p.open_fds);
  w.family("process_max_fds", "gauge", "The file descriptor limit (RLIMIT_NOFILE)");
  w.sample({}, p.max_fds);
  w.family("process_start_time_seconds", "gauge", "When the process started (Unix time)");
  w.sample({}, seconds_since_epoch(p.started_at));
  return w.take();
}

}  // namespace petrel::http
