// app/'s side of the HTTP layer's seam (http/operations.hpp): what the
// operator API learns of the net and store layers and of the process, and
// the reloads it may ask for, translated from their types into the HTTP
// layer's. Each function reads thread-safe status (atomics, small locks)
// and may be called from the HTTP thread at any time.
#include <fmt/format.h>

#include "app/process.hpp"
#include "app/service.hpp"
#include "auth/password_file.hpp"

namespace petrel::app {

namespace {

http::CertificateStatus certificate(const net::TlsContext::Status& s) {
  http::CertificateStatus c;
  c.subject = s.certificate.subject;
  c.issuer = s.certificate.issuer;
  c.serial = s.certificate.serial;
  c.not_before = s.certificate.not_before;
  c.not_after = s.certificate.not_after;
  c.loaded_at = s.loaded_at;
  c.last_reload = s.last_reload;
  c.last_reload_error = s.last_reload_error;
  c.reloads = s.reloads;
  return c;
}

std::string state_label(net::ListenerState s) {
  switch (s) {
    case net::ListenerState::Accepting: return "accepting";
    case net::ListenerState::BackingOff: return "backing_off";
    case net::ListenerState::Closed: return "closed";
  }
  return "unknown";
}

}  // namespace

http::Operations Service::operations() {
  http::Operations ops;
  ops.listeners = [this] {
    std::vector<http::ListenerStatus> out;
    for (const auto& l : server_->listener_status()) {
      http::ListenerStatus h;
      h.name = l.name;
      h.type = l.type;
      h.bind = l.bind;
      h.port = l.port;
      h.state = state_label(l.state);
      h.state_since = l.state_since;
      h.last_accept_error = l.last_accept_error.what;
      h.last_accept_error_at = l.last_accept_error.at;
      h.connections = l.open;
      h.accepts = {l.accepted.total, l.accepted.last_minute};
      for (const auto& [label, count] : l.failures)
        h.failures.push_back({label, std::string(net::ListenerStats::failure_kind(label)),
                              {count.total, count.last_minute}});
      h.handshakes_in_progress = l.handshakes_in_progress;
      h.handshakes_completed = l.handshakes_completed;
      if (l.tls) h.certificate = certificate(*l.tls);
      out.push_back(std::move(h));
    }
    return out;
  };
  ops.store = [this] {
    http::StoreStatus s;
    s.type = config_.store.type;
    if (sqlite_) {
      const auto h = sqlite_->health();
      s.writable = !h.failing;
      s.error = h.last_error;
      s.error_at = h.last_error_at;
      s.commits = sqlite_->commits();
      s.errors = sqlite_->errors();
      s.backlog = sqlite_->backlog();
      const auto l = sqlite_->commit_latency();
      http::Histogram hist;
      hist.bounds.assign(store::SqliteStore::kCommitBounds.begin(), store::SqliteStore::kCommitBounds.end());
      hist.buckets.assign(l.buckets.begin(), l.buckets.end());
      hist.sum = l.sum_seconds;
      hist.count = l.count;
      s.commit_latency = std::move(hist);
    }
    return s;
  };
  ops.process = [this] {
    return process_status(started_, config_.server.threads ? config_.server.threads
                                                           : std::max(1u, std::thread::hardware_concurrency()));
  };
  ops.readiness = [this] { return readiness(); };
  ops.effective_config = [this] { return config_json(config_); };
  ops.reload_all = [this] { return reload(); };
  ops.reload_listener = [this](const std::string& name, std::string& error) {
    switch (server_->reload_tls(name, error)) {
      case net::Server::ReloadOutcome::Reloaded: return http::ListenerReload::Reloaded;
      case net::Server::ReloadOutcome::Failed: return http::ListenerReload::Failed;
      case net::Server::ReloadOutcome::NoSuchListener: return http::ListenerReload::NoSuchListener;
      case net::Server::ReloadOutcome::NotTls: return http::ListenerReload::NotTls;
    }
    return http::ListenerReload::NoSuchListener;
  };
  if (http_tls_)
    ops.http_certificate = [this]() -> std::optional<http::CertificateStatus> {
      return certificate(http_tls_->status());
    };
  if (!config_.http.options.password_file.empty())
    ops.check_password = [this](std::string_view user, std::string_view password) {
      std::shared_ptr<const auth::PasswordFile> users;
      {
        std::lock_guard lock(http_users_mutex_);
        users = http_users_;
      }
      return users && users->check(user, password) == auth::PasswordFile::Result::Match;
    };
  ops.bridges = [this] {
    std::vector<http::BridgeStatus> out;
    for (const auto& b : bridges_->status()) {
      http::BridgeStatus h;
      h.name = b.name;
      h.address = b.address;
      h.client_id = b.client_id;
      h.tls = b.tls;
      h.version = b.version == mqtt::Version::V5 ? 5 : 4;
      h.state = b.state;
      h.connected = b.connected;
      h.since = b.since;
      h.last_error = b.last_error;
      h.last_error_at = b.last_error_at;
      h.queued = b.queued;
      h.inflight = b.inflight;
      h.forwarded = b.forwarded;
      h.received = b.received;
      h.dropped = b.dropped;
      h.refused = b.refused;
      h.resent = b.resent;
      h.connects = b.connects;
      h.remote_receive_maximum = b.remote_receive_maximum;
      out.push_back(std::move(h));
    }
    return out;
  };
  return ops;
}

}  // namespace petrel::app
