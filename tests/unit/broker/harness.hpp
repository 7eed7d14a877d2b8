// Test harness for the broker core: a Broker on the in-memory stores, and
// clients whose connection is a FakeTransport that records what the core
// writes and does. Everything runs on the test's thread; the housekeeping
// io_context runs only when a test runs it (deadlines, posted work).
#pragma once

#include <boost/asio/io_context.hpp>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "broker/broker.hpp"
#include "broker/client.hpp"
#include "mqtt/codec.hpp"
#include "store/memory_store.hpp"

namespace petrel::broker::test {

class FakeTransport final : public Transport, public std::enable_shared_from_this<FakeTransport> {
 public:
  void send(std::string_view bytes) override { written.append(bytes); }
  void send_payload(const MessagePtr&, std::string_view bytes) override { written.append(bytes); }
  std::size_t pending_bytes() const override { return pending; }
  void close(mqtt::ReasonCode reason) override {
    closed = true;
    close_reason = reason;
  }
  const std::string& peer() const override { return peer_; }
  const std::string& listener() const override { return listener_; }
  std::shared_ptr<SessionLink> shared_link() override { return shared_from_this(); }
  void wake() override { ++wakes; }
  void kick(mqtt::ReasonCode reason) override { kicks.push_back(reason); }
  void post(std::function<void()> fn) override { posted.push_back(std::move(fn)); }

  std::string written;
  std::size_t pending = 0;
  bool closed = false;
  mqtt::ReasonCode close_reason = mqtt::ReasonCode::Success;
  int wakes = 0;
  std::vector<mqtt::ReasonCode> kicks;
  std::vector<std::function<void()>> posted;

 private:
  std::string peer_ = "192.0.2.1:50000";
  std::string listener_ = "test";
};

// A client of the core: a FakeTransport with a broker::Client on it.
class TestClient {
 public:
  TestClient(Broker& broker, mqtt::Version version)
      : transport_(std::make_shared<FakeTransport>()), client_(broker, *transport_), version_(version) {}

  FakeTransport& transport() { return *transport_; }
  Client& client() { return client_; }

  // Feeds one packet, as the peer would send it.
  void send(const mqtt::Packet& p) { client_.on_bytes(mqtt::encode(p, version_)); }
  // Runs what the core asked to run on this connection's loop: posted work,
  // and a flush if it was woken.
  void run_loop() {
    while (!transport_->posted.empty()) {
      auto fn = std::move(transport_->posted.front());
      transport_->posted.erase(transport_->posted.begin());
      fn();
    }
    if (transport_->wakes) {
      transport_->wakes = 0;
      client_.flush();
    }
  }
  // Every packet written since the last call, decoded.
  std::vector<mqtt::Packet> received() {
    mqtt::FrameReader reader(1u << 28);
    reader.feed(transport_->written);
    transport_->written.clear();
    std::vector<mqtt::Packet> out;
    while (auto f = reader.next()) out.push_back(mqtt::decode(*f, version_));
    return out;
  }
  // CONNECTs and returns the CONNACK.
  mqtt::Connack connect(const std::string& id, std::uint32_t expiry = 0, bool clean = true,
                        std::optional<mqtt::Will> will = std::nullopt) {
    mqtt::Connect c;
    c.version = version_;
    c.client_id = id;
    c.clean_start = clean;
    c.keep_alive = 60;
    c.will = std::move(will);
    if (version_ == mqtt::Version::V5 && expiry) c.properties.session_expiry_interval = expiry;
    send(c);
    auto got = received();
    if (got.size() != 1 || !std::holds_alternative<mqtt::Connack>(got[0])) return mqtt::Connack{false, mqtt::ReasonCode::UnspecifiedError, {}};
    return std::get<mqtt::Connack>(got[0]);
  }
  void subscribe(const std::string& filter, std::uint8_t qos, std::uint16_t id = 1) {
    mqtt::Subscribe s;
    s.packet_id = id;
    s.subscriptions.push_back(mqtt::Subscription{filter, mqtt::SubscribeOptions{qos, false, false, 0}});
    send(s);
  }
  void publish(const std::string& topic, const std::string& payload, std::uint8_t qos, std::uint16_t id = 0,
               bool retain = false) {
    mqtt::Publish p;
    p.topic = topic;
    p.payload = payload;
    p.qos = qos;
    p.packet_id = id;
    p.retain = retain;
    send(p);
  }

 private:
  std::shared_ptr<FakeTransport> transport_;
  Client client_;
  mqtt::Version version_;
};

// A Broker on the in-memory stores with a housekeeping loop the test drives.
struct Harness {
  explicit Harness(BrokerConfig config = quiet()) : broker(config, *retained, *sessions, housekeeping) {}
  static BrokerConfig quiet() {
    BrokerConfig c;
    c.sys_interval = std::chrono::seconds(0);  // no $SYS traffic in unit tests
    return c;
  }
  std::unique_ptr<TestClient> client(mqtt::Version v = mqtt::Version::V5) {
    return std::make_unique<TestClient>(broker, v);
  }

  boost::asio::io_context housekeeping;
  std::unique_ptr<RetainedStore> retained = store::make_memory_retained_store();
  std::unique_ptr<SessionStore> sessions = store::make_memory_session_store();
  Broker broker;
};

template <class T>
const T* as(const mqtt::Packet& p) {
  return std::get_if<T>(&p);
}

}  // namespace petrel::broker::test
