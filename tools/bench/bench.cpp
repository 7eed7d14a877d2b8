#include "bench/bench.hpp"

#include <fmt/format.h>
#include <unistd.h>

#include <boost/asio/post.hpp>
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <thread>

#include "bench/client.hpp"
#include "bench/pubsub.hpp"

namespace petrel::bench {
namespace {

// ----------------------------------------------------------------- conn --

int run_conn(Settings s) {
  Shared sh;
  sh.s = s;
  if (int rc = resolve(sh)) return rc;
  const unsigned threads = s.threads ? s.threads : usable_cores();
  sh.histograms.resize(threads);
  const bool tls = s.use_tls();
  std::unique_ptr<asio::ssl::context> tls_context;
  if (tls) {
    try {
      tls_context = client_tls_context(s);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "petrel bench: TLS setup failed: %s\n", e.what());
      return 1;
    }
    sh.tls = tls_context.get();
  }
  Loops loops(threads);
  std::vector<std::shared_ptr<Client>> clients;
  clients.reserve(s.connections);
  const double cpu0 = cpu_seconds();
  const auto t0 = Clock::now();
  for (unsigned i = 0; i < s.connections; ++i) {
    if (s.rate > 0) std::this_thread::sleep_until(t0 + std::chrono::microseconds(static_cast<long>(i * 1e6 / s.rate)));
    auto c = std::make_shared<Client>(*loops.io[i % threads], sh, Client::Role::Idle, i, i % threads,
                                      fmt::format("bench-{}-{}-{}", tls ? "tls" : "conn", i, ::getpid()), "");
    clients.push_back(c);
    asio::post(*loops.io[i % threads], [c] { c->start(); });
  }
  wait_for([&] { return sh.ready + sh.failed >= s.connections; }, 60);
  const auto t1 = Clock::now();
  const double elapsed = std::chrono::duration<double>(t1 - t0).count();
  const double cpu = cpu_seconds() - cpu0;  // the connect phase only
  if (s.hold > 0) {
    if (!s.json) std::fprintf(stderr, "holding %u connections for %.1f s\n", sh.ready.load(), s.hold);
    std::this_thread::sleep_for(std::chrono::milliseconds(static_cast<long>(s.hold * 1000)));
  }
  for (const auto& c : clients) asio::post(c->executor(), [c] { c->disconnect(); });
  wait_for([&] { return sh.closed.load() >= clients.size(); }, 2);
  loops.stop();
  Histogram h;
  for (const auto& x : sh.histograms) h.merge(x);
  const double cps = elapsed > 0 ? sh.ready / elapsed : 0;
  const double wall = elapsed > 0 ? elapsed : 1e-9;
  if (s.json) {
    nlohmann::json j{{"scenario", "conn"},
                     {"tls", tls},
                     {"connections", s.connections},
                     {"connected", sh.ready.load()},
                     {"failures", sh.failures},
                     {"connects_per_second", cps},
                     {"latency_us", latency_json(h)},
                     {"duration_s", elapsed},
                     {"bench_cpu_percent", 100 * cpu / wall}};
    std::printf("%s\n", j.dump().c_str());
  } else {
    std::printf("conn: %u of %u connected in %.2f s: %.0f connects/s\n", sh.ready.load(), s.connections, elapsed, cps);
    print_latency(h);
    for (const auto& [why, n] : sh.failures)
      std::printf("  failed: %llu x %s\n", static_cast<unsigned long long>(n), why.c_str());
    std::printf("  bench CPU: %.0f%% of one core\n", 100 * cpu / wall);
  }
  return sh.failed ? 1 : 0;
}

// ---------------------------------------------------- message scenarios --

int run_messages(Settings s) {
  Shared sh;
  sh.s = s;
  if (int rc = resolve(sh)) return rc;
  unsigned pubs = s.publishers, subs = s.subscribers;
  if (s.scenario == "pairs") pubs = subs = s.pairs;
  sh.s.publishers = pubs;
  sh.receivers_per_message = s.scenario == "fanout" ? subs : 1;
  sh.rate_per_publisher = s.rate / pubs;
  sh.run_id = new_run_id();
  const unsigned threads = s.threads ? s.threads : usable_cores();
  sh.histograms.resize(threads);
  Loops loops(threads);
  const std::string base = fmt::format("{}/{}", s.topic, ::getpid());
  auto pub_topic = [&](unsigned i) {
    return s.scenario == "pairs" ? fmt::format("{}/pair/{}", base, i) : fmt::format("{}/pub/{}", base, i);
  };
  auto sub_topic = [&](unsigned i) {
    if (s.scenario == "pairs") return fmt::format("{}/pair/{}", base, i);
    return fmt::format("{}/pub/+", base);
  };
  std::vector<std::shared_ptr<Client>> clients;
  unsigned n = 0;
  for (unsigned i = 0; i < subs; ++i, ++n) {
    auto c = std::make_shared<Client>(*loops.io[n % threads], sh, Client::Role::Subscriber, i, n % threads,
                                      fmt::format("bench-sub-{}-{}", i, ::getpid()), sub_topic(i));
    clients.push_back(c);
    asio::post(*loops.io[n % threads], [c] { c->start(); });
  }
  if (!wait_for([&] { return sh.ready + sh.failed >= subs; }, 30) || sh.failed) {
    std::fprintf(stderr, "petrel bench: subscribers could not connect/subscribe\n");
    for (const auto& [why, k] : sh.failures)
      std::fprintf(stderr, "  %llu x %s\n", static_cast<unsigned long long>(k), why.c_str());
    return 1;
  }
  for (unsigned i = 0; i < pubs; ++i) sh.pubs.push_back(std::make_unique<PublisherState>());
  std::vector<std::shared_ptr<Client>> publishers;
  for (unsigned i = 0; i < pubs; ++i, ++n) {
    auto& io = *loops.io[n % threads];
    auto c = std::make_shared<Client>(io, sh, Client::Role::Publisher, i, n % threads,
                                      fmt::format("bench-pub-{}-{}", i, ::getpid()), pub_topic(i));
    sh.pubs[i]->wake = [&io, w = std::weak_ptr<Client>(c)] {
      asio::post(io, [w] {
        if (auto c = w.lock()) c->resume();
      });
    };
    clients.push_back(c);
    publishers.push_back(c);
    asio::post(io, [c] { c->start(); });
  }
  if (!wait_for([&] { return sh.ready + sh.failed >= subs + pubs; }, 30) || sh.failed) {
    std::fprintf(stderr, "petrel bench: publishers could not connect\n");
    return 1;
  }
  const double cpu0 = cpu_seconds();
  const auto t0 = Clock::now();
  sh.running = true;
  for (std::size_t i = 0; i < publishers.size(); ++i) {
    asio::post(publishers[i]->executor(), [c = publishers[i]] { c->begin_publishing(); });
  }
  std::uint64_t last = 0;
  run_seconds(
      t0, t0 + std::chrono::milliseconds(static_cast<long>(s.duration * 1000)), [] { return false; },
      [&](int sec) {
        const std::uint64_t got = sh.received.load();
        if (!s.json)
          print_progress(sec, got - last, "in flight",
                         static_cast<long long>(sh.sent() * sh.receivers_per_message - got), sh.errors.load());
        last = got;
      });
  sh.stopping = true;
  const auto t1 = Clock::now();
  const std::uint64_t received_in_window = sh.received.load();
  quiesce(loops);  // no publisher sends after this: the counts are final
  const std::uint64_t sent = sh.sent();
  const std::uint64_t expected = sent * sh.receivers_per_message;
  wait_for([&] { return sh.received.load() >= expected; }, 3);
  const double cpu = cpu_seconds() - cpu0;
  const double wall = std::chrono::duration<double>(Clock::now() - t0).count();
  if (!s.json) std::fprintf(stderr, "\n");
  for (const auto& c : clients) asio::post(c->executor(), [c] { c->disconnect(); });
  wait_for([&] { return sh.closed.load() >= clients.size(); }, 2);
  loops.stop();
  Histogram h;
  for (const auto& x : sh.histograms) h.merge(x);
  const double elapsed = std::chrono::duration<double>(t1 - t0).count();
  const std::uint64_t received = sh.received.load();
  const std::uint64_t lost = expected > received ? expected - received : 0;
  const double rate = received_in_window / elapsed;
  const CpuUse use = cpu_use(cpu, wall, threads);
  if (s.json) {
    nlohmann::json j{{"scenario", s.scenario},
                     {"qos", s.qos},
                     {"publishers", pubs},
                     {"subscribers", subs},
                     {"duration_s", elapsed},
                     {"sent", sent},
                     {"received", received},
                     {"expected", expected},
                     {"lost", lost},
                     {"msgs_per_second", rate},
                     {"latency_us", latency_json(h)},
                     {"errors", sh.errors.load()},
                     {"bench_cpu_percent", use.percent},
                     {"bench_threads", threads}};
    std::printf("%s\n", j.dump().c_str());
  } else {
    std::printf("%s QoS %d: %u publishers -> %u subscribers, %.1f s\n", s.scenario.c_str(), s.qos, pubs, subs, elapsed);
    std::printf("  throughput %.0f msgs/s received; sent %llu, received %llu of %llu, lost %llu\n", rate,
                static_cast<unsigned long long>(sent), static_cast<unsigned long long>(received),
                static_cast<unsigned long long>(expected), static_cast<unsigned long long>(lost));
    print_latency(h);
    std::printf("  bench CPU: %.0f%% of one core on %u threads%s\n", use.percent, threads,
                use.saturated ? fmt::format(" ({})", kSaturatedNote).c_str() : "");
  }
  return sh.errors ? 1 : 0;
}

void add_common(CLI::App* cmd, Settings& s) {
  cmd->add_option("-H,--host", s.host, "Broker host")->capture_default_str();
  cmd->add_option("-p,--port", s.port, "Broker port (default 1883, or 8883 with TLS)");
  cmd->add_option("-V,--protocol", s.protocol, "5 or 3.1.1")
      ->check(CLI::IsMember({"5", "3.1.1", "311"}))
      ->capture_default_str();
  cmd->add_option("--threads", s.threads, "Event loops (default: the cores this process may use)");
  cmd->add_flag("--json", s.json, "Print one JSON object instead of the summary");
  cmd->add_option("--session-expiry", s.session_expiry,
                  "Persistent sessions with this expiry (seconds); 0: clean sessions")
      ->capture_default_str();
  cmd->add_option("-u,--username", s.username, "User name every client connects with");
  cmd->add_option("-P,--password", s.password, "Password every client connects with");
  cmd->add_flag("--tls", s.tls, "Connect with TLS (implied by --cafile, --cert, --insecure)");
  cmd->add_option("--cafile", s.ca_file, "CA to verify the broker (default: the system's)");
  cmd->add_option("--cert", s.cert_file, "Client certificate (mutual TLS)");
  cmd->add_option("--key", s.key_file, "Client key");
  cmd->add_option("--tls-server-name", s.server_name, "Name to verify (default: the host)");
  cmd->add_flag("--insecure", s.insecure, "Do not verify the broker's certificate");
}

void add_messages(CLI::App* cmd, Settings& s) {
  add_common(cmd, s);
  cmd->add_option("-q,--qos", s.qos, "QoS 0, 1 or 2")->check(CLI::Range(0, 2))->capture_default_str();
  cmd->add_option("-d,--duration", s.duration, "Seconds to publish")->capture_default_str();
  cmd->add_option("-s,--payload", s.payload, fmt::format("Payload bytes (at least {})", kStamp))
      ->check(CLI::Range(kStamp, std::size_t{1} << 24))
      ->capture_default_str();
  cmd->add_option("-r,--rate", s.rate, "Total publish rate in msgs/s (0: as fast as the window allows)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("-w,--inflight", s.inflight, "Messages each publisher keeps in flight end to end")
      ->check(CLI::Range(1u, 65535u))
      ->capture_default_str();
  cmd->add_option("--topic", s.topic, "Topic prefix")->capture_default_str();
}

// The options bench pub and bench sub share; returns -d's, whose presence
// matters (a count alone runs until it is reached).
CLI::Option* add_pubsub(CLI::App* cmd, Settings& s, const char* what, const char* role) {
  add_common(cmd, s);
  cmd->add_option("-c,--clients", s.clients, fmt::format("{} (connections)", what))
      ->check(CLI::Range(1u, kMaxPublishers))
      ->capture_default_str();
  cmd->add_option("-q,--qos", s.qos, "QoS 0, 1 or 2")->check(CLI::Range(0, 2))->capture_default_str();
  cmd->add_option("--id-prefix", s.id_prefix,
                  fmt::format("Client ids are this prefix and the client index (default bench-{}-PID-)", role));
  return cmd
      ->add_option("-d,--duration", s.duration, "Seconds to run (default 10; without -d, a count alone ends the run)")
      ->check(CLI::PositiveNumber);
}

}  // namespace

void add_command(CLI::App& app, int& exit_code) {
  auto* bench = app.add_subcommand(
      "bench", "Load generator: connection rate, fan-in, fan-out, pairs, publishers, subscribers (docs/cli.md)");
  bench->require_subcommand(1);
  auto settings = std::make_shared<Settings>();
  auto* conn = bench->add_subcommand("conn", "Open N connections at a target rate; report connects/s and latency");
  add_common(conn, *settings);
  conn->add_option("-n,--connections", settings->connections, "Connections to open")->capture_default_str();
  conn->add_option("-r,--rate", settings->rate, "Connects per second (0: as fast as possible)");
  conn->add_option("--hold", settings->hold, "Seconds to keep all connections open (idle) before disconnecting");
  conn->callback([settings, &exit_code] { exit_code = run_conn(*settings); });

  // The message scenarios differ only in the count they take.
  auto scenario = [&](const char* name, const char* help, const char* flag, unsigned& count, const char* what) {
    auto* cmd = bench->add_subcommand(name, help);
    add_messages(cmd, *settings);
    cmd->add_option(flag, count, what)->check(CLI::Range(1u, kMaxPublishers))->capture_default_str();
    cmd->callback([settings, &exit_code, name] {
      settings->scenario = name;
      if (settings->scenario == "fanin") settings->subscribers = 1;
      if (settings->scenario == "fanout") settings->publishers = 1;
      exit_code = run_messages(*settings);
    });
  };
  scenario("fanin", "Many publishers, one subscriber", "--publishers", settings->publishers, "Publishers");
  scenario("fanout", "One publisher, many subscribers", "--subscribers", settings->subscribers, "Subscribers");
  scenario("pairs", "Publisher-subscriber pairs, each on its own topic", "--pairs", settings->pairs, "Pairs");

  // bench pub and bench sub: the halves of a load test, to run apart.
  auto* pub = bench->add_subcommand("pub", "N publishers: QoS 0/1/2, a rate per client or flat out, for -d or -n");
  auto* pub_duration = add_pubsub(pub, *settings, "Publishers", "pub");
  auto* pub_topic =
      pub->add_option("-t,--topic", settings->pattern,
                      "Topic; %i is the client index, %c the client id, %% a '%' (default petrel-bench/%i)");
  pub->add_option("-s,--payload", settings->payload,
                  fmt::format("Payload bytes (at least {}, the bench stamp)", kStamp))
      ->check(CLI::Range(kStamp, std::size_t{1} << 24))
      ->capture_default_str();
  pub->add_option("-r,--rate", settings->rate, "Messages per second per client (0: as fast as the window allows)")
      ->check(CLI::NonNegativeNumber);
  pub->add_option("-w,--inflight", settings->inflight,
                  "QoS 1/2: unacknowledged messages per client, at most (and at most the broker's Receive Maximum)")
      ->check(CLI::Range(1u, 65535u))
      ->capture_default_str();
  pub->add_option("-n,--count", settings->count, "Messages per client; the run ends when all are acknowledged");
  pub->callback([settings, &exit_code, pub_duration, pub_topic] {
    settings->duration_given = pub_duration->count() > 0;
    if (pub_topic->count() == 0) settings->pattern = "petrel-bench/%i";
    exit_code = run_pub(*settings);
  });

  auto* sub = bench->add_subcommand("sub", "N subscribers: throughput, end-to-end latency, loss and duplicates");
  auto* sub_duration = add_pubsub(sub, *settings, "Subscribers", "sub");
  auto* sub_topic =
      sub->add_option("-t,--topic", settings->pattern,
                      "Topic filter; %i is the client index, %c the client id, %% a '%' (default petrel-bench/+)");
  sub->add_option("-C,--count", settings->count, "Stop after this many messages in all");
  sub->callback([settings, &exit_code, sub_duration, sub_topic] {
    settings->duration_given = sub_duration->count() > 0;
    if (sub_topic->count() == 0) settings->pattern = "petrel-bench/+";
    exit_code = run_sub(*settings);
  });
}

}  // namespace petrel::bench
