// auth::AccessControl: the broker core's Authorizer (broker/authorizer.hpp)
// built from the files and services an operator configures. It is the only
// thing of the auth layer the core sees.
//
// Its state is one immutable snapshot (`Rules`): per listener, whether
// anonymous clients may connect, the password file and the ACL, each file
// loaded once however many listeners share it. SIGHUP builds a new snapshot
// from the files and swaps it in (reload()); a file with an error leaves
// the old snapshot in force. Readers never lock: each thread keeps the
// snapshot it last used and takes the new one (under a mutex, once) when
// the generation number moves, so a check on the publish or delivery path
// costs one atomic load plus the lookups themselves.
//
// Each accepted connection gets a Context (its listener's index in the
// snapshot, how it authenticated), carried by its ClientIdentity, so checks
// find its policy without a lookup by name. After a reload, a connection
// that authenticated with a password whose entry has since changed or gone
// is refused every further publish, subscription and delivery: connected
// clients are re-checked on their next operation.
//
// Enhanced authentication: SCRAM-SHA-256 (scram.hpp) against the listener's
// scram_file, at CONNECT and in re-authentications (which must be by the
// same user, and refresh the credential the connection is checked with).
//
// Connect decisions: a certificate identity is accepted as is; a client
// with neither user name nor password is anonymous (allow_anonymous
// decides, 0x87 otherwise); otherwise the sources are asked in order (the
// password file, a JSON Web Token, the operator's HTTP service; [auth]
// authentication = [...] orders them), each answering allow, deny or
// ignore, and if none decides the answer is 0x86, the same for an unknown
// user as for a wrong password. Only the HTTP source answers later: the
// request goes out on the HTTP client's thread, the connection waits, its
// event loop does not. ACL lists a credential carries (a token's claims, the
// HTTP service's answer) are kept in the connection's Context.
//
// Authorization asks, in order ([auth] authorization = [...]), those ACL
// lists, the ACL file and the HTTP service's ACL answers. The publish and
// subscribe paths cannot wait: an HTTP answer is taken from a cache (TTL);
// a miss is refused now and fetched in the background, so the next attempt
// is decided by the service. Deliveries are not asked of the service: a
// subscription it allowed delivers what matches it. A listener with no
// authentication source at all takes the user name unverified (as
// Mosquitto does) if it admits anonymous clients. Every refusal is logged
// with its true reason, rate-limited, and counted.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "auth/acl.hpp"
#include "auth/http_client.hpp"
#include "auth/options.hpp"
#include "auth/password_file.hpp"
#include "auth/scram.hpp"
#include "broker/authorizer.hpp"

namespace petrel::auth {

class AccessControl final : public broker::Authorizer {
 public:
  // Loads every file; throws FileError if one cannot be used.
  explicit AccessControl(Options options);
  ~AccessControl() override;

  // Re-reads every file. On an error the previous rules stay in force and
  // the error (file, line, problem) is returned.
  std::optional<std::string> reload();

  // broker::Authorizer
  std::optional<broker::ConnectDecision> authenticate(const broker::ConnectRequest& request, Later later) override;
  bool may_publish(const broker::ClientIdentity& who, std::string_view topic, std::uint8_t qos, bool retain) override;
  bool may_subscribe(const broker::ClientIdentity& who, std::string_view filter, std::uint8_t qos) override;
  bool may_receive(const broker::ClientIdentity& who, const broker::Message& message) override;
  bool checks_delivery() const override { return checks_delivery_; }
  bool offers_method(std::string_view method) const override;
  std::optional<broker::ConnectDecision> authenticate_step(const broker::AuthStep& step, Later later) override;

  // Counters, as (name, value): auth/connect/accepted/<how>,
  // auth/connect/refused/<reason>, auth/denied/<publish|subscribe|receive>,
  // auth/reloads, auth/reload_errors. For $SYS and the metrics endpoint.
  std::vector<std::pair<std::string, std::uint64_t>> metrics() const;

  struct Rules;
  struct Context;
  struct Attempt;
  class AnswerCache;
  struct ScramState;

 private:
  enum class Source : std::uint8_t { PasswordFile, Jwt, Http, Claims, AclFile };
  // The calling thread's copy of the current snapshot.
  const Rules& current() const;
  std::shared_ptr<const Rules> build() const;
  // The policy index of `who` in `r`, and whether its credential is still valid.
  std::size_t policy_of(const Rules& r, const broker::ClientIdentity& who, bool& revoked,
                        const Context*& context) const;
  bool permitted(const broker::ClientIdentity& who, std::string_view topic, std::uint8_t access, bool filter,
                 bool delivery);
  // The authentication sources from `from` on; nullopt: an HTTP request is
  // out and will call attempt->later.
  std::optional<broker::ConnectDecision> run_sources(const std::shared_ptr<Attempt>& attempt, std::size_t from);
  broker::ConnectDecision accept(Attempt& attempt, int how);
  // Looks up the client's own ACL section once, for its checks to use.
  void resolve_own_rules(Context& ctx, const std::optional<std::string>& username, std::string_view client_id) const;
  // The first SCRAM message (CONNECT, or AUTH 0x19): ContinueAuthentication or a refusal.
  broker::ConnectDecision scram_start(const broker::ClientIdentity& who, std::size_t policy,
                                      const std::optional<std::string>& data);
  // The HTTP service's cached ACL answer (fetched in the background when missing or stale).
  Decision http_acl(const broker::ClientIdentity& who, std::string_view topic, std::uint8_t access);
  broker::ConnectDecision refuse(const broker::ClientIdentity& who, mqtt::ReasonCode code, std::string_view label,
                                 std::string why);
  void log_refusal(const std::string& line);

  Options options_;
  bool checks_delivery_ = false;
  bool checks_anything_ = false;  // false: every publish and subscription is allowed without a look
  mutable std::mutex mutex_;  // guards rules_ and the log limiter
  std::shared_ptr<const Rules> rules_;
  std::atomic<std::uint64_t> generation_{0};

  struct Counters;
  std::unique_ptr<Counters> counters_;
  std::vector<Source> authentication_;
  std::vector<Source> authorization_;
  std::optional<HttpTarget> http_auth_;
  std::optional<HttpTarget> http_acl_;
  std::unique_ptr<AnswerCache> cache_;

  // Log rate limit (guarded by mutex_).
  std::chrono::steady_clock::time_point log_window_{};
  unsigned logged_in_window_ = 0;
  std::uint64_t suppressed_ = 0;

  // Last: destroyed first, while everything its callbacks use is still there.
  std::unique_ptr<HttpClient> http_;
};

}  // namespace petrel::auth
