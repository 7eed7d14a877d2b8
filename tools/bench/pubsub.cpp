#include "bench/pubsub.hpp"

#include <fmt/format.h>
#include <unistd.h>

#include <boost/asio/post.hpp>
#include <cstdio>
#include <set>
#include <stdexcept>

#include "mqtt/topic.hpp"

namespace petrel::bench {

std::string expand_pattern(std::string_view pattern, unsigned index, std::string_view client_id) {
  std::string out;
  out.reserve(pattern.size() + 16);
  for (std::size_t i = 0; i < pattern.size(); ++i) {
    if (pattern[i] != '%') {
      out += pattern[i];
      continue;
    }
    if (i + 1 == pattern.size()) throw std::invalid_argument("it ends with a lone '%' (write %% for a '%')");
    switch (pattern[++i]) {
      case 'i': out += std::to_string(index); break;
      case 'c': out += client_id; break;
      case '%': out += '%'; break;
      default:
        throw std::invalid_argument(
            fmt::format("'%{}' is not %i (client index), %c (client id) or %% (a '%')", pattern[i]));
    }
  }
  return out;
}

namespace {

struct Plan {
  std::vector<std::string> ids, topics;
  bool shared_filters = false;  // some are $share/...
};

// Client ids and topics (filters) of every client. Prints the problem and
// returns false when the pattern is bad or gives an invalid topic (filter).
bool plan_clients(const char* me, const Settings& s, const char* role, bool filters, Plan& plan) {
  const std::string prefix = s.id_prefix.empty() ? fmt::format("bench-{}-{}-", role, ::getpid()) : s.id_prefix;
  for (unsigned i = 0; i < s.clients; ++i) {
    std::string id = prefix + std::to_string(i);
    if (id.size() > 65535) {
      std::fprintf(stderr, "%s: client id '%.20s...' is longer than MQTT's 65535 bytes\n", me, id.c_str());
      return false;
    }
    std::string topic;
    try {
      topic = expand_pattern(s.pattern, i, id);
    } catch (const std::invalid_argument& e) {
      std::fprintf(stderr, "%s: bad topic pattern '%s': %s\n", me, s.pattern.c_str(), e.what());
      return false;
    }
    bool valid = false;
    if (!filters) {
      valid = mqtt::valid_topic_name(topic);
    } else if (auto shared = mqtt::parse_shared(topic)) {
      valid = mqtt::valid_shared_filter(*shared);
      plan.shared_filters = true;
    } else {
      valid = mqtt::valid_topic_filter(topic);
    }
    if (!valid) {
      std::fprintf(stderr, "%s: '%s' (from the pattern '%s') is not a valid topic %s\n", me, topic.c_str(),
                   s.pattern.c_str(), filters ? "filter" : "name (no wildcards)");
      return false;
    }
    plan.ids.push_back(std::move(id));
    plan.topics.push_back(std::move(topic));
  }
  return true;
}

// Resolves the host and makes the TLS context; prints the problem and
// returns the exit code when either fails.
int prepare(const char* me, Shared& sh, std::unique_ptr<asio::ssl::context>& tls) {
  if (int rc = resolve(sh)) return rc;
  if (sh.s.use_tls()) {
    try {
      tls = client_tls_context(sh.s);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "%s: TLS setup failed: %s\n", me, e.what());
      return 1;
    }
    sh.tls = tls.get();
  }
  return 0;
}

unsigned thread_count(const Settings& s) {
  return std::max(1u, std::min(s.threads ? s.threads : usable_cores(), s.clients));
}

// Starts every client and waits until each is ready (CONNACK; for
// subscribers SUBACK). Prints why not and returns the exit code when one
// could not get there.
int start_clients(const char* me, Shared& sh, Loops& loops, Client::Role role, const Plan& plan,
                  std::vector<std::shared_ptr<Client>>& clients) {
  const auto threads = static_cast<unsigned>(loops.io.size());
  for (unsigned i = 0; i < plan.ids.size(); ++i) {
    auto c = std::make_shared<Client>(*loops.io[i % threads], sh, role, i, i % threads, plan.ids[i], plan.topics[i]);
    clients.push_back(c);
    asio::post(c->executor(), [c] { c->start(); });
  }
  const auto n = static_cast<unsigned>(clients.size());
  const bool all = wait_for([&] { return sh.ready + sh.failed >= n; }, 30);
  if (all && sh.failed == 0) return 0;
  if (!all) std::fprintf(stderr, "%s: %u of %u clients ready after 30 s\n", me, sh.ready.load(), n);
  std::lock_guard lock(sh.mutex);
  for (const auto& [why, k] : sh.failures) {
    if (k == n) {
      std::fprintf(stderr, "%s: %s\n", me, why.c_str());
    } else {
      std::fprintf(stderr, "%s: %s (%llu of %u clients)\n", me, why.c_str(), static_cast<unsigned long long>(k), n);
    }
  }
  return sh.failed ? sh.fail_code.load() : 1;
}

void stop_clients(Shared& sh, Loops& loops, const std::vector<std::shared_ptr<Client>>& clients) {
  for (const auto& c : clients) asio::post(c->executor(), [c] { c->disconnect(); });
  wait_for([&] { return sh.closed.load() >= clients.size(); }, 2);
  loops.stop();
}

void row(const char* label, const std::string& value) {
  std::printf("  %-16s%s\n", label, value.c_str());
}

void print_errors(const Shared& sh) {
  row("errors", std::to_string(sh.errors.load()));
  for (const auto& [why, k] : sh.failures)
    std::printf("  %16s%llu x %s\n", "", static_cast<unsigned long long>(k), why.c_str());
}

void print_cpu(const CpuUse& use) {
  row("bench CPU",
      fmt::format("{:.0f}% of one core, {} thread{}", use.percent, use.threads, use.threads == 1 ? "" : "s"));
  if (use.saturated)
    std::printf("  warning: the generator used most of its cores (%.0f%% on %u threads): %s\n", use.percent,
                use.threads, kSaturatedNote);
}

const char* protocol_name(const Shared& sh) {
  return sh.version == mqtt::Version::V5 ? "5" : "3.1.1";
}

std::optional<Clock::time_point> end_of(const Settings& s, Clock::time_point t0) {
  // A count alone runs until it is reached; a duration (given, or the
  // default without a count) bounds the run.
  if (s.count > 0 && !s.duration_given) return std::nullopt;
  return t0 + std::chrono::milliseconds(static_cast<long>(s.duration * 1000));
}

}  // namespace

