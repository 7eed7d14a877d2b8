// bridge::Bridge: petrel as a client of another broker, living inside
// petrel. One bridge is two halves joined on one event loop:
//
// - Local: an ordinary persistent session of petrel's own, client id
//   "$bridge/<name>", never expiring, subscribed to the forward rules'
//   filters (No Local, so what the bridge itself publishes locally never
//   comes back to it). The bridge holds it online through the core's
//   SessionLink seam for as long as petrel runs, whether the remote is up or
//   not, so while the remote is away this session IS the offline queue: the
//   durable store persists its QoS 1/2 deliveries like any session's
//   (commit before acknowledge, restored after SIGKILL), and its bounds and
//   the 0x97 refusal come from a SessionPolicy (broker/in_process.hpp).
//
// - Remote: one MQTT 3.1.1 or 5 connection over TCP or TLS, spoken with
//   petrel's codec: CONNECT, SUBSCRIBE to the subscribe rules, keep-alive
//   pings, and a connect deadline covering TCP, TLS and CONNACK. Failures
//   (refused, lost, timed out, a protocol violation by the remote) close it
//   and schedule the next attempt (bridge/backoff.hpp). TLS is Asio's
//   ssl::stream with a client context of its own, not net::TlsSocket: that
//   is the listeners' server-side socket in net/, which this layer does not
//   see (layering_bridge_*), and one connection per bridge makes the memory
//   TlsSocket saves per connection (its reason to exist) immaterial here.
//
// Forwarding: while connected, flush() drains the local session with
// Session::drain (window: min(the remote's Receive Maximum, max_inflight)),
// encodes each delivery for the remote (remote_prefix + topic, payload,
// properties, retain per rule) and writes it. A QoS 1/2 delivery stays in the
// session's in-flight window, and in the store, until the remote
// acknowledges it (broker::acknowledge); after a reconnect or a restart what
// is still in flight is sent again first, in order (QoS 2 keeps its packet
// id and PUBREC/PUBREL state, so QoS 2 to QoS 2 stays exactly once).
//
// Receiving: PUBLISHes from the remote are published locally as
// local_prefix + topic through Broker::route, with the bridge's client id as
// their origin, so its own session (No Local) does not forward them back.
// They are acknowledged to the remote as a network publisher is: once what
// they changed is committed (the same hold as broker::Client's), and with
// 0x97 when a local bridge queue refused them.
//
// Threading: everything runs on the bridge's event loop; wake(), kick() and
// post() (SessionLink) and status() may be called from any thread.
#pragma once

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <vector>

#include "bridge/backoff.hpp"
#include "bridge/settings.hpp"
#include "bridge/topic_map.hpp"
#include "broker/broker.hpp"
#include "broker/held_back.hpp"
#include "mqtt/codec.hpp"

namespace petrel::bridge {

// What the operator sees of a bridge ($SYS, /metrics, /api/v1/bridges).
struct Status {
  std::string name;
  std::string address;  // host:port
  bool tls = false;
  mqtt::Version version = mqtt::Version::V5;
  std::string client_id;  // on the remote
  std::string state;      // "connected", "connecting", "waiting" (to reconnect), "stopped"
  bool connected = false;
  std::chrono::system_clock::time_point since{};  // of the current state
  std::string last_error;                        // "" if none since start
  std::chrono::system_clock::time_point last_error_at{};
  std::uint64_t queued = 0;     // in the local session, waiting to be sent
  std::uint64_t inflight = 0;   // sent, not yet acknowledged by the remote
  std::uint64_t forwarded = 0;  // local -> remote: acknowledged by the remote (QoS 0: written)
  std::uint64_t received = 0;   // remote -> local: published locally
  std::uint64_t dropped = 0;    // not forwarded: queue full (QoS 0 evicted or not queued, QoS 1/2 refused), expired, too large
  std::uint64_t refused = 0;    // of those: QoS 1/2 refused to the local publisher (0x97)
  std::uint64_t resent = 0;     // PUBLISHes sent again after a reconnect or restart
  std::uint64_t connects = 0;   // successful CONNACKs
  std::uint16_t remote_receive_maximum = 0;  // while connected
};

// Builds the TLS client context of a bridge; throws std::runtime_error
// naming the file and OpenSSL's reason (checked when the configuration is).
std::shared_ptr<boost::asio::ssl::context> make_client_tls_context(const TlsClientSettings& s);

class Bridge final : public broker::SessionLink, public std::enable_shared_from_this<Bridge> {
 public:
  // Registers the bridge's session policy with the broker: construct before
  // the broker serves.
  Bridge(BridgeSettings settings, broker::Broker& broker, boost::asio::io_context& loop);
  ~Bridge() override;
  Bridge(const Bridge&) = delete;
  Bridge& operator=(const Bridge&) = delete;

  // Attaches the local session (after the store was restored, before
  // clients are served) and starts connecting once the loop runs.
  void start();

  const BridgeSettings& settings() const { return settings_; }
  Status status() const;  // thread-safe

