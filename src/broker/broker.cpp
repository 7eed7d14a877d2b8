#include "broker/broker.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/post.hpp>

#include "broker/fault.hpp"
#include "mqtt/topic.hpp"

namespace petrel::broker {

Broker::Broker(BrokerConfig config, RetainedStore& retained, SessionStore& sessions,
               boost::asio::io_context& housekeeping)
    : config_(config),
      retained_(retained),
      session_store_(sessions),
      housekeeping_(housekeeping),
      deadlines_(housekeeping, [this](const SessionPtr& s, Deadlines::Kind kind, Clock::time_point due) {
        contain("a session deadline", [&] { on_deadline(s, kind, due); });
      }) {
  session_store_.set_commit_listener([this](std::uint64_t committed) { on_commit(committed); });
  if (config_.sys_interval.count() > 0) {
    sys_timer_ = std::make_unique<boost::asio::steady_timer>(housekeeping_);
    boost::asio::post(housekeeping_, [this] {
      contain("publishing $SYS", [this] { publish_sys(); });
      start_sys_timer();
    });
  }
}

Broker::~Broker() { session_store_.set_commit_listener(nullptr); }

void Broker::wake_when_committed(std::uint64_t ticket, std::weak_ptr<SessionLink> link) {
  {
    std::lock_guard lock(waiters_mutex_);
    // The store publishes committed() before it calls on_commit, which takes
    // this mutex: either the check sees the commit, or on_commit sees the
    // waiter.
    if (session_store_.committed() < ticket) {
      waiters_.emplace(ticket, std::move(link));
      return;
    }
  }
  if (auto l = link.lock()) l->wake();
}

void Broker::on_commit(std::uint64_t committed) {
  std::vector<std::weak_ptr<SessionLink>> due;
  {
    std::lock_guard lock(waiters_mutex_);
    auto end = waiters_.upper_bound(committed);
    for (auto it = waiters_.begin(); it != end; ++it) due.push_back(std::move(it->second));
    waiters_.erase(waiters_.begin(), end);
  }
  for (auto& w : due)
    if (auto link = w.lock()) link->wake();
}

// ------------------------------------------------------------- sessions --

Broker::Attached Broker::attach(const IdentityPtr& identity, bool clean_start, std::uint32_t expiry_interval,
                                std::optional<WillMessage> will, const std::shared_ptr<SessionLink>& link) {
  const std::string& client_id = identity->client_id;
  std::vector<MessagePtr> wills_due;
  Attached out;
  {
    std::lock_guard registry(registry_mutex_);
    SessionPtr s;
    if (auto it = sessions_.find(client_id); it != sessions_.end()) {
      s = *it;
      std::unique_lock lock(s->mutex);
      // The old connection stops counting now; its own detach will find the
      // session's generation moved on and do nothing.
      if (s->online()) Stats::sub(stats_.clients_connected);
      if (auto old = s->link.lock()) {
        Stats::add(stats_.disconnects_taken_over);
        spdlog::info("client {} taken over by a new connection from {} (old connection {})", client_id,
                     identity->peer, s->identity ? s->identity->peer : std::string("?"));
        old->kick(mqtt::ReasonCode::SessionTakenOver);
      }
      s->link.reset();
      // A resumed session is no longer waiting to expire, nor to publish a
      // delayed will (a session that ends is cancelled below).
      deadlines_.cancel_all(*s);
      // The session ends here if the new connection starts clean, or if the
      // old one had a session expiry of 0 (its state must never be reused,
      // [MQTT-3.1.2-6]). Otherwise it is resumed.
      const bool ends = clean_start || s->expiry_interval == 0;
      // The old connection's will (docs/architecture.md, "Wills"): a new
      // connection to the session before the will was published means it is
      // never published [MQTT-3.1.3-9], unless the session ends here, which
      // makes it due at once.
      if (s->will) {
        if (ends) will_due(*s->will, s->identity, wills_due);
        s->will.reset();
      }
      lock.unlock();
      if (ends) {
        end_session_locked(s, wills_due);
        s.reset();
      }
    }
    if (!s) {
      s = std::make_shared<Session>(client_id);
      sessions_.insert(s);
    } else {
      out.session_present = true;
    }
    std::lock_guard lock(s->mutex);
    const bool was_stored = out.session_present && s->persistent();
    s->generation++;
    s->link = link;
    s->identity = identity;
    s->changed_at = std::chrono::system_clock::now();
    s->set_online(true);
    s->expiry_interval = expiry_interval;
    s->will = will ? std::make_unique<WillMessage>(std::move(*will)) : nullptr;
    s->wake_pending = false;
    out.generation = s->generation;
    out.session = s;
    if (expiry_interval > 0) {
      s->store_key = session_store_.session_saved(client_id, s->store_key, expiry_interval, identity->version,
                                                  s->will.get(), identity->username, identity->listener);
    } else if (was_stored && s->store_key) {
      // Resumed with expiry 0: it ends with this connection (or a crash).
      s->forget_stored(session_store_);
      session_store_.session_deleted(client_id);
    }
  }
  Stats::add(stats_.clients_connected);
  Stats::add(stats_.connects);
  for (const auto& w : wills_due) publish(w);
  return out;
}

void Broker::will_due(const WillMessage& will, const IdentityPtr& identity, std::vector<MessagePtr>& out) {
  if (identity && !authorizer_->may_publish(*identity, will.will.topic, will.will.qos, will.will.retain)) {
    spdlog::info("will of client {} on '{}' not published: not authorized", will.client_id, will.will.topic);
    return;
  }
  out.push_back(will.to_message());
}

void Broker::detach(const SessionPtr& session, std::uint64_t generation, bool publish_will) {
  std::vector<MessagePtr> wills_due;
  {
    std::lock_guard registry(registry_mutex_);
    std::unique_lock lock(session->mutex);
    if (session->generation != generation) return;  // taken over: the new connection owns it
    Stats::sub(stats_.clients_connected);
    Stats::add(publish_will ? stats_.disconnects_abnormal : stats_.disconnects_normal);
    session->link.reset();
    session->set_online(false);
    session->wake_pending = false;
    session->changed_at = std::chrono::system_clock::now();
    ++session->generation;
    // Offline, it keeps only what it must: the queue's spare room and empty
    // containers go (issue 16).
    session->queue.shrink_to_fit();
    if (session->inflight.empty()) session->inflight.clear();
    if (session->inbound_qos2.empty()) session->inbound_qos2.clear();
    std::unique_ptr<WillMessage> will = std::move(session->will);
    session->will.reset();
    if (!publish_will) will.reset();
    const std::uint32_t expiry = session->expiry_interval;
    if (expiry == 0) {
      lock.unlock();
      if (will) will_due(*will, session->identity, wills_due);  // the session ends now, so its will is due now
      end_session_locked(session, wills_due);
    } else {
      if (will) {
        const std::uint32_t delay = std::min(will->delay, expiry);
        if (delay == 0) {
          will_due(*will, session->identity, wills_due);
        } else {
          session->will = std::move(will);
          deadlines_.set(session, Deadlines::Kind::Will, Clock::now() + std::chrono::seconds(delay));
        }
      }
      if (expiry != 0xFFFFFFFF)
        deadlines_.set(session, Deadlines::Kind::Expiry, Clock::now() + std::chrono::seconds(expiry));
      session_store_.session_offline(session->client_id(), expiry, session->will.get());
    }
  }
  for (const auto& w : wills_due) publish(w);
}

void Broker::end_session_locked(const SessionPtr& session, std::vector<MessagePtr>& wills) {
  SubscriptionMap subs;
  bool stored = false;
  {
    std::lock_guard lock(session->mutex);
    session->subscriptions.swap(subs);
    if (session->will) will_due(*session->will, session->identity, wills);
    session->will.reset();
    stored = session->store_key != 0;
    if (stored) session->forget_stored(session_store_);
    session->clear_queue();
    session->inflight.clear();
    session->inbound_qos2.clear();
    session->link.reset();
    session->set_online(false);
    session->generation++;
    deadlines_.cancel_all(*session);
  }
  remove_subscriptions(*session, subs);
  if (auto it = sessions_.find(session->client_id()); it != sessions_.end() && *it == session)
    sessions_.erase(it);
  if (stored) session_store_.session_deleted(session->client_id());
}

void Broker::remove_subscriptions(Session& session, const SubscriptionMap& subs) {
  for (const auto& [filter, _] : subs) {
    if (tree_.unsubscribe(filter, &session)) Stats::sub(stats_.subscriptions);
  }
}

void Broker::on_deadline(const SessionPtr& s, Deadlines::Kind kind, Clock::time_point due) {
  std::vector<MessagePtr> wills_due;
  if (kind == Deadlines::Kind::Will) {
    {
      std::lock_guard lock(s->mutex);
      if (s->will_due != due) return;  // resumed or rescheduled meanwhile
      s->will_due = {};
      auto will = std::move(s->will);
      if (will) will_due(*will, s->identity, wills_due);
      if (will && s->persistent()) session_store_.will_cleared(s->client_id());
    }
    for (const auto& w : wills_due) publish(w);
    return;
  }
  {
    std::lock_guard registry(registry_mutex_);
    {
      std::lock_guard lock(s->mutex);
      if (s->expiry_due != due) return;
      s->expiry_due = {};
    }
    spdlog::debug("session {} expired", s->client_id());
    end_session_locked(s, wills_due);
  }
  for (const auto& w : wills_due) publish(w);
}

std::size_t Broker::session_count() const {
  std::lock_guard registry(registry_mutex_);
  return sessions_.size();
}

void Broker::disconnect_all(mqtt::ReasonCode reason) {
  std::lock_guard registry(registry_mutex_);
  for (const auto& s : sessions_) {
    std::lock_guard lock(s->mutex);
    if (auto link = s->link.lock()) link->kick(reason);
  }
}

namespace {
// What is left of a delay measured across a restart, rounded up to whole
// seconds: the offline time comes from two readings of the wall clock, in
// milliseconds, and a will must never be published early.
std::chrono::seconds rounded_up(std::int64_t ms) { return std::chrono::seconds((ms + 999) / 1000); }

// What is known of a restored session's client until it connects again: its
// client id, user name and listener (for access control), protocol version.
IdentityPtr restored_identity(const StoredSession& st) {
  auto id = std::make_shared<ClientIdentity>();
  id->client_id = st.client_id;
  id->username = st.username;
  id->listener = st.listener;
  id->version = st.version;
  id->clean_start = false;
  return id;
}
}  // namespace

Broker::Restored Broker::restore(std::vector<StoredSession> stored) {
  Restored r;
  const auto unix_now = std::chrono::duration_cast<std::chrono::milliseconds>(
                            std::chrono::system_clock::now().time_since_epoch())
                            .count();
  const auto now = Clock::now();
  std::vector<MessagePtr> wills_due;
  std::lock_guard registry(registry_mutex_);
  for (auto& st : stored) {
    // A session connected when the broker stopped counts as disconnected now.
    const std::int64_t offline_ms = st.disconnected_at ? std::max<std::int64_t>(0, unix_now - *st.disconnected_at) : 0;
    const bool never_expires = st.expiry_interval == 0xFFFFFFFF;
    if (st.expiry_interval == 0 ||
        (!never_expires && offline_ms >= static_cast<std::int64_t>(st.expiry_interval) * 1000)) {
      ++r.expired_sessions;
      // Its will is due now: the session ended while the broker was down.
      if (st.will) will_due(*st.will, restored_identity(st), wills_due);
      for (const auto& sd : st.deliveries) session_store_.delivery_removed(sd.id, *sd.delivery.message);
      session_store_.session_deleted(st.client_id);
      continue;
    }
    auto s = std::make_shared<Session>(st.client_id);
    std::lock_guard lock(s->mutex);
    s->identity = restored_identity(st);
    s->changed_at = st.disconnected_at ? std::chrono::system_clock::time_point(std::chrono::milliseconds(*st.disconnected_at))
                                       : std::chrono::system_clock::now();
    s->expiry_interval = st.expiry_interval;
    s->store_key = st.key;
    s->generation = 1;
    for (auto& [filter, entry] : st.subscriptions) {
      s->subscriptions[filter] = entry;
      if (!tree_.subscribe(filter, s, entry.options, entry.subscription_id)) Stats::add(stats_.subscriptions);
      ++r.subscriptions;
    }
    std::uint16_t last_id = 0;
    for (auto& sd : st.deliveries) {
      // A message already sent is completed whatever its expiry
      // (MQTT-4.3.3-7): only queued ones expire.
      if (!sd.packet_id && sd.delivery.message->expired(now)) {
        ++r.expired_messages;
        session_store_.delivery_removed(sd.id, *sd.delivery.message);
        continue;
      }
      sd.delivery.store_id = sd.id;
      if (sd.packet_id && !s->inflight.contains(sd.packet_id)) {
        s->inflight.emplace(sd.packet_id, Inflight{std::move(sd.delivery), sd.state, s->next_order++});
        last_id = sd.packet_id;
        ++r.inflight;
      } else {
        s->restore_queued(std::move(sd.delivery));
        ++r.queued;
      }
    }
    if (last_id) s->next_packet_id = static_cast<std::uint16_t>(last_id == 65535 ? 1 : last_id + 1);
    s->inbound_qos2.insert(st.inbound_qos2.begin(), st.inbound_qos2.end());
    if (st.will) {
      const std::int64_t left = static_cast<std::int64_t>(std::min(st.will->delay, st.expiry_interval)) * 1000 - offline_ms;
      if (left <= 0) {
        will_due(*st.will, s->identity, wills_due);
        session_store_.will_cleared(st.client_id);
      } else {
        s->will = std::make_unique<WillMessage>(std::move(*st.will));
        deadlines_.set(s, Deadlines::Kind::Will, now + rounded_up(left));
      }
    }
    if (!never_expires)
      deadlines_.set(s, Deadlines::Kind::Expiry,
                     now + rounded_up(static_cast<std::int64_t>(st.expiry_interval) * 1000 - offline_ms));
    if (!st.disconnected_at) session_store_.session_offline(st.client_id, st.expiry_interval, s->will.get());
    sessions_.insert(std::move(s));
    ++r.sessions;
  }
  // Published on the housekeeping loop once it runs, like every will.
  for (auto& w : wills_due) boost::asio::post(housekeeping_, [this, w] { publish(w); });
  return r;
}

// -------------------------------------------------------------- routing --

Broker::Routed Broker::route(const MessagePtr& m) {
  if (m->retain() && config_.retain_available) {
    if (m->payload().empty()) {
      retained_.erase(m->topic());
    } else {
      retained_.set(m);
    }
  }
  Stats::count(stats_.in, m->topic(), m->payload().size(), m->qos());
  thread_local std::vector<SubscriptionMatch> matches;
  matches.clear();
  tree_.match(m->topic(), matches);
  Routed routed;
  if (matches.empty()) return routed;
  // Overlapping subscriptions of one session become one delivery at the
  // highest granted QoS carrying every matching subscription identifier.
  std::sort(matches.begin(), matches.end(),
            [](const SubscriptionMatch& a, const SubscriptionMatch& b) { return a.session.get() < b.session.get(); });
  std::array<std::uint64_t, 3> queued_by_qos{};  // counted once per publish, not per delivery
  Authorizer* const check = reader_check();
  // A message for many sessions is committed in one transaction, not in
  // pieces as the writer happens to wake (issue 16): a durable store then
  // writes the message once and one short row per stored delivery, and the
  // publisher's acknowledgement waits for one commit.
  struct Group {
    SessionStore& store;
    std::uint64_t id;
    ~Group() {
      if (id) store.end_group(id);
    }
  } group{session_store_,
          m->qos() > 0 && matches.size() >= kFanoutGroup && session_store_.acks_wait() ? session_store_.begin_group()
                                                                                       : 0};
  for (std::size_t i = 0; i < matches.size();) {
    Session* target = matches[i].session.get();
    Delivery d;
    bool any = false;
    std::size_t j = i;
    for (; j < matches.size() && matches[j].session.get() == target; ++j) {
      const auto& match = matches[j];
      if (match.options.no_local && !match.shared && target->client_id() == m->origin_client_id()) continue;
      d.qos = std::max(d.qos, std::min(m->qos(), match.options.qos));
      d.retain = d.retain || (match.options.retain_as_published && m->retain());
      if (match.subscription_id) d.subscription_ids.push_back(match.subscription_id);
      any = true;
    }
    if (any) {
      d.message = m;
      const std::uint8_t qos = d.qos;
      // An in-process session (a bridge) has its own bounds, is not
      // filtered by access control, and refuses QoS 1/2 it has no room for.
      SessionPolicy* policy = policy_of(*target);
      auto r = policy ? target->enqueue(std::move(d),
                                        Session::QueueLimits{policy->max_queued_messages, policy->max_queued_bytes,
                                                             config_.queue_qos0_offline, &session_store_})
                      : target->enqueue(std::move(d), queue_limits(config_.queue_qos0_offline), check);
      if (r.queued) {
        ++routed.receivers;
        ++queued_by_qos[qos];
      }
      if (r.dropped) {
        Stats::add_dropped_queue_full(stats_, r.dropped);
        if (policy) {
          Stats::add(policy->dropped, r.dropped);
          if (!r.queued && qos > 0) {
            Stats::add(policy->refused);
            routed.refused = true;
          }
        }
      }
    }
    i = j;
  }
  for (std::uint8_t qos = 0; qos < 3; ++qos)
    if (queued_by_qos[qos]) Stats::count(stats_.out, m->topic(), m->payload().size(), qos, queued_by_qos[qos]);
  matches.clear();
  return routed;
}

Broker::SubscribeResult Broker::subscribe(const SessionPtr& session, const std::string& filter,
                                          const mqtt::SubscribeOptions& options, std::uint32_t subscription_id) {
  {
    std::lock_guard lock(session->mutex);
    const bool known = session->subscriptions.contains(filter);
    if (!known && config_.max_subscriptions && session->subscriptions.size() >= config_.max_subscriptions)
      return SubscribeResult::QuotaExceeded;
    const SubscriptionEntry entry{options, subscription_id};
    session->subscriptions[filter] = entry;
    if (session->persistent()) session_store_.subscription_added(session->client_id(), filter, entry);
  }
  const bool replaced = tree_.subscribe(filter, session, options, subscription_id);
  if (!replaced) Stats::add(stats_.subscriptions);
  return replaced ? SubscribeResult::Replaced : SubscribeResult::Added;
}

bool Broker::retained_quota_exceeded(std::string_view topic) const {
  if (!config_.max_retained_messages) return false;
  // The broker's own $SYS topics do not count against the clients' quota.
  const std::size_t total = retained_.size();
  const std::size_t sys = sys_topics_.load(std::memory_order_relaxed);
  const std::size_t stored = total > sys ? total - sys : 0;
  return stored >= config_.max_retained_messages && !retained_.contains(topic);
}

Session::QueueLimits Broker::queue_limits(bool queue_qos0_offline) const {
  return Session::QueueLimits{config_.max_queued_messages, config_.max_queued_bytes, queue_qos0_offline,
                              &session_store_};
}

bool Broker::unsubscribe(const SessionPtr& session, const std::string& filter) {
  {
    std::lock_guard lock(session->mutex);
    if (session->subscriptions.erase(filter) && session->persistent())
      session_store_.subscription_removed(session->client_id(), filter);
  }
  const bool existed = tree_.unsubscribe(filter, session.get());
  if (existed) Stats::sub(stats_.subscriptions);
  return existed;
}

void Broker::send_retained(const SessionPtr& session, const std::string& filter, const SubscriptionEntry& entry) {
  if (mqtt::parse_shared(filter)) return;  // retained messages are not sent to shared subscriptions
  std::vector<MessagePtr> found;
  retained_.match(filter, found);
  const auto now = Clock::now();
  for (auto& m : found) {
    if (m->expired(now)) continue;
    Delivery d;
    d.message = m;
    d.qos = std::min(m->qos(), entry.options.qos);
    d.retain = true;
    if (entry.subscription_id) d.subscription_ids.push_back(entry.subscription_id);
    const std::uint8_t qos = d.qos;
    auto r = session->enqueue(std::move(d), queue_limits(true), reader_check());
    if (r.queued) Stats::count(stats_.out, m->topic(), m->payload().size(), qos);
    if (r.dropped) Stats::add_dropped_queue_full(stats_, r.dropped);
  }
}

// ---------------------------------------------------------------- $SYS --

void Broker::housekeeping_error(std::string_view task, std::string_view what) noexcept {
  Stats::add(stats_.internal_errors);
  try {
    spdlog::error("internal error while {}, housekeeping continues: {}", task, what);
  } catch (...) {
  }
}

void Broker::start_sys_timer() {
  sys_timer_->expires_after(config_.sys_interval);
  sys_timer_->async_wait([this](const boost::system::error_code& ec) {
    if (ec) return;
    contain("publishing $SYS", [this] { publish_sys(); });
    start_sys_timer();
  });
}

void Broker::publish_sys() {
  fault::check("sys");
  auto put = [this](const std::string& topic, std::string value) {
    publish(Message::create("$SYS/broker/" + topic, value, 0, true, ""));
    if (sys_topic_names_.insert(topic).second) sys_topics_.store(sys_topic_names_.size(), std::memory_order_relaxed);
  };
  const auto uptime = std::chrono::duration_cast<std::chrono::seconds>(Clock::now() - started_).count();
  put("version", "petrel " PETREL_VERSION);
  put("uptime", std::to_string(uptime) + " seconds");
  put("clients/connected", std::to_string(Stats::get(stats_.clients_connected)));
  put("clients/total", std::to_string(session_count()));
  put("messages/received", std::to_string(Stats::get(stats_.messages_received)));
  put("messages/sent", std::to_string(Stats::get(stats_.messages_sent)));
  put("publish/messages/received", std::to_string(Stats::get(stats_.publish_received)));
  put("publish/messages/sent", std::to_string(Stats::get(stats_.publish_sent)));
  put("publish/messages/dropped", std::to_string(Stats::get(stats_.publish_dropped)));
  put("bytes/received", std::to_string(Stats::get(stats_.bytes_received)));
  put("bytes/sent", std::to_string(Stats::get(stats_.bytes_sent)));
  put("subscriptions/count", std::to_string(Stats::get(stats_.subscriptions)));
  put("errors/protocol", std::to_string(Stats::get(stats_.protocol_errors)));
  put("errors/internal", std::to_string(Stats::get(stats_.internal_errors)));
  put("retained messages/count", std::to_string(retained_.size()));
  const SysPut sys_put = put;
  for (const auto& source : sys_sources_) source(sys_put);
}

}  // namespace petrel::broker
