// The load generator's engine, shared by every `petrel bench` command: the
// settings, the state the clients of one run share, the per-connection MQTT
// state machine (Client, over TCP or TLS) and the helpers that run event
// loops and print results. Efficient on purpose: one event loop per thread,
// publishes patched into a pre-encoded template (no allocation per message),
// acks and latency parsed in place, writes batched.
#pragma once

#include <signal.h>

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
#include "bench/stamp.hpp"
#include "mqtt/codec.hpp"

namespace petrel::bench {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

struct Settings {
  std::string scenario;
  std::string host = "localhost";
  std::uint16_t port = 0;  // 0: 1883, or 8883 with TLS
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
  // 0: clean sessions; else every client keeps a persistent session (MQTT 5
  // Session Expiry Interval, or clean session = 0 in 3.1.1), which a
  // durable store must write.
  std::uint32_t session_expiry = 0;
  // Credentials every client connects with (none: anonymous).
  std::optional<std::string> username, password;
  // bench pub / bench sub
  unsigned clients = 1;
  std::string pattern;          // topic (pub) or filter (sub), with %i, %c and %%
  std::string id_prefix;        // client ids are id_prefix + index
  std::uint64_t count = 0;      // pub: messages per client; sub: messages in all (0: no limit)
  bool duration_given = false;  // pub/sub: -d was on the command line
  // TLS
  bool tls = false;
  std::string ca_file, cert_file, key_file, server_name;
  bool insecure = false;

  bool use_tls() const { return tls || !ca_file.empty() || !cert_file.empty() || insecure; }
  std::uint16_t effective_port() const { return port ? port : (use_tls() ? 8883 : 1883); }
  mqtt::Version version() const {
    return (protocol == "3.1.1" || protocol == "311") ? mqtt::Version::V311 : mqtt::Version::V5;
  }
};

std::uint64_t now_ns();
std::uint32_t new_run_id();  // random, for the stamps of one process
double cpu_seconds();        // user + system time of this process
unsigned usable_cores();     // the cores this process may run on

// One publisher's counters. `sent`, `acked` and `refused` are written by its
// own thread only; `received` by the subscribers of this run (on other
// threads), for the end-to-end window of the scenarios.
struct PublisherState {
  std::atomic<std::uint64_t> sent{0};
  std::atomic<std::uint64_t> received{0};
  std::atomic<std::uint64_t> acked{0};    // PUBACK (QoS 1) or PUBCOMP (QoS 2) with a success code
  std::atomic<std::uint64_t> refused{0};  // PUBACK or PUBREC with an error code
  std::atomic<bool> waiting{false};
  std::function<void()> wake;
};

// What the clients of one run share.
struct Shared {
  Settings s;
  mqtt::Version version = mqtt::Version::V5;
  asio::ssl::context* tls = nullptr;  // set: connect with TLS
  std::uint32_t run_id = 0;           // in every stamp this process writes
  tcp::resolver::results_type endpoints;

  // Publishers.
  // true (the scenarios): a publisher's window is what it sent that this
  // run's subscribers have not received yet; false (bench pub): what the
  // broker has not acknowledged yet (QoS 1 and 2; QoS 0 has no window but
  // the socket's own back pressure).
  bool end_to_end = true;
  unsigned receivers_per_message = 1;
  double rate_per_publisher = 0;             // msgs/s; 0: as fast as the window allows
  std::uint64_t messages_per_publisher = 0;  // 0: until stopped
  std::vector<std::unique_ptr<PublisherState>> pubs;
  // Publishers that sent their count, all of it written and acknowledged,
  // or that lost their connection.
  std::atomic<unsigned> finished{0};

  // Subscribers.
  bool track_sequences = false;  // loss, duplicates and reordering (bench sub)
  bool group_tracking = false;   // one tracker for all subscribers ($share filters), under group_mutex
  std::mutex group_mutex;
  GroupSequenceTracker group;
  std::uint64_t stop_after = 0;  // messages in all; 0: no limit
  std::atomic<bool> count_reached{false};
  std::atomic<std::uint64_t> received{0};  // every PUBLISH received
  std::atomic<std::uint64_t> foreign{0};   // of which without a stamp
  std::atomic<std::int64_t> lost{0};
  std::atomic<std::uint64_t> duplicates{0};
  std::atomic<std::uint64_t> out_of_order{0};

  // Everyone.
  std::atomic<bool> running{false};
  std::atomic<bool> stopping{false};
  std::atomic<unsigned> ready{0};
  std::atomic<unsigned> failed{0};
  std::atomic<unsigned> closed{0};
  std::atomic<int> fail_code{0};  // the first failure's exit code
  std::atomic<std::uint64_t> errors{0};
  std::mutex mutex;
  std::map<std::string, std::uint64_t> failures;  // reason -> count, setup failures and errors alike
  std::vector<Histogram> histograms;              // one per thread

