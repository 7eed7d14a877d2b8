// broker::Deadlines: the deadlines of offline sessions (a will waiting out
// its delay, a session waiting to expire), kept in one ordered set with one
// timer on the housekeeping loop armed at the earliest of them.
//
// Every resource a session creates must die with it: a session has at most
// one deadline of each kind. Setting one replaces the previous; a session
// that reconnects or ends cancels its own. Memory is therefore bounded by the
// number of sessions, however often they come and go (a timer per offline
// transition that nobody cancels grows without bound under reconnect churn).
//
// The set is keyed by (time, session, kind). The session remembers the time
// of each of its deadlines (Session::will_due / expiry_due), which is how a
// cancel finds its entry and how a firing deadline knows it is still the
// current one: a deadline that fires while its session is being resumed on
// another thread finds the session's time changed and does nothing.
//
// Threading: set() and cancel() run on any thread, with the session's mutex
// held; this structure's own mutex is a leaf (nothing else is locked under
// it). Deadlines fire on the housekeeping loop with no lock held.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <functional>
#include <map>
#include <mutex>

#include "broker/session.hpp"

namespace petrel::broker {

class Deadlines {
 public:
  enum class Kind : std::uint8_t { Will, Expiry };
  // Called on the housekeeping loop for each deadline that has come, with the
  // time it was set for (compare with the session's own under its mutex).
  using Fire = std::function<void(const SessionPtr&, Kind, Clock::time_point due)>;

  Deadlines(boost::asio::io_context& loop, Fire fire);
  ~Deadlines();

  // Sets `session`'s deadline of `kind` to `at`, replacing the one it had.
  // Call with session.mutex held.
  void set(const SessionPtr& session, Kind kind, Clock::time_point at);
  // Removes `session`'s deadline of `kind`, if any. Call with session.mutex held.
  void cancel(Session& session, Kind kind);
  // Both kinds.
  void cancel_all(Session& session) {
    cancel(session, Kind::Will);
    cancel(session, Kind::Expiry);
  }

  // Deadlines pending (for tests and $SYS).
  std::size_t size() const;

 private:
  struct Key {
    Clock::time_point at;
    const Session* session;
    Kind kind;
    auto operator<=>(const Key&) const = default;
  };
  static Clock::time_point& due_of(Session& s, Kind kind) {
    return kind == Kind::Will ? s.will_due : s.expiry_due;
  }
  void arm();  // housekeeping loop only
  void on_timer();

  boost::asio::io_context& loop_;
  Fire fire_;
  boost::asio::steady_timer timer_;  // housekeeping loop only
  mutable std::mutex mutex_;
  std::map<Key, std::weak_ptr<Session>> entries_;  // guarded by mutex_
  // When the timer fires next (guarded by mutex_); max(): not armed.
  Clock::time_point armed_at_ = Clock::time_point::max();
  bool rearm_posted_ = false;  // guarded by mutex_
};

}  // namespace petrel::broker
