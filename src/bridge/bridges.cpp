#include "bridge/bridges.hpp"

#include <spdlog/spdlog.h>

#include <set>

namespace petrel::bridge {

Bridges::Bridges(const std::vector<BridgeSettings>& settings, broker::Broker& broker, boost::asio::io_context& loop) {
  std::set<std::string> configured;
  for (const auto& s : settings) {
    configured.insert(local_client_id(s.name));
    bridges_.push_back(std::make_shared<Bridge>(s, broker, loop));
  }
  // A bridge removed from the configuration leaves a session that never
  // expires and that nothing drains: it goes, and the log says what it held.
  broker::SessionQuery q;
  q.client_id_prefix = "$bridge/";
  q.limit = 1000;
  for (const auto& info : broker.list_sessions(q)) {
    if (configured.contains(info.client_id)) continue;
    spdlog::warn("bridge session '{}' belongs to no configured bridge: deleted with its {} queued and {} in-flight "
                 "messages",
                 info.client_id, info.queued, info.inflight);
    broker.delete_session(info.client_id);
  }
}

void Bridges::start() {
  for (auto& b : bridges_) b->start();
}

std::vector<Status> Bridges::status() const {
  std::vector<Status> out;
  out.reserve(bridges_.size());
  for (const auto& b : bridges_) out.push_back(b->status());
  return out;
}

void Bridges::publish_sys(const broker::Broker::SysPut& put) const {
  for (const auto& b : bridges_) {
    const Status s = b->status();
    const std::string base = "bridge/" + s.name + "/";
    put(base + "connected", s.connected ? "1" : "0");
    put(base + "state", s.state);
    put(base + "queued", std::to_string(s.queued));
    put(base + "inflight", std::to_string(s.inflight));
    put(base + "forwarded", std::to_string(s.forwarded));
    put(base + "received", std::to_string(s.received));
    put(base + "dropped", std::to_string(s.dropped));
    put(base + "refused", std::to_string(s.refused));
    put(base + "resent", std::to_string(s.resent));
    put(base + "connects", std::to_string(s.connects));
    put(base + "last_error", s.last_error);
  }
}

}  // namespace petrel::bridge
