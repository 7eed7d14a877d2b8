// The broker core: the session registry, the subscription tree, the retained
// store and routing. It knows nothing of sockets: connections reach it
// through broker::Client, and it reaches them through Transport.
//
// Threading: called concurrently from every event loop. The registry has its
// own mutex (taken on connect, disconnect and session expiry, never on the
// publish path); the topic tree and retained store have reader/writer locks;
// each session has a mutex. Lock order: registry -> session; the tree and the
// retained store are never held while a session lock is taken. Timers (will
// delay, session expiry, $SYS) run on the housekeeping io_context.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "broker/authorizer.hpp"
#include "broker/config.hpp"
#include "broker/deadlines.hpp"
#include "broker/in_process.hpp"
#include "broker/session.hpp"
#include "broker/stats.hpp"
#include "broker/topic_tree.hpp"
#include "broker/persistence.hpp"
#include "broker/queries.hpp"

namespace petrel::broker {

class Broker {
 public:
  Broker(BrokerConfig config, RetainedStore& retained, SessionStore& sessions,
         boost::asio::io_context& housekeeping);
  ~Broker();

  const BrokerConfig& config() const { return config_; }
  Stats& stats() { return stats_; }
  SessionStore& session_store() { return session_store_; }

  struct Restored {
    std::size_t sessions = 0, subscriptions = 0, queued = 0, inflight = 0, expired_sessions = 0, expired_messages = 0;
  };
  // Rebuilds the persistent sessions read back from the store at start-up
  // (before any connection): their subscriptions, queues, in-flight
  // messages, wills and expiry timers. Sessions and messages that expired
  // while the broker was down are dropped (and deleted from the store).
  Restored restore(std::vector<StoredSession> sessions);

  struct Attached {
    SessionPtr session;
    bool session_present = false;
    std::uint64_t generation = 0;
  };
  // Attaches a connection (`link`, of client `identity`) to the session of
  // identity->client_id, taking it over from another connection if there is
  // one (which is kicked with 0x8E). Handles clean start and the wills that
  // takeover makes due.
  Attached attach(const IdentityPtr& identity, bool clean_start, std::uint32_t expiry_interval,
                  std::optional<WillMessage> will, const std::shared_ptr<SessionLink>& link);

  // The connection of generation `generation` ended. `publish_will`: the
  // connection ended without a normal DISCONNECT (or with 0x04).
  void detach(const SessionPtr& session, std::uint64_t generation, bool publish_will);

  // Routes a message to every matching subscription and stores/clears it as
  // retained when its retain flag is set. `receivers`: the sessions it was
  // delivered or queued to; `refused`: an in-process session (a bridge) had
  // no room for this QoS 1/2 message, and its publisher must be told so (v5:
  // 0x97 Quota exceeded) rather than acknowledged (broker/in_process.hpp).
  struct Routed {
    std::size_t receivers = 0;
    bool refused = false;
  };
  Routed route(const MessagePtr& message);
  std::size_t publish(const MessagePtr& message) { return route(message).receivers; }

  // In-process clients (broker/in_process.hpp): registers the policy of the
  // session `client_id` (which starts with '$'); call before serving.
  void add_in_process(const std::string& client_id, std::shared_ptr<SessionPolicy> policy);
  // Whether `client_id` belongs to an in-process client (network clients
  // may not use it).
  bool in_process(std::string_view client_id) const;

  enum class SubscribeResult { Added, Replaced, QuotaExceeded };
  // Adds or replaces a subscription, unless the session holds
  // max_subscriptions already.
  SubscribeResult subscribe(const SessionPtr& session, const std::string& filter,
                            const mqtt::SubscribeOptions& options, std::uint32_t subscription_id);
  // Whether storing a retained message on `topic` would exceed max_retained_messages.
  bool retained_quota_exceeded(std::string_view topic) const;
  bool unsubscribe(const SessionPtr& session, const std::string& filter);
  // Queues the retained messages matching `filter` to `session`.
  void send_retained(const SessionPtr& session, const std::string& filter, const SubscriptionEntry& entry);

  // Wakes `link` (its connection then sends what it held back) once the
  // session store has committed `ticket`; at once if it has already.
  void wake_when_committed(std::uint64_t ticket, std::weak_ptr<SessionLink> link);

  // Access control (broker/authorizer.hpp). AllowAll unless one is set;
  // set it before the first connection, and keep it alive with the broker.
  void set_authorizer(Authorizer& authorizer) { authorizer_ = &authorizer; }
  Authorizer& authorizer() { return *authorizer_; }

  // --- Operator queries and commands (queries.cpp). Each takes the
  // registry lock once (a scan of client ids, no copies) and each listed
  // session's mutex briefly; none holds a lock while the caller works.

