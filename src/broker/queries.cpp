// Broker's operator queries and commands (declared in broker.hpp).
//
// Listing pages through a sorted snapshot of the client ids, taken by one
// scan of the registry for the first page of a listing (a request without
// a cursor) and reused by the pages that follow for a few seconds: paging
// through 100,000 sessions 1,000 at a time is then one scan of the
// registry, not a hundred (each scan touches every session's memory, which
// the event loops on that core then miss in their caches). Each page looks
// its ids up in the registry in small batches under its lock, and reads
// the facts of the sessions it keeps under each session's own mutex, one at
// a time. The publish path takes neither lock. A session created after the
// snapshot appears from the next first page on; one ended since is skipped.
#include <algorithm>

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

}  // namespace

std::shared_ptr<const std::vector<std::string>> Broker::sorted_client_ids(bool fresh) const {
  // A page of a listing in progress reuses the snapshot for this long.
  constexpr auto kSnapshotAge = std::chrono::seconds(5);
  std::lock_guard lock(id_snapshot_mutex_);
  const auto now = Clock::now();
  if (fresh || !id_snapshot_ || now - id_snapshot_taken_ > kSnapshotAge) {
    auto ids = std::make_shared<std::vector<std::string>>();
    {
      std::lock_guard registry(registry_mutex_);
      ids->reserve(sessions_.size());
      for (const auto& s : sessions_) ids->emplace_back(s->client_id());
    }
    std::sort(ids->begin(), ids->end());
    id_snapshot_ = std::move(ids);
    id_snapshot_taken_ = now;
  }
  return id_snapshot_;
}

std::vector<SessionInfo> Broker::list_sessions(const SessionQuery& q) const {
  const auto ids = sorted_client_ids(q.after.empty());
  auto it = q.after.empty() ? ids->begin() : std::upper_bound(ids->begin(), ids->end(), q.after);
  if (!q.client_id_prefix.empty())
    it = std::max(it, std::lower_bound(ids->begin(), ids->end(), q.client_id_prefix));
  std::vector<SessionPtr> page;
  page.reserve(std::min<std::size_t>(q.limit, 1024));
  // Looked up a batch at a time, so that the registry lock is held briefly.
  constexpr std::size_t kBatch = 256;
  while (it != ids->end() && page.size() < q.limit) {
    if (!it->starts_with(q.client_id_prefix)) break;  // sorted: no match after the prefix's range
    std::lock_guard registry(registry_mutex_);
    for (std::size_t n = 0; n < kBatch && it != ids->end() && page.size() < q.limit; ++n, ++it) {
      if (!it->starts_with(q.client_id_prefix)) break;
      const auto found = sessions_.find(*it);
      if (found == sessions_.end()) continue;  // ended since the snapshot
      const SessionPtr& s = *found;
      // The identity is written only with the registry lock held, so it can
      // be read here.
      if (q.online && s->online() != *q.online) continue;
      if (q.username && (!s->identity || s->identity->username != q.username)) continue;
      if (q.listener && (!s->identity || s->identity->listener != *q.listener)) continue;
      page.push_back(s);
    }
  }
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
    s = *it;
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
    s = *it;
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
  std::lock_guard lock((*it)->mutex);
  auto link = (*it)->link.lock();
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
    SessionPtr s = *it;
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
    for (const auto& s : sessions_) {
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