  // A client could not get going (connect, TLS, CONNACK, SUBACK).
  void fail(const std::string& why, int code = 1) {
    failed.fetch_add(1);
    int none = 0;
    fail_code.compare_exchange_strong(none, code);
    note(why);
  }
  // Something went wrong while running (a connection lost, a refused publish).
  void error(const std::string& why) {
    errors.fetch_add(1);
    note(why);
  }
  void note(const std::string& why) {
    std::lock_guard lock(mutex);
    ++failures[why];
  }
  std::uint64_t sent() const {
    std::uint64_t n = 0;
    for (const auto& p : pubs) n += p->sent.load();
    return n;
  }
  // Published and neither acknowledged nor refused yet.
  std::uint64_t unacknowledged() const {
    std::uint64_t n = 0;
    for (const auto& p : pubs) n += p->sent.load() - p->acked.load() - p->refused.load();
    return n;
  }
};

// One MQTT connection of the generator: connects (TCP, then TLS when
// shared.tls is set), sends CONNECT, and then, by role, publishes from its
// template (QoS 0, 1 or 2), subscribes and measures what arrives, or stays
// idle. All of it on the io_context it was made on.
class Client : public std::enable_shared_from_this<Client> {
 public:
  enum class Role { Publisher, Subscriber, Idle };

  // `index`: the publisher's index in shared.pubs (and its stamps), or the
  // subscriber's number; `thread`: the histogram it records into.
  Client(asio::io_context& io, Shared& shared, Role role, unsigned index, unsigned thread, std::string client_id,
         std::string topic);

  void start();
  // Called once, when the measurement starts.
  void begin_publishing();
  // A subscriber freed room in this publisher's window.
  void resume() { pump(); }
  // Sends DISCONNECT after what is queued, then closes.
  void disconnect();

  asio::any_io_executor executor() { return lowest().get_executor(); }

  // For the summary, once the event loops have stopped.
  const SequenceTracker& tracker() const { return tracker_; }
  std::uint64_t first_receive_ns() const { return first_rx_ns_; }
  std::uint64_t last_receive_ns() const { return last_rx_ns_; }

 private:
  static constexpr std::size_t kBatch = 256 * 1024;  // bytes queued before a publisher waits for the write

  tcp::socket& lowest() { return tls_ ? tls_->next_layer() : *plain_; }
  void fail(const std::string& why, int code = 1);
  void mark_closed();
  void on_transport_ready();
  void read();
  void handle(const mqtt::Frame& f);
  void on_connack(const mqtt::Frame& f);
  void on_suback(const mqtt::Frame& f);
  void on_publish(const mqtt::Frame& f);
  void on_ack(const mqtt::Frame& f);
  void prepare_template();
  void tick();
  void schedule_tick();
  void schedule_ping();
  void pump();
  void check_finished();
  void queue(const std::string& bytes);
  void append_ack(std::uint8_t first_byte, std::uint16_t id);
  void flush();

  std::optional<tcp::socket> plain_;
  std::optional<asio::ssl::stream<tcp::socket>> tls_;
  asio::steady_timer timer_;  // publishers: rate ticks; subscribers: keep alive
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
  unsigned ack_window_ = 65535;     // unacknowledged QoS 1/2 publishes allowed
  std::uint32_t max_packet_ = 0;    // the broker's maximum packet size (0: none)
  std::uint16_t keep_alive_ = 300;  // seconds
  std::uint64_t seq_ = 0;           // messages this publisher sent
  double per_tick_ = 0, tokens_ = 0;
  Clock::duration interval_{};
  Clock::time_point started_;
  Clock::time_point next_tick_;
  SequenceTracker tracker_;
  std::uint64_t first_rx_ns_ = 0, last_rx_ns_ = 0;
  bool connected_ = false, writing_ = false, closing_ = false, done_ = false, closed_ = false;
  bool finished_ = false, broker_disconnected_ = false;
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

// Returns once every loop has run a handler posted now: whatever a client
// does after that sees the flags set before the call (shared.stopping).
void quiesce(Loops& loops);

// The once-a-second loop of a run: calls `each_second(second)` each second
// from t0 and returns when `done()` (polled every 5 ms), at `end` (if set),
// or on SIGINT/SIGTERM while an InterruptGuard lives.
void run_seconds(Clock::time_point t0, std::optional<Clock::time_point> end, const std::function<bool()>& done,
                 const std::function<void(int)>& each_second);

// SIGINT and SIGTERM end run_seconds() (and so the run, with its summary)
// instead of the process, while this lives.
class InterruptGuard {
 public:
  InterruptGuard();
  ~InterruptGuard();
  InterruptGuard(const InterruptGuard&) = delete;
  InterruptGuard& operator=(const InterruptGuard&) = delete;
  static bool interrupted();

 private:
  struct sigaction old_int_ {
  }, old_term_{};
};

// The progress line on standard error, rewritten in place each second.
void print_progress(int second, std::uint64_t msgs, const char* label, long long value, std::uint64_t errors);

// The generator's own CPU over a run. `saturated`: it used more than 90 % of
// the cores it could use (its threads, at most the cores it may run on), so
// it, not the broker, may have been the limit.
struct CpuUse {
  double percent = 0;  // of one core
  unsigned threads = 0;
  bool saturated = false;
};
CpuUse cpu_use(double cpu_seconds, double wall_seconds, unsigned threads);
constexpr const char* kSaturatedNote = "saturated: these numbers are a floor";

nlohmann::json latency_json(const Histogram& h);
void print_latency(const Histogram& h);

// Fills sh.version and sh.endpoints from sh.s; prints the error and returns 1
// when the host does not resolve.
int resolve(Shared& sh);

}  // namespace petrel::bench
