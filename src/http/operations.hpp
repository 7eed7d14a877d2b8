// http::Operations: what the HTTP layer needs to know and do beyond the
// broker core, defined here and implemented by app/ (service.cpp wires it):
// listener health and certificates (net::Server), store health and commit
// latency (the store), readiness, process facts, the effective
// configuration and reload actions. The core itself is read through its
// operator queries (broker.hpp); nothing in this layer includes net/ or
// store/ headers, so the HTTP API cannot reach into their internals.
//
// Every function may be called from the HTTP thread at any time and must be
// thread-safe and quick (no I/O beyond /proc, no lock held for long).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace petrel::http {

using TimePoint = std::chrono::system_clock::time_point;

// A count since start and over the last minute.
struct Count {
  std::uint64_t total = 0, last_minute = 0;
};

struct CertificateStatus {
  std::string subject, issuer, serial;
  TimePoint not_before{}, not_after{};
  TimePoint loaded_at{};     // when the certificate in use was loaded
  TimePoint last_reload{};   // last reload attempt ({}: none since start)
  std::optional<std::string> last_reload_error;
  std::uint64_t reloads = 0;
};

struct ListenerStatus {
  std::string name, type, bind;
  std::uint16_t port = 0;
  std::string state;  // "accepting", "backing_off" (accept failed: EMFILE...), "closed"
  TimePoint state_since{};
  std::string last_accept_error;  // "" if none since start
  TimePoint last_accept_error_at{};
  std::uint64_t connections = 0;  // open now (MQTT connections and those not yet CONNECTed)
  Count accepts;
  struct Failure {
    std::string reason;  // label: "max_connections", "certificate_expired", "connect_timeout", ...
    std::string kind;    // "refusal", "handshake" or "timeout"
    Count count;
  };
  std::vector<Failure> failures;
  std::uint64_t handshakes_in_progress = 0, handshakes_completed = 0;
  std::optional<CertificateStatus> certificate;  // TLS and WSS listeners
};

// Bucket counts (not cumulative) for upper bounds `bounds`, plus one above.
struct Histogram {
  std::vector<double> bounds;
  std::vector<std::uint64_t> buckets;
  double sum = 0;
  std::uint64_t count = 0;
};

struct StoreStatus {
  std::string type;  // "sqlite" or "memory"
  bool writable = true;  // false while commits fail (the writer retries)
  std::string error;     // the last commit failure
  TimePoint error_at{};
  std::uint64_t commits = 0, errors = 0, backlog = 0;
  std::optional<Histogram> commit_latency;  // seconds
};

struct ProcessStatus {
  double cpu_seconds = 0;
  std::uint64_t resident_bytes = 0, virtual_bytes = 0;
  std::uint64_t open_fds = 0, max_fds = 0;
  TimePoint started_at{};
  unsigned event_loops = 0;
};

// A bridge to another broker (docs/bridges.md), as app/ reports it.
struct BridgeStatus {
  std::string name, address, client_id;
  bool tls = false;
  int version = 5;  // 4 (3.1.1) or 5
  std::string state;  // "connected", "connecting", "waiting" (to reconnect), "stopped"
  bool connected = false;
  TimePoint since{};
  std::string last_error;  // "" if none since start
  TimePoint last_error_at{};
  std::uint64_t queued = 0, inflight = 0, forwarded = 0, received = 0, dropped = 0, refused = 0, resent = 0,
                connects = 0;
  std::uint16_t remote_receive_maximum = 0;  // while connected
};

// /ready: ready when every listener accepts, the store is writable and
// start-up is complete; otherwise the reasons, one sentence each.
struct Readiness {
  bool ready = false;
  std::vector<std::string> reasons;
};

struct ReloadResult {
  std::string target;  // "listener 'tls'", "http tokens", ...
  bool ok = true;
  std::string error;
};

enum class ListenerReload { Reloaded, Failed, NoSuchListener, NotTls };

struct Operations {
  std::function<std::vector<ListenerStatus>()> listeners;
  std::function<StoreStatus()> store;
  std::function<ProcessStatus()> process;
  std::function<Readiness()> readiness;
  // The configuration in force, secrets redacted.
  std::function<nlohmann::json()> effective_config;
  // What SIGHUP reloads (every TLS listener, the HTTP listener's
  // certificate and tokens).
  std::function<std::vector<ReloadResult>()> reload_all;
  // One listener's certificates; `error` says why it failed.
  std::function<ListenerReload(const std::string& listener, std::string& error)> reload_listener;
  // The HTTP listener's own certificate, if it serves TLS.
  std::function<std::optional<CertificateStatus>()> http_certificate;
  // Every configured bridge (unset: none).
  std::function<std::vector<BridgeStatus>()> bridges;
  // HTTP Basic credentials (the auth layer's password file); unset: Basic
  // is not accepted, only bearer tokens.
  std::function<bool(std::string_view user, std::string_view password)> check_password;
};

}  // namespace petrel::http
