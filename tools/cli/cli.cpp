#include "cli.hpp"

#include <fmt/format.h>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <thread>

#include "client/sync_client.hpp"
#include "mqtt/utf8.hpp"

namespace petrel::cli {
namespace {

using client::ClientError;

struct ConnectionFlags {
  std::string host = "localhost";
  std::uint16_t port = 0;
  std::string client_id;
  std::optional<std::string> username;
  std::optional<std::string> password;
  std::uint16_t keep_alive = 60;
  std::string protocol = "5";
  bool no_clean = false;
  std::uint32_t session_expiry = 0;
  bool tls = false;
  std::string ca_file, cert_file, key_file, server_name;
  bool insecure = false;
  std::string will_topic, will_payload;
  int will_qos = 0;
  bool will_retain = false;
  double timeout = 10;
};

void add_connection_flags(CLI::App* cmd, ConnectionFlags& f) {
  cmd->add_option("-H,--host", f.host, "Broker host name or address")->capture_default_str();
  cmd->add_option("-p,--port", f.port, "Broker port (default 1883, or 8883 with TLS)");
  cmd->add_option("-i,--id", f.client_id, "Client identifier (default: assigned by the broker)");
  cmd->add_option("-u,--username", f.username, "User name");
  cmd->add_option("-P,--password", f.password, "Password");
  cmd->add_option("-k,--keepalive", f.keep_alive, "Keep alive in seconds")->capture_default_str();
  cmd->add_option("-V,--protocol", f.protocol, "MQTT version: 5 or 3.1.1")
      ->check(CLI::IsMember({"5", "5.0", "mqttv5", "3.1.1", "311", "mqttv311"}))
      ->capture_default_str();
  cmd->add_flag("-c,--no-clean", f.no_clean, "Resume the session (clean start / clean session = 0)");
  cmd->add_option("-x,--session-expiry", f.session_expiry, "Session expiry interval in seconds (MQTT 5)");
  cmd->add_flag("--tls", f.tls, "Use TLS (implied by --cafile, --cert and --insecure)");
  cmd->add_option("--cafile", f.ca_file, "CA certificates to verify the broker (default: the system's)");
  cmd->add_option("--cert", f.cert_file, "Client certificate (PEM)");
  cmd->add_option("--key", f.key_file, "Client private key (PEM)");
  cmd->add_option("--tls-server-name", f.server_name, "Name to verify in the broker's certificate (default: host)");
  cmd->add_flag("--insecure", f.insecure, "Do not verify the broker's certificate (prints a warning)");
  cmd->add_option("--will-topic", f.will_topic, "Will topic");
  cmd->add_option("--will-payload", f.will_payload, "Will payload");
  cmd->add_option("--will-qos", f.will_qos, "Will QoS")->check(CLI::Range(0, 2));
  cmd->add_flag("--will-retain", f.will_retain, "Retain the will");
  cmd->add_option("--timeout", f.timeout, "Seconds to wait for the broker at each step")->capture_default_str();
}

client::ClientOptions to_options(const ConnectionFlags& f) {
  client::ClientOptions o;
  o.host = f.host;
  o.tls.enabled = f.tls || !f.ca_file.empty() || !f.cert_file.empty() || f.insecure;
  o.port = f.port ? f.port : (o.tls.enabled ? 8883 : 1883);
  o.version =
      (f.protocol == "5" || f.protocol == "5.0" || f.protocol == "mqttv5") ? mqtt::Version::V5 : mqtt::Version::V311;
  o.client_id = f.client_id;
  o.username = f.username;
  o.password = f.password;
  o.keep_alive = f.keep_alive;
  o.clean_start = !f.no_clean;
  o.session_expiry = f.session_expiry;
  o.tls.ca_file = f.ca_file;
  o.tls.cert_file = f.cert_file;
  o.tls.key_file = f.key_file;
  o.tls.server_name = f.server_name;
  o.tls.insecure = f.insecure;
  if (f.insecure) std::fprintf(stderr, "warning: --insecure: the broker's certificate is not verified\n");
  if (!f.will_topic.empty()) {
    mqtt::Will w;
    w.topic = f.will_topic;
    w.payload = f.will_payload;
    w.qos = static_cast<std::uint8_t>(f.will_qos);
    w.retain = f.will_retain;
    o.will = w;
  }
  o.timeout = std::chrono::milliseconds(static_cast<long>(f.timeout * 1000));
  return o;
}

int exit_code_for(const ClientError& e) {
  switch (e.kind()) {
    case ClientError::Kind::Connect: return 1;
    case ClientError::Kind::Timeout: return 3;
    case ClientError::Kind::Refused: return 4;
    case ClientError::Kind::Protocol: return 1;
  }
  return 1;
}

// ------------------------------------------------------------------ pub --

struct PubFlags {
  ConnectionFlags conn;
  std::string topic;
  std::optional<std::string> message;
  std::string file;
  bool whole_stdin = false;
  bool stdin_lines = false;
  bool null_message = false;
  int qos = 0;
  bool retain = false;
  unsigned repeat = 1;
  double interval = 0;
  std::vector<std::string> user_properties;
  std::optional<std::string> content_type, response_topic, correlation_data;
  std::optional<std::uint32_t> message_expiry;
  bool utf8 = false;
};

int run_pub(const PubFlags& f) {
  const auto* name = "petrel pub";
  std::vector<std::string> payloads;
  if (f.message) {
    payloads.push_back(*f.message);
  } else if (!f.file.empty()) {
    std::ifstream in(f.file, std::ios::binary);
    if (!in) {
      std::fprintf(stderr, "%s: cannot read '%s'\n", name, f.file.c_str());
      return 2;
    }
    payloads.emplace_back((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  } else if (f.whole_stdin) {
    payloads.emplace_back((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
  } else if (f.stdin_lines) {
    for (std::string line; std::getline(std::cin, line);) payloads.push_back(line);
  } else if (f.null_message) {
    payloads.emplace_back();
  } else {
    std::fprintf(stderr, "%s: give the message with -m, -f, -s, -l or -n\n", name);
    return 2;
  }
  if (f.user_properties.size() % 2) {
    std::fprintf(stderr, "%s: --user-property takes a key and a value\n", name);
    return 2;
  }
  client::SyncClient c(to_options(f.conn));
  try {
    c.connect();
    for (unsigned i = 0; i < f.repeat; ++i) {
      for (const auto& payload : payloads) {
        mqtt::Publish p;
        p.topic = f.topic;
        p.payload = payload;
        p.qos = static_cast<std::uint8_t>(f.qos);
        p.retain = f.retain;
        if (c.version() == mqtt::Version::V5) {
          for (std::size_t k = 0; k + 1 < f.user_properties.size(); k += 2)
            p.properties.user_properties.emplace_back(f.user_properties[k], f.user_properties[k + 1]);
          p.properties.content_type = f.content_type;
          p.properties.response_topic = f.response_topic;
          p.properties.correlation_data = f.correlation_data;
          p.properties.message_expiry_interval = f.message_expiry;
          if (f.utf8) p.properties.payload_format_indicator = 1;
        }
        const auto rc = c.publish(std::move(p));
        if (static_cast<unsigned>(rc) >= 0x80) {
          std::fprintf(stderr, "%s: the broker refused the message: %s (0x%02X)\n", name,
                       std::string(mqtt::to_string(rc)).c_str(), static_cast<unsigned>(rc));
          c.disconnect();
          return 5;
        }
      }
      if (f.interval > 0 && i + 1 < f.repeat)
        std::this_thread::sleep_for(std::chrono::milliseconds(static_cast<long>(f.interval * 1000)));
    }
    c.disconnect();
  } catch (const ClientError& e) {
    std::fprintf(stderr, "%s: %s\n", name, e.what());
    return exit_code_for(e);
  }
  return 0;
}

// ------------------------------------------------------------------ sub --

struct SubFlags {
  ConnectionFlags conn;
  std::vector<std::string> topics;
  int qos = 0;
  bool verbose = false;
  bool json = false;
  unsigned count = 0;
  double wait = 0;
  bool no_local = false;
  bool retain_as_published = false;
  int retain_handling = 0;
  std::uint32_t subscription_id = 0;
};

std::string json_line(const mqtt::Publish& m) {
  nlohmann::json j;
  j["topic"] = m.topic;
  j["qos"] = m.qos;
  j["retain"] = m.retain;
  if (mqtt::valid_utf8(m.payload)) {
    j["payload"] = m.payload;
  } else {
    std::string hex;
    for (unsigned char ch : m.payload) hex += fmt::format("{:02x}", ch);
    j["payload_hex"] = hex;
  }
  const auto& p = m.properties;
  nlohmann::json props = nlohmann::json::object();
  if (p.payload_format_indicator) props["payload_format_indicator"] = *p.payload_format_indicator;
  if (p.message_expiry_interval) props["message_expiry_interval"] = *p.message_expiry_interval;
  if (p.content_type) props["content_type"] = *p.content_type;
  if (p.response_topic) props["response_topic"] = *p.response_topic;
  if (p.correlation_data) props["correlation_data"] = *p.correlation_data;
  if (!p.subscription_identifiers.empty()) props["subscription_identifiers"] = p.subscription_identifiers;
  if (!p.user_properties.empty()) {
    nlohmann::json ups = nlohmann::json::array();
    for (const auto& [k, v] : p.user_properties) ups.push_back({k, v});
    props["user_properties"] = ups;
  }
  j["properties"] = props;
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

int run_sub(const SubFlags& f) {
  const auto* name = "petrel sub";
  client::SyncClient c(to_options(f.conn));
  try {
    c.connect();
    std::vector<mqtt::Subscription> subs;
    for (const auto& t : f.topics) {
      mqtt::Subscription s;
      s.filter = t;
      s.options.qos = static_cast<std::uint8_t>(f.qos);
      s.options.no_local = f.no_local;
      s.options.retain_as_published = f.retain_as_published;
      s.options.retain_handling = static_cast<std::uint8_t>(f.retain_handling);
      subs.push_back(s);
    }
    const auto ack = c.subscribe(subs, c.version() == mqtt::Version::V5 ? f.subscription_id : 0);
    for (std::size_t i = 0; i < ack.reasons.size() && i < f.topics.size(); ++i) {
      const auto rc = static_cast<unsigned>(ack.reasons[i]);
      if (rc >= 0x80) {
        std::fprintf(
            stderr, "%s: subscription to '%s' refused: %s (0x%02X)\n", name, f.topics[i].c_str(),
            c.version() == mqtt::Version::V5 ? std::string(mqtt::to_string(ack.reasons[i])).c_str() : "failure", rc);
        c.disconnect();
        return 5;
      }
    }
    const auto end =
        f.wait > 0 ? std::chrono::steady_clock::now() + std::chrono::milliseconds(static_cast<long>(f.wait * 1000))
                   : std::chrono::steady_clock::time_point::max();
    unsigned received = 0;
    while (f.count == 0 || received < f.count) {
      const auto now = std::chrono::steady_clock::now();
      if (now >= end) {
        c.disconnect();
        return 3;
      }
      const auto slice = std::min<std::chrono::steady_clock::duration>(end - now, std::chrono::seconds(3600));
      auto m = c.receive(std::chrono::duration_cast<std::chrono::milliseconds>(slice));
      if (!m) continue;
      ++received;
      if (f.json) {
        std::printf("%s\n", json_line(*m).c_str());
      } else if (f.verbose) {
        std::printf("%s %s\n", m->topic.c_str(), m->payload.c_str());
      } else {
        std::fwrite(m->payload.data(), 1, m->payload.size(), stdout);
        std::fputc('\n', stdout);
      }
      std::fflush(stdout);
    }
    c.disconnect();
  } catch (const ClientError& e) {
    std::fprintf(stderr, "%s: %s\n", name, e.what());
    return exit_code_for(e);
  }
  return 0;
}

}  // namespace

void add_commands(CLI::App& app, int& exit_code) {
  auto pub_flags = std::make_shared<PubFlags>();
  auto* pub = app.add_subcommand("pub", "Publish messages (MQTT 3.1.1 or 5, TCP or TLS)");
  add_connection_flags(pub, pub_flags->conn);
  pub->add_option("-t,--topic", pub_flags->topic, "Topic")->required();
  auto* m = pub->add_option("-m,--message", pub_flags->message, "Message payload");
  auto* fl = pub->add_option("-f,--file", pub_flags->file, "Send the file's contents as the payload");
  auto* s = pub->add_flag("-s,--stdin", pub_flags->whole_stdin, "Send standard input as one message");
  auto* l = pub->add_flag("-l,--stdin-lines", pub_flags->stdin_lines, "Send each line of standard input");
  auto* n = pub->add_flag("-n,--null-message", pub_flags->null_message, "Send an empty payload");
  m->excludes(fl, s, l, n);
  fl->excludes(s, l, n);
  s->excludes(l, n);
  l->excludes(n);
  pub->add_option("-q,--qos", pub_flags->qos, "QoS")->check(CLI::Range(0, 2))->capture_default_str();
  pub->add_flag("-r,--retain", pub_flags->retain, "Retain the message");
  pub->add_option("--repeat", pub_flags->repeat, "Send the message(s) this many times")->capture_default_str();
  pub->add_option("--interval", pub_flags->interval, "Seconds between repeats");
  pub->add_option("-D,--user-property", pub_flags->user_properties, "User property KEY VALUE (MQTT 5; repeatable)")
      ->expected(2, -1)
      ->allow_extra_args(false);
  pub->add_option("--content-type", pub_flags->content_type, "Content Type (MQTT 5)");
  pub->add_option("--response-topic", pub_flags->response_topic, "Response Topic (MQTT 5)");
  pub->add_option("--correlation-data", pub_flags->correlation_data, "Correlation Data (MQTT 5)");
  pub->add_option("-e,--message-expiry", pub_flags->message_expiry, "Message Expiry Interval in seconds (MQTT 5)");
  pub->add_flag("--utf8", pub_flags->utf8, "Mark the payload as UTF-8 (Payload Format Indicator, MQTT 5)");
  pub->callback([pub_flags, &exit_code] { exit_code = run_pub(*pub_flags); });

  auto sub_flags = std::make_shared<SubFlags>();
  auto* sub = app.add_subcommand("sub", "Subscribe and print messages (MQTT 3.1.1 or 5, TCP or TLS)");
  add_connection_flags(sub, sub_flags->conn);
  sub->add_option("-t,--topic", sub_flags->topics, "Topic filter (repeatable)")->required();
  sub->add_option("-q,--qos", sub_flags->qos, "Maximum QoS")->check(CLI::Range(0, 2))->capture_default_str();
  sub->add_flag("-v,--verbose", sub_flags->verbose, "Print topic and payload");
  sub->add_flag("-j,--json", sub_flags->json, "Print one JSON object per message (topic, QoS, retain, properties)");
  sub->add_option("-C,--count", sub_flags->count, "Exit after this many messages");
  sub->add_option("-W,--wait", sub_flags->wait, "Exit (status 3) after this many seconds without -C messages");
  sub->add_flag("--no-local", sub_flags->no_local, "Do not receive own messages (MQTT 5)");
  sub->add_flag("--retain-as-published", sub_flags->retain_as_published, "Keep the publisher's retain flag (MQTT 5)");
  sub->add_option("--retain-handling", sub_flags->retain_handling,
                  "0: send retained, 1: only if new, 2: never (MQTT 5)")
      ->check(CLI::Range(0, 2));
  sub->add_option("--subscription-id", sub_flags->subscription_id, "Subscription Identifier (MQTT 5)");
  sub->callback([sub_flags, &exit_code] { exit_code = run_sub(*sub_flags); });
}

}  // namespace petrel::cli
