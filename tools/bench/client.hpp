// The load generator's engine, shared by every `petrel bench` command: the
// settings, the state the clients of one run share, the per-connection MQTT
// state machine (Client, over TCP or TLS) and the helpers that run event
// loops and print results. Efficient on purpose: one event loop per thread,
// publishes patched into a pre-encoded template (no allocation per message),
// acks and latency parsed in place, writes batched.
#pragma once

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "bench/histogram.hpp"
#include "mqtt/codec.hpp"

namespace petrel::bench {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

struct Settings {
  std::string scenario;
  std::string host = "localhost";
  std::uint16_t port = 1883;
  std::string protocol = "5";
  unsigned threads = 0;
  unsigned publishers = 1;
  unsigned subscribers = 1;
  unsigned pairs = 8;
  int qos = 0;
  double duration = 10;
  std::size_t payload = 64;
  double rate = 0;
  unsigned inflight = 64;
  unsigned connections = 1000;
  double hold = 0;
  bool json = false;
  std::string topic = "petrel-bench";
  // TLS
  bool tls = false;
  std::string ca_file, cert_file, key_file, server_name;
  bool insecure = false;

  bool use_tls() const { return tls || !ca_file.empty() || !cert_file.empty() || insecure; }
  mqtt::Version version() const {
    return (protocol == "3.1.1" || protocol == "311") ? mqtt::Version::V311 : mqtt::Version::V5;
  }
};

std::uint64_t now_ns();
double cpu_seconds();     // user + system time of this process
unsigned usable_cores();  // the cores this process may run on

// One publisher's end-to-end accounting, shared with the subscribers that
// receive its messages (on other threads).
struct PublisherState {
  std::atomic<std::uint64_t> sent{0};
  std::atomic<std::uint64_t> received{0};
  std::atomic<bool> waiting{false};
  std::function<void()> wake;
};

// What the clients of one run share.
struct Shared {
  Settings s;
  mqtt::Version version = mqtt::Version::V5;
  asio::ssl::context* tls = nullptr;  // set: connect with TLS
  unsigned receivers_per_message = 1;
  std::vector<std::unique_ptr<PublisherState>> pubs;
  std::atomic<bool> running{false};
  std::atomic<bool> stopping{false};
  std::atomic<unsigned> ready{0};
  std::atomic<unsigned> failed{0};
  std::atomic<std::uint64_t> received{0};
  std::atomic<std::uint64_t> errors{0};
  std::mutex mutex;
  std::map<std::string, std::uint64_t> failures;
  std::vector<Histogram> histograms;  // one per thread
  tcp::resolver::results_type endpoints;

  void fail(const std::string& why) {
    failed.fetch_add(1);
    std::lock_guard lock(mutex);
    ++failures[why];
  }
};

// Payload layout: 8 bytes send time (ns), 4 bytes publisher index, then padding.
constexpr std::size_t kStamp = 12;

// One MQTT connection of the generator: connects (TCP, then TLS when
// shared.tls is set), sends CONNECT, and then, by role, publishes from its
// template, subscribes and counts what arrives, or stays idle. All of it on
// the io_context it was made on.
class Client : public std::enable_shared_from_this<Client> {
 public:
  enum class Role { Publisher, Subscriber, Idle };

  Client(asio::io_context& io, Shared& shared, Role role, unsigned index, unsigned thread, std::string client_id,
         std::string topic);

  void start();
  // Called once, when the measurement starts.
  void begin_publishing();
  // A subscriber freed room in this publisher's window.
  void resume() { pump(); }
  void disconnect();

  asio::any_io_executor executor() { return lowest().get_executor(); }

 private:
  tcp::socket& lowest() { return tls_ ? tls_->next_layer() : *plain_; }
  void fail(const std::string& why);
  void on_transport_ready();
  void read();
  void handle(const mqtt::Frame& f);
  void on_publish(const mqtt::Frame& f);
  void prepare_template();
  void tick();
  void pump();
  void queue(const std::string& bytes);
  void flush();

  std::optional<tcp::socket> plain_;
  std::optional<asio::ssl::stream<tcp::socket>> tls_;
  asio::steady_timer timer_;
  Shared& shared_;
  Role role_;
  unsigned index_;
  unsigned thread_;
  std::string client_id_;
  std::string topic_;
  std::vector<char> buffer_;
  mqtt::FrameReader reader_{268'435'460};
  std::string out_, wbuf_, template_;
  std::size_t id_offset_ = 0, payload_offset_ = 0;
  std::uint16_t next_id_ = 0;
  unsigned acks_pending_ = 0;
  double per_tick_ = 0, tokens_ = 0;
  Clock::time_point started_;
  Clock::time_point next_tick_;
  bool connected_ = false, writing_ = false, closing_ = false, done_ = false;
};

std::unique_ptr<asio::ssl::context> client_tls_context(const Settings& s);

// One io_context per thread, each run by its own std::thread until stop().
struct Loops {
  std::vector<std::unique_ptr<asio::io_context>> io;
  std::vector<asio::executor_work_guard<asio::io_context::executor_type>> guards;
  std::vector<std::thread> threads;
  explicit Loops(unsigned n);
  void stop();
  ~Loops();
};

// Polls `cond` every 2 ms; false when `seconds` pass first.
bool wait_for(const std::function<bool()>& cond, double seconds);

nlohmann::json latency_json(const Histogram& h);
void print_latency(const Histogram& h);

// Fills sh.version and sh.endpoints from sh.s; prints the error and returns 1
// when the host does not resolve.
int resolve(Shared& sh);

}  // namespace petrel::bench