  // broker::SessionLink (thread-safe)
  void wake() override;
  void kick(mqtt::ReasonCode reason) override;
  void post(std::function<void()> fn) override;

 private:
  enum class State : std::uint8_t { Waiting, Connecting, AwaitConnack, Connected, Stopped };

  // --- local session
  void attach_local();
  void on_kicked(mqtt::ReasonCode reason);

  // --- remote connection
  void connect();
  void on_resolved(std::uint64_t epoch, const boost::system::error_code& ec,
                   const boost::asio::ip::tcp::resolver::results_type& endpoints);
  void on_tcp_connected(std::uint64_t epoch, const boost::system::error_code& ec);
  void on_transport_ready(std::uint64_t epoch);
  void read();
  void on_read(std::uint64_t epoch, const boost::system::error_code& ec, std::size_t n);
  // Ends the connection; `refusal`: the remote said no (CONNACK) and the
  // next attempt waits at the slowest rate.
  void drop(const std::string& why, bool refusal = false);
  void schedule_retry(std::chrono::milliseconds delay);
  void close_transport();
  void start_keep_alive();
  void set_state(State s);
  void set_error(const std::string& why);

  // --- packets from the remote
  void handle(const mqtt::Frame& frame);
  void on_connack(const mqtt::Connack& ack);
  void on_publish(mqtt::PublishView& p);
  void on_ack(const mqtt::AckView& a);
  void on_suback(const mqtt::Suback& s);

  // --- forwarding
  void flush();
  void resend_inflight(bool session_present);
  void send_publish(const broker::Delivery& d, std::uint16_t packet_id, std::uint8_t qos, bool dup);
  void send_packet(const mqtt::Packet& p);
  void send_ack(mqtt::PacketType type, std::uint16_t packet_id, mqtt::ReasonCode reason);
  // Every byte for the remote goes through out(): behind held-back bytes, if
  // any (they wait for the store, as broker::Client's do).
  void out(std::string_view bytes);
  void write();
  std::size_t pending_bytes() const { return out_.size() + (conn_ ? conn_->writing.size() : 0); }
  std::uint64_t store_mark() const { return broker_.session_store().thread_ticket(); }
  void hold_if_stored_since(std::uint64_t mark);
  void release_held();

  const BridgeSettings settings_;
  const std::string local_id_;  // "$bridge/<name>"
  broker::Broker& broker_;
  boost::asio::io_context& loop_;
  TopicMap topics_;
  std::shared_ptr<broker::SessionPolicy> policy_;
  std::shared_ptr<boost::asio::ssl::context> tls_context_;

  // Local session (loop thread; session_ also read by status() under status_mutex_).
  broker::SessionPtr session_;
  std::uint64_t generation_ = 0;
  std::atomic<bool> wake_posted_{false};

  // Remote connection (loop thread).
  State state_ = State::Waiting;
  std::uint64_t epoch_ = 0;  // bumped on every attempt and drop: stale completions are ignored
  boost::asio::ip::tcp::resolver resolver_;
  // One connection's socket and the buffers its pending operations use:
  // shared with their handlers, so that a connection dropped with an
  // operation pending (an SSL stream's composed operations touch the stream
  // when they complete) lives until that operation has completed.
  struct Conn {
    std::unique_ptr<boost::asio::ip::tcp::socket> tcp;
    std::unique_ptr<boost::asio::ssl::stream<boost::asio::ip::tcp::socket>> tls;
    std::vector<char> read_buffer;
    std::string writing;
  };
  std::shared_ptr<Conn> conn_;
  boost::asio::steady_timer connect_timer_, retry_timer_, keep_alive_timer_;
  Backoff backoff_;
  std::mt19937_64 rng_{std::random_device{}()};
  mqtt::FrameReader reader_;
  std::string out_;
  bool write_in_flight_ = false;
  bool closing_after_write_ = false;  // shutting down: close once the DISCONNECT is written
  broker::HeldBack held_;  // acknowledgements waiting for the store (broker/held_back.hpp)
  std::string scratch_, topic_scratch_;
  // The remote's limits, from CONNACK.
  std::uint16_t remote_receive_maximum_ = 65535;
  std::uint32_t remote_max_packet_size_ = 268'435'460;
  std::uint8_t remote_max_qos_ = 2;
  bool remote_retain_available_ = true;
  std::uint16_t keep_alive_ = 0;
  std::chrono::steady_clock::time_point last_sent_{}, last_received_{}, ping_sent_{};
  bool ping_outstanding_ = false;
  std::uint16_t next_subscribe_id_ = 1;

  // Status (any thread).
  mutable std::mutex status_mutex_;
  std::string state_name_ = "waiting";
  std::chrono::system_clock::time_point since_ = std::chrono::system_clock::now();
  std::string last_error_;
  std::chrono::system_clock::time_point last_error_at_{};
  std::atomic<bool> connected_{false};
  std::atomic<std::uint64_t> forwarded_{0}, received_{0}, drained_drops_{0}, resent_{0}, connects_{0};
  std::atomic<std::uint16_t> receive_maximum_seen_{0};
};

}  // namespace petrel::bridge
