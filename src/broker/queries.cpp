// Broker's operator queries and commands (declared in broker.hpp). Listing
// scans the registry once under its lock, comparing client ids only, and
// keeps the `limit` smallest ids after the cursor in a heap; the facts of
// those sessions are then read under each session's own mutex, one at a
// time. The publish path takes neither lock, so a client list pulled in a
// loop does not slow message delivery.
#include <algorithm>
#include <queue>

#include "broker/broker.hpp"

namespace petrel::broker {

namespace {

SessionInfo facts(const Session& s) {
  SessionInfo i;
  i.client_id = s.client_id();
  i.online = s.online();
  if (s.identity) {
    i.username = s.identity->username;
    i.listener = s.identity->listener;
    i.peer = s.identity->peer;
    i.version = s.identity->version;
    i.clean_start = s.identity->clean_start;
    i.keep_alive = s.identity->keep_alive;
    i.connected_at = s.identity->connected_at;
  }
  i.changed_at = s.changed_at;
  i.expiry_interval = s.expiry_interval;
  i.subscriptions = s.subscriptions.size();
  i.queued = s.queue.size();
  i.queued_bytes = s.queued_bytes;
  i.inflight = s.inflight.size();
  i.inbound_qos2 = s.inbound_qos2.size();
  i.will_pending = s.will != nullptr && !s.online();
  return i;
}

struct ByClientId {
  bool operator()(const Session* a, const Session* b) const { return a->client_id() < b->client_id(); }
};

}  // namespace

std::vector<SessionInfo> Broker::list_sessions(const SessionQuery& q) const {
  std::vector<SessionPtr> page;
  {
    std::lock_guard registry(registry_mutex_);
    // A max-heap of the `limit` smallest client ids after the cursor. The
    // identity is written only with the registry lock held, so it can be
    // read here.
    std::priority_queue<const Session*, std::vector<const Session*>, ByClientId> best;
    for (const auto& [id, s] : sessions_) {
      if (id <= q.after && !q.after.empty()) continue;
      if (!id.starts_with(q.client_id_prefix)) continue;
      if (q.online && s->online() != *q.online) continue;
      if (q.username && (!s->identity || s->identity->username != q.username)) continue;
      if (q.listener && (!s->identity || s->identity->listener != *q.listener)) continue;
      if (best.size() < q.limit) {
        best.push(s.get());
      } else if (!best.empty() && id < best.top()->client_id()) {
        best.pop();
        best.push(s.get());
      }
    }
    page.reserve(best.size());
    while (!best.empty()) {
      page.push_back(sessions_.at(best.top()->client_id()));
      best.pop();
    }
  }
  std::reverse(page.begin(), page.end());
  std::vector<SessionInfo> out;
  out.reserve(page.size());
  for (const auto& s : page) {
    std::lock_guard lock(s->mutex);
    out.push_back(facts(*s));
  }
  return out;
}

std::optional<SessionInfo> Broker::find_session(const std::string& client_id) const {
  SessionPtr s;
  {
    std::lock_guard registry(registry_mutex_);
    auto it = sessions_.find(client_id);
    if (it == sessions_.end()) return std::nullopt;
    s = it->second;
  }
  std::lock_guard lock(s->mutex);
  return facts(*s);
}

std::vector<SubscriptionInfo> Broker::session_subscriptions(const std::string& client_id) const {
  SessionPtr s;
  {
    std::lock_guard registry(registry_mutex_);
    auto it = sessions_.find(client_id);
    if (it == sessions_.end()) return {};
    s = it->second;
  }
  std::vector<SubscriptionInfo> out;
  {
    std::lock_guard lock(s->mutex);
    if (const auto* subs = s->subscriptions.peek())
      for (const auto& [filter, entry] : *subs)
        out.push_back(SubscriptionInfo{client_id, filter, entry.options, entry.subscription_id});
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.filter < b.filter; });
  return out;
}

std::vector<SubscriptionInfo> Broker::list_subscriptions(const SubscriptionQuery& q) const {
  std::vector<SubscriptionInfo> out;
  std::string after = q.after_client_id;
  // Page through sessions until the page of subscriptions is full.
  while (out.size() < q.limit) {
    SessionQuery sq;
    sq.after = after;
    sq.limit = 64;
    const auto sessions = list_sessions(sq);
    if (sessions.empty()) break;
    for (const auto& info : sessions) {
      if (out.size() >= q.limit) return out;
      for (auto& sub : session_subscriptions(info.client_id))
        if (sub.filter.starts_with(q.filter_prefix)) out.push_back(std::move(sub));
      after = info.client_id;
    }
  }
  return out;
}

bool Broker::disconnect_client(const std::string& client_id, mqtt::ReasonCode reason) {
  std::lock_guard registry(registry_mutex_);
  auto it = sessions_.find(client_id);
  if (it == sessions_.end()) return false;
  std::lock_guard lock(it->second->mutex);
  auto link = it->second->link.lock();
  if (!link) return false;
  Stats::add(stats_.disconnects_administrative);
  link->kick(reason);
  return true;
}

bool Broker::delete_session(const std::string& client_id) {
  std::vector<MessagePtr> wills_due;
  {
    std::lock_guard registry(registry_mutex_);
    auto it = sessions_.find(client_id);
    if (it == sessions_.end()) return false;
    SessionPtr s = it->second;
    {
      std::lock_guard lock(s->mutex);
      // The connection, if any, is told and closed; its own detach finds the
      // session gone (generation moved on) and does nothing.
      if (s->online()) Stats::sub(stats_.clients_connected);
      if (auto link = s->link.lock()) link->kick(mqtt::ReasonCode::AdministrativeAction);
      s->will.reset();  // an operator's deletion publishes no will
    }
    end_session_locked(s, wills_due);
  }
  return true;
}

std::vector<MessagePtr> Broker::retained_messages(std::string_view filter, std::size_t limit,
                                                  std::string_view after) const {
  std::vector<MessagePtr> out;
  retained_.match(filter, out);
  if (!after.empty())
    std::erase_if(out, [after](const MessagePtr& m) { return m->topic() <= after; });
  // The `limit` first topics, without sorting the rest.
  auto by_topic = [](const MessagePtr& a, const MessagePtr& b) { return a->topic() < b->topic(); };
  if (out.size() > limit) {
    std::nth_element(out.begin(), out.begin() + static_cast<std::ptrdiff_t>(limit), out.end(), by_topic);
    out.resize(limit);
  }
  std::sort(out.begin(), out.end(), by_topic);
  return out;
}

std::size_t Broker::retained_count() const { return retained_.size(); }

SessionTotals Broker::session_totals() const {
  SessionTotals t;
  std::vector<SessionPtr> all;
  {
    std::lock_guard registry(registry_mutex_);
    all.reserve(sessions_.size());
    for (const auto& [_, s] : sessions_) {
      all.push_back(s);
      if (!s->online()) {
        ++t.offline;
        continue;
      }
      ++t.online;
      // The identity is written with the registry lock held (see list_sessions).
      if (s->identity) ++t.connected[{s->identity->listener, s->identity->version}];
    }
  }
  for (const auto& s : all) {
    std::lock_guard lock(s->mutex);
    t.queued += s->queue.size();
    t.queued_bytes += s->queued_bytes;
    t.inflight += s->inflight.size();
    t.inbound_qos2 += s->inbound_qos2.size();
  }
  return t;
}

bool Broker::delete_retained(std::string_view topic) { return retained_.erase(topic); }

}  // namespace petrel::broker