// ------------------------------------------------------------------- pub --

int run_pub(Settings s) {
  const char* me = "petrel bench pub";
  Plan plan;
  if (!plan_clients(me, s, "pub", false, plan)) return 2;
  Shared sh;
  sh.s = s;
  sh.end_to_end = false;
  sh.rate_per_publisher = s.rate;
  sh.messages_per_publisher = s.count;
  sh.run_id = new_run_id();
  std::unique_ptr<asio::ssl::context> tls;
  if (int rc = prepare(me, sh, tls)) return rc;
  const unsigned threads = thread_count(s);
  sh.histograms.resize(threads);
  for (unsigned i = 0; i < s.clients; ++i) sh.pubs.push_back(std::make_unique<PublisherState>());
  Loops loops(threads);
  std::vector<std::shared_ptr<Client>> clients;
  if (int rc = start_clients(me, sh, loops, Client::Role::Publisher, plan, clients)) return rc;

  InterruptGuard interrupt;
  const double cpu0 = cpu_seconds();
  const auto t0 = Clock::now();
  sh.running = true;
  for (const auto& c : clients) asio::post(c->executor(), [c] { c->begin_publishing(); });
  std::uint64_t last = 0;
  run_seconds(
      t0, end_of(s, t0),
      [&] { return (s.count > 0 && sh.finished.load() >= s.clients) || sh.closed.load() >= s.clients; },
      [&](int sec) {
        const std::uint64_t sent = sh.sent();
        if (!s.json)
          print_progress(sec, sent - last, "in flight", static_cast<long long>(sh.unacknowledged()), sh.errors.load());
        last = sent;
      });
  sh.stopping = true;
  const auto t1 = Clock::now();
  quiesce(loops);  // no publisher sends after this: `sent` is final
  // What is still unacknowledged gets a few seconds to be.
  if (s.qos > 0) wait_for([&] { return sh.unacknowledged() == 0 || sh.closed.load() >= s.clients; }, 5);
  const double cpu = cpu_seconds() - cpu0;
  const double wall = std::chrono::duration<double>(Clock::now() - t0).count();
  if (!s.json && t1 - t0 >= std::chrono::seconds(1)) std::fprintf(stderr, "\n");
  stop_clients(sh, loops, clients);

  const double elapsed = std::chrono::duration<double>(t1 - t0).count();
  std::uint64_t acked = 0, refused = 0;
  for (const auto& p : sh.pubs) {
    acked += p->acked.load();
    refused += p->refused.load();
  }
  const std::uint64_t sent = sh.sent();
  const std::uint64_t unacked = s.qos > 0 ? sent - acked - refused : 0;
  const double rate = elapsed > 0 ? static_cast<double>(sent) / elapsed : 0;
  const CpuUse use = cpu_use(cpu, wall, threads);
  if (s.json) {
    nlohmann::json j{{"scenario", "pub"},
                     {"clients", s.clients},
                     {"qos", s.qos},
                     {"protocol", protocol_name(sh)},
                     {"topic_pattern", s.pattern},
                     {"payload_bytes", s.payload},
                     {"rate_per_client", s.rate},
                     {"count_per_client", s.count},
                     {"duration_s", elapsed},
                     {"sent", sent},
                     {"acknowledged", acked},
                     {"refused", refused},
                     {"unacknowledged", unacked},
                     {"msgs_per_second", rate},
                     {"errors", sh.errors.load()},
                     {"failures", sh.failures},
                     {"interrupted", InterruptGuard::interrupted()},
                     {"bench_cpu_percent", use.percent},
                     {"bench_saturated", use.saturated},
                     {"bench_threads", threads}};
    std::printf("%s\n", j.dump().c_str());
  } else {
    std::printf("%s: %u client%s, QoS %d, MQTT %s, %zu-byte payloads to '%s'%s\n", me, s.clients,
                s.clients == 1 ? "" : "s", s.qos, protocol_name(sh), std::max(s.payload, kStamp), s.pattern.c_str(),
                InterruptGuard::interrupted() ? " (interrupted)" : "");
    row("duration", fmt::format("{:.2f} s", elapsed));
    row("sent", fmt::format("{}{}", sent, s.rate > 0 ? fmt::format(" (at most {:g} msgs/s per client)", s.rate) : ""));
    row("throughput", fmt::format("{:.0f} msgs/s", rate));
    if (s.qos > 0) {
      row("acknowledged", fmt::format("{} ({})", acked, s.qos == 1 ? "PUBACK" : "PUBCOMP"));
      row("refused", std::to_string(refused));
      row("unacknowledged", std::to_string(unacked));
    } else {
      row("acknowledged", "- (QoS 0 has no acknowledgements)");
    }
    print_errors(sh);
    print_cpu(use);
  }
  return sh.errors || unacked ? 1 : 0;
}

