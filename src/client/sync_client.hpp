// client::SyncClient: a small blocking MQTT client (3.1.1 and 5.0, TCP or
// TLS) built on petrel's codec, for the CLI's pub and sub. One connection,
// one thread; every wait has a deadline. Failures throw ClientError with a
// sentence an operator can act on ("cannot resolve host 'x'", "connection
// refused", "TLS certificate verification failed: ...", "broker refused the
// connection: not authorized (0x87)").
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "mqtt/packets.hpp"

namespace petrel::client {

class ClientError : public std::runtime_error {
 public:
  enum class Kind { Connect, Refused, Protocol, Timeout };
  ClientError(Kind kind, const std::string& what) : std::runtime_error(what), kind_(kind) {}
  Kind kind() const { return kind_; }

 private:
  Kind kind_;
};

struct TlsOptions {
  bool enabled = false;
  std::string ca_file;  // empty: the system's default CA paths
  std::string cert_file;
  std::string key_file;
  std::string server_name;  // SNI and verification name; default: the host
  bool insecure = false;    // skip certificate verification
};

struct ClientOptions {
  std::string host = "localhost";
  std::uint16_t port = 1883;
  mqtt::Version version = mqtt::Version::V311;
  std::string client_id;
  std::optional<std::string> username;
  std::optional<std::string> password;
  std::uint16_t keep_alive = 60;
  bool clean_start = true;
  std::uint32_t session_expiry = 0;
  std::optional<mqtt::Will> will;
  TlsOptions tls;
  std::chrono::milliseconds timeout{10'000};  // for connect and each acknowledgement
};

class SyncClient {
 public:
  explicit SyncClient(ClientOptions options);
  ~SyncClient();

  // Connects, sends CONNECT and waits for CONNACK; throws ClientError.
  mqtt::Connack connect();
  // Publishes; for QoS 1/2 waits for the acknowledgement flow to complete
  // and returns its reason code.
  mqtt::ReasonCode publish(mqtt::Publish p);
  mqtt::Suback subscribe(std::vector<mqtt::Subscription> subs, std::uint32_t subscription_id = 0);
  // The next application message (acknowledged as its QoS requires), or
  // nothing when `timeout` passes first. Sends PINGREQ as keep alive needs.
  std::optional<mqtt::Publish> receive(std::chrono::milliseconds timeout);
  void disconnect();

  mqtt::Version version() const { return options_.version; }

 private:
  struct Impl;
  void prepare_tls();
  void send(const mqtt::Packet& p);
  mqtt::Packet next_packet(std::chrono::steady_clock::time_point deadline);
  std::uint16_t next_id();

  ClientOptions options_;
  std::unique_ptr<Impl> impl_;
  std::uint16_t last_id_ = 0;
  std::vector<mqtt::Publish> pending_;  // messages that arrived while waiting for an ack
};

}  // namespace petrel::client