  // A page of sessions (online and offline) matching `q`, by client id.
  std::vector<SessionInfo> list_sessions(const SessionQuery& q) const;
  std::optional<SessionInfo> find_session(const std::string& client_id) const;
  // The subscriptions of one session, by filter (empty if it has none or is unknown).
  std::vector<SubscriptionInfo> session_subscriptions(const std::string& client_id) const;
  // A page of all subscriptions.
  std::vector<SubscriptionInfo> list_subscriptions(const SubscriptionQuery& q) const;
  // Ends a client's connection as the server (v5: DISCONNECT `reason`, e.g.
  // 0x98 Administrative action); its session stays as its expiry says.
  // False if the client is not connected.
  bool disconnect_client(const std::string& client_id, mqtt::ReasonCode reason);
  // Ends a session now (connected or not; a connected client is disconnected
  // with 0x98), with its subscriptions, queue and pending will (not
  // published). False if there is no such session.
  bool delete_session(const std::string& client_id);
  // Retained messages whose topics match `filter`, at most `limit`, in
  // topic order, starting after the topic `after` ("" = the first page).
  std::vector<MessagePtr> retained_messages(std::string_view filter, std::size_t limit,
                                            std::string_view after = {}) const;
  std::size_t retained_count() const;
  // Counts over every session (online/offline, queued, in flight, by
  // listener and protocol). The registry lock is held while the sessions
  // are counted and listed; each session's mutex is then taken on its own.
  SessionTotals session_totals() const;
  // Removes the retained message of `topic`; false if there was none.
  bool delete_retained(std::string_view topic);

  // Kicks every connection (server shutting down).
  void disconnect_all(mqtt::ReasonCode reason);

  std::size_t session_count() const;
  // Pending will and expiry deadlines of offline sessions.
  std::size_t deadline_count() const { return deadlines_.size(); }

  // Extra $SYS topics (e.g. per-listener metrics): `source` is called at each
  // $SYS interval with a function that publishes $SYS/broker/<topic>.
  using SysPut = std::function<void(const std::string& topic, std::string value)>;
  void add_sys_source(std::function<void(const SysPut&)> source) { sys_sources_.push_back(std::move(source)); }

 private:
  void end_session_locked(const SessionPtr& session, std::vector<MessagePtr>& wills);
  // Adds `will` to `out` unless its client may not publish it (a will is
  // checked when it is published, with the identity of its session).
  void will_due(const WillMessage& will, const IdentityPtr& identity, std::vector<MessagePtr>& out);
  // The authorizer to ask at delivery, or null when it does not check deliveries.
  Authorizer* reader_check() const { return authorizer_->checks_delivery() ? authorizer_ : nullptr; }
  void remove_subscriptions(Session& session, const SubscriptionMap& subs);
  // A session's delayed will or expiry has come (Deadlines, housekeeping loop).
  void on_deadline(const SessionPtr& session, Deadlines::Kind kind, Clock::time_point due);
  void publish_sys();
  Session::QueueLimits queue_limits(bool queue_qos0_offline) const;
  // The policy of an in-process session, or null (in_process.cpp).
  SessionPolicy* policy_of(const Session& s) const;
  void start_sys_timer();
  // Runs a housekeeping task; an exception it throws is logged and counted
  // (Stats::internal_errors), and the housekeeping loop goes on.
  template <class F>
  void contain(std::string_view task, F&& fn) noexcept {
    try {
      fn();
    } catch (const std::exception& e) {
      housekeeping_error(task, e.what());
    } catch (...) {
      housekeeping_error(task, "an exception that is not a std::exception");
    }
  }
  void housekeeping_error(std::string_view task, std::string_view what) noexcept;
  void on_commit(std::uint64_t committed);

  // From this many matching subscriptions on, a publish's store changes are
  // one group (Broker::publish).
  static constexpr std::size_t kFanoutGroup = 64;

  BrokerConfig config_;
  RetainedStore& retained_;
  SessionStore& session_store_;
  boost::asio::io_context& housekeeping_;
  Stats stats_;
  AllowAll allow_all_;
  Authorizer* authorizer_ = &allow_all_;
  TopicTree tree_;
  Deadlines deadlines_;

  std::mutex waiters_mutex_;  // a leaf: no other lock is taken while it is held
  std::multimap<std::uint64_t, std::weak_ptr<SessionLink>> waiters_;

  mutable std::mutex registry_mutex_;
  // The sessions, found by their own client id: the id is not stored a
  // second time, and a node is a pointer and the SessionPtr (32 bytes
  // allocated per session, where a map keyed by a view of the id took 64).
  struct SessionById {
    using is_transparent = void;
    std::size_t operator()(std::string_view id) const noexcept { return std::hash<std::string_view>{}(id); }
    std::size_t operator()(const SessionPtr& s) const noexcept { return (*this)(s->client_id()); }
    template <class A, class B>
    bool operator()(const A& a, const B& b) const noexcept {
      return key(a) == key(b);
    }
    static std::string_view key(std::string_view id) noexcept { return id; }
    static std::string_view key(const SessionPtr& s) noexcept { return s->client_id(); }
  };
  std::unordered_set<SessionPtr, SessionById, SessionById> sessions_;
  // The client ids in order, for paging (queries.cpp); the HTTP thread's.
  std::shared_ptr<const std::vector<std::string>> sorted_client_ids(bool fresh) const;
  mutable std::mutex id_snapshot_mutex_;  // taken before registry_mutex_, never after
  mutable std::shared_ptr<const std::vector<std::string>> id_snapshot_;
  mutable Clock::time_point id_snapshot_taken_{};

  // Written before serving only, then read without a lock.
  struct IdHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
  };
  std::unordered_map<std::string, std::shared_ptr<SessionPolicy>, IdHash, std::equal_to<>> in_process_;

  std::unique_ptr<boost::asio::steady_timer> sys_timer_;
  std::vector<std::function<void(const SysPut&)>> sys_sources_;
  std::unordered_set<std::string> sys_topic_names_;  // housekeeping thread only
  std::atomic<std::size_t> sys_topics_{0};
  const Clock::time_point started_ = Clock::now();
};

}  // namespace petrel::broker