// ------------------------------------------------------------------- sub --

int run_sub(Settings s) {
  const char* me = "petrel bench sub";
  Plan plan;
  if (!plan_clients(me, s, "sub", true, plan)) return 2;
  Shared sh;
  sh.s = s;
  sh.end_to_end = false;
  sh.track_sequences = true;
  // Members of a shared subscription each get part of a publisher's
  // sequence: only together do they see it whole.
  sh.group_tracking = plan.shared_filters;
  sh.stop_after = s.count;
  sh.run_id = new_run_id();
  std::unique_ptr<asio::ssl::context> tls;
  if (int rc = prepare(me, sh, tls)) return rc;
  const unsigned threads = thread_count(s);
  sh.histograms.resize(threads);
  Loops loops(threads);
  std::vector<std::shared_ptr<Client>> clients;
  if (int rc = start_clients(me, sh, loops, Client::Role::Subscriber, plan, clients)) return rc;
  // Even with --json: a script can start its publishers once this is out.
  std::fprintf(stderr, "%s: %u subscription%s ready\n", me, s.clients, s.clients == 1 ? "" : "s");

  InterruptGuard interrupt;
  const double cpu0 = cpu_seconds();
  const auto t0 = Clock::now();
  sh.running = true;
  std::uint64_t last = 0;
  run_seconds(
      t0, end_of(s, t0), [&] { return sh.count_reached.load() || sh.closed.load() >= s.clients; },
      [&](int sec) {
        const std::uint64_t got = sh.received.load();
        if (!s.json) print_progress(sec, got - last, "lost", sh.lost.load(), sh.errors.load());
        last = got;
      });
  sh.stopping = true;
  const auto t1 = Clock::now();
  const double cpu = cpu_seconds() - cpu0;
  const double wall = std::chrono::duration<double>(t1 - t0).count();
  if (!s.json && t1 - t0 >= std::chrono::seconds(1)) std::fprintf(stderr, "\n");
  stop_clients(sh, loops, clients);

  Histogram h;
  for (const auto& x : sh.histograms) h.merge(x);
  std::uint64_t first = 0, last_rx = 0;
  std::set<std::pair<std::uint32_t, std::uint32_t>> publishers;
  auto add = [&](std::uint32_t run, std::uint32_t pub) { publishers.emplace(run, pub); };
  for (const auto& c : clients) {
    if (c->first_receive_ns() && (first == 0 || c->first_receive_ns() < first)) first = c->first_receive_ns();
    last_rx = std::max(last_rx, c->last_receive_ns());
    c->tracker().for_each_publisher(add);
  }
  sh.group.for_each_publisher(add);
  const std::uint64_t received = sh.received.load();
  const double active = last_rx > first ? static_cast<double>(last_rx - first) / 1e9 : 0;
  // Messages per second between the first and the last arrival.
  const double rate = received >= 2 && active > 0 ? static_cast<double>(received - 1) / active : 0;
  const std::int64_t lost = sh.lost.load();
  const CpuUse use = cpu_use(cpu, wall, threads);
  const bool short_of_count = s.count > 0 && !sh.count_reached;
  if (s.json) {
    nlohmann::json j{{"scenario", "sub"},
                     {"clients", s.clients},
                     {"qos", s.qos},
                     {"protocol", protocol_name(sh)},
                     {"filter_pattern", s.pattern},
                     {"duration_s", wall},
                     {"active_s", active},
                     {"received", received},
                     {"unstamped", sh.foreign.load()},
                     {"publishers", publishers.size()},
                     {"msgs_per_second", rate},
                     {"latency_us", latency_json(h)},
                     {"lost", lost},
                     {"duplicates", sh.duplicates.load()},
                     {"out_of_order", sh.out_of_order.load()},
                     {"count", s.count},
                     {"count_reached", s.count > 0 && sh.count_reached},
                     {"errors", sh.errors.load()},
                     {"failures", sh.failures},
                     {"interrupted", InterruptGuard::interrupted()},
                     {"bench_cpu_percent", use.percent},
                     {"bench_saturated", use.saturated},
                     {"bench_threads", threads}};
    std::printf("%s\n", j.dump().c_str());
  } else {
    std::printf("%s: %u client%s, QoS %d, MQTT %s, filter '%s'%s\n", me, s.clients, s.clients == 1 ? "" : "s", s.qos,
                protocol_name(sh), s.pattern.c_str(), InterruptGuard::interrupted() ? " (interrupted)" : "");
    row("duration", fmt::format("{:.2f} s, receiving for {:.2f} s", wall, active));
    row("received",
        fmt::format("{} from {} publisher{}{}{}", received, publishers.size(), publishers.size() == 1 ? "" : "s",
                    sh.foreign ? fmt::format(", {} without a bench stamp", sh.foreign.load()) : "",
                    short_of_count ? fmt::format(" (stopped short of {})", s.count) : ""));
    row("throughput", fmt::format("{:.0f} msgs/s", rate));
    row("latency", h.count() ? fmt::format("p50 {} us, p90 {} us, p99 {} us, max {} us", h.percentile(0.5),
                                           h.percentile(0.9), h.percentile(0.99), h.max())
                             : std::string("-"));
    row("lost", std::to_string(lost));
    row("duplicates", std::to_string(sh.duplicates.load()));
    row("out of order", std::to_string(sh.out_of_order.load()));
    print_errors(sh);
    print_cpu(use);
  }
  if (sh.errors) return 1;
  return short_of_count ? 3 : 0;
}

}  // namespace petrel::bench
