#include "auth/access_control.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <map>
#include <set>

#include "auth/file_error.hpp"
#include "mqtt/topic.hpp"

namespace petrel::auth {

using broker::ClientIdentity;
using broker::ConnectDecision;
using mqtt::ReasonCode;

namespace {
// Generations are unique across instances, so a thread's cached snapshot of
// one AccessControl is never mistaken for another's.
std::atomic<std::uint64_t> next_generation{1};
}  // namespace

struct AccessControl::Rules {
  struct Policy {
    std::string listener;
    bool allow_anonymous = false;
    bool certificate_identity = false;
    std::shared_ptr<const PasswordFile> passwords;
    std::shared_ptr<const AclFile> acl;
    bool jwt = false;
    bool authenticates() const { return passwords != nullptr || jwt; }
  };
  std::vector<Policy> policies;  // options_.listeners in order, then the [auth] defaults
  std::map<std::string, std::size_t, std::less<>> by_listener;
  std::shared_ptr<const JwtVerifier> jwt;  // [auth.jwt], every listener
  std::uint64_t generation = 0;
};

// The ACL claims of a connection's token: a source of its own, asked before
// the ACL file.
struct ClaimRules {
  RuleTree publish;
  RuleTree subscribe;
};

// What an accepted connection carries for its checks.
struct AccessControl::Context final : broker::AuthContext {
  enum class How : std::uint8_t { Anonymous, Unverified, Certificate, Password, Jwt };
  std::size_t policy = 0;
  std::uint64_t generation = 0;  // of the snapshot it was authenticated with
  How how = How::Anonymous;
  std::string credential;  // the password file's hash field, to notice it change on reload
  std::shared_ptr<const ClaimRules> claims;  // a token's ACL claims, if it had any
  // Re-checked once per snapshot after a reload.
  mutable std::atomic<std::uint64_t> checked{0};
  mutable std::atomic<bool> revoked{false};
};

struct AccessControl::Counters {
  std::atomic<std::uint64_t> accepted_anonymous{0}, accepted_unverified{0}, accepted_certificate{0},
      accepted_password{0}, accepted_jwt{0};
  std::atomic<std::uint64_t> refused_anonymous{0}, refused_unknown_user{0}, refused_bad_password{0},
      refused_no_user{0}, refused_jwt_invalid{0}, refused_jwt_expired{0}, refused_jwt_not_yet_valid{0},
      refused_jwt_claim{0};
  std::atomic<std::uint64_t> denied_publish{0}, denied_subscribe{0}, denied_receive{0}, denied_revoked{0};
  std::atomic<std::uint64_t> reloads{0}, reload_errors{0};
};

namespace {
void add(std::atomic<std::uint64_t>& c) { c.fetch_add(1, std::memory_order_relaxed); }
std::uint64_t get(const std::atomic<std::uint64_t>& c) { return c.load(std::memory_order_relaxed); }
}  // namespace

AccessControl::AccessControl(Options options)
    : options_(std::move(options)), counters_(std::make_unique<Counters>()) {
  checks_delivery_ = options_.any_acl();
  rules_ = build();
  generation_.store(rules_->generation, std::memory_order_release);
}

AccessControl::~AccessControl() = default;

std::shared_ptr<const AccessControl::Rules> AccessControl::build() const {
  auto rules = std::make_shared<Rules>();
  // Each file is read once, however many listeners name it.
  std::map<std::string, std::shared_ptr<const PasswordFile>> passwords;
  std::map<std::string, std::shared_ptr<const AclFile>> acls;
  auto policy = [&](const PolicyOptions& o) {
    Rules::Policy p;
    p.listener = o.listener;
    p.allow_anonymous = o.allow_anonymous;
    p.certificate_identity = o.certificate_identity;
    if (!o.password_file.empty()) {
      auto& f = passwords[o.password_file];
      if (!f) f = std::make_shared<const PasswordFile>(PasswordFile::load(o.password_file));
      p.passwords = f;
    }
    if (!o.acl_file.empty()) {
      auto& f = acls[o.acl_file];
      if (!f) f = std::make_shared<const AclFile>(AclFile::load(o.acl_file));
      p.acl = f;
    }
    return p;
  };
  for (const auto& l : options_.listeners) {
    rules->by_listener.emplace(l.listener, rules->policies.size());
    rules->policies.push_back(policy(l));
  }
  rules->policies.push_back(policy(options_.defaults));
  if (options_.jwt.enabled()) {
    rules->jwt = std::make_shared<const JwtVerifier>(options_.jwt);
    for (auto& p : rules->policies) p.jwt = true;
  }
  rules->generation = next_generation.fetch_add(1);
  return rules;
}

std::optional<std::string> AccessControl::reload() {
  std::shared_ptr<const Rules> fresh;
  try {
    fresh = build();
  } catch (const std::exception& e) {
    add(counters_->reload_errors);
    return std::string(e.what());
  }
  std::size_t users = 0, rules = 0;
  std::set<const void*> counted;  // a file shared by several listeners counts once
  for (const auto& p : fresh->policies) {
    if (p.passwords && counted.insert(p.passwords.get()).second) users += p.passwords->size();
    if (p.acl && counted.insert(p.acl.get()).second) rules += p.acl->rule_count();
  }
  {
    std::lock_guard lock(mutex_);
    rules_ = fresh;
    generation_.store(fresh->generation, std::memory_order_release);
  }
  add(counters_->reloads);
  spdlog::info("access control reloaded: {} password entries, {} ACL rules", users, rules);
  return std::nullopt;
}

const AccessControl::Rules& AccessControl::current() const {
  thread_local struct {
    std::uint64_t generation = 0;
    std::shared_ptr<const Rules> rules;
  } cache;
  if (cache.generation != generation_.load(std::memory_order_acquire)) {
    std::lock_guard lock(mutex_);
    cache.rules = rules_;
    cache.generation = rules_->generation;
  }
  return *cache.rules;
}

std::size_t AccessControl::policy_of(const Rules& r, const ClientIdentity& who, bool& revoked,
                                     const Context*& context) const {
  revoked = false;
  context = dynamic_cast<const Context*>(who.auth.get());
  if (const Context* ctx = context) {
    if (ctx->generation != r.generation && ctx->how == Context::How::Password) {
      // After a reload: is the password this client was let in with still the user's?
      if (ctx->checked.load(std::memory_order_acquire) != r.generation) {
        const auto& p = r.policies[ctx->policy];
        const PasswordEntry* e = p.passwords && who.username ? p.passwords->find(*who.username) : nullptr;
        ctx->revoked.store(!e || e->encoded != ctx->credential, std::memory_order_relaxed);
        ctx->checked.store(r.generation, std::memory_order_release);
      }
      revoked = ctx->revoked.load(std::memory_order_relaxed);
    }
    return ctx->policy;
  }
  // A session restored from the store: by the listener it came in on.
  if (auto it = r.by_listener.find(who.listener); it != r.by_listener.end()) return it->second;
  return r.policies.size() - 1;
}

// ---------------------------------------------------------------- CONNECT --

void AccessControl::log_refusal(const std::string& line) {
  std::uint64_t suppressed = 0;
  {
    std::lock_guard lock(mutex_);
    const auto now = std::chrono::steady_clock::now();
    if (now - log_window_ >= std::chrono::seconds(1)) {
      log_window_ = now;
      logged_in_window_ = 0;
      suppressed = std::exchange(suppressed_, 0);
    }
    if (logged_in_window_ >= options_.log_per_second) {
      ++suppressed_;
      return;
    }
    ++logged_in_window_;
  }
  if (suppressed) spdlog::warn("{} similar messages suppressed (authentication refused)", suppressed);
  spdlog::warn("{}", line);
}

ConnectDecision AccessControl::refuse(const ClientIdentity& who, ReasonCode code, std::string_view label,
                                      std::string why) {
  auto& c = *counters_;
  add(label == "anonymous"            ? c.refused_anonymous
      : label == "unknown_user"       ? c.refused_unknown_user
      : label == "bad_password"       ? c.refused_bad_password
      : label == "jwt_invalid"        ? c.refused_jwt_invalid
      : label == "jwt_expired"        ? c.refused_jwt_expired
      : label == "jwt_not_yet_valid"  ? c.refused_jwt_not_yet_valid
      : label == "jwt_claim_mismatch" ? c.refused_jwt_claim
                                      : c.refused_no_user);
  log_refusal(fmt::format("authentication refused: listener={} peer={} id={} user={} reason={}", who.listener,
                          who.peer, who.client_id, who.username ? *who.username : std::string("(none)"), why));
  ConnectDecision d;
  d.reason = code;
  d.why = std::move(why);
  d.logged = true;
  return d;
}

std::optional<ConnectDecision> AccessControl::authenticate(const broker::ConnectRequest& request, Later) {
  const Rules& r = current();
  const ClientIdentity& who = request.identity;
  auto ctx = std::make_shared<Context>();
  ctx->generation = r.generation;
  ctx->checked.store(r.generation, std::memory_order_relaxed);
  if (auto it = r.by_listener.find(who.listener); it != r.by_listener.end()) {
    ctx->policy = it->second;
  } else {
    ctx->policy = r.policies.size() - 1;
  }
  const Rules::Policy& p = r.policies[ctx->policy];
  auto& c = *counters_;
  auto accept = [&](Context::How how, std::atomic<std::uint64_t>& counter) {
    add(counter);
    ctx->how = how;
    ConnectDecision d;
    d.context = ctx;
    return d;
  };

  if (who.username_from_certificate) return accept(Context::How::Certificate, c.accepted_certificate);
  // On a certificate-identity listener a client without a certificate has no
  // user name whatever its CONNECT says: it is anonymous.
  if ((!who.username && !request.password) || p.certificate_identity) {
    if (p.allow_anonymous) return accept(Context::How::Anonymous, c.accepted_anonymous);
    return refuse(who, ReasonCode::NotAuthorized, "anonymous",
                  p.certificate_identity ? "no client certificate, and anonymous clients are not allowed"
                                         : "anonymous clients are not allowed on this listener");
  }
  if (!p.authenticates()) {
    // Nothing here can check a user name: it is taken as given, like an
    // anonymous client's.
    if (p.allow_anonymous) return accept(Context::How::Unverified, c.accepted_unverified);
    return refuse(who, ReasonCode::NotAuthorized, "anonymous",
                  "no password_file on this listener to check the user name, and anonymous clients are not allowed");
  }
  if (p.passwords && who.username) {
    switch (p.passwords->check(*who.username, request.password.value_or(std::string()))) {
      case PasswordFile::Result::Match:
        ctx->credential = p.passwords->find(*who.username)->encoded;
        return accept(Context::How::Password, c.accepted_password);
      case PasswordFile::Result::Mismatch:
        return refuse(who, ReasonCode::BadUserNameOrPassword, "bad_password",
                      request.password ? "wrong password" : "no password");
      case PasswordFile::Result::UnknownUser: break;
    }
  }
  if (r.jwt && request.password && JwtVerifier::looks_like_token(*request.password)) {
    const auto now = std::chrono::duration_cast<std::chrono::seconds>(
                         std::chrono::system_clock::now().time_since_epoch()).count();
    auto result = r.jwt->verify(*request.password, who.username, who.client_id, now);
    if (result.grant) {
      if (result.grant->has_acl) {
        auto claims = std::make_shared<ClaimRules>();
        // Filters that are not valid topic filters grant nothing.
        for (const auto& f : result.grant->publish)
          if (mqtt::valid_topic_filter(f)) claims->publish.add(f, kWrite);
        for (const auto& f : result.grant->subscribe)
          if (mqtt::valid_topic_filter(f)) claims->subscribe.add(f, kRead);
        ctx->claims = std::move(claims);
      }
      return accept(Context::How::Jwt, c.accepted_jwt);
    }
    using F = JwtVerifier::Failure;
    const char* label = result.failure == F::Expired         ? "jwt_expired"
                        : result.failure == F::NotYetValid   ? "jwt_not_yet_valid"
                        : result.failure == F::ClaimMismatch ? "jwt_claim_mismatch"
                                                             : "jwt_invalid";
    return refuse(who, ReasonCode::BadUserNameOrPassword, label, result.why);
  }
  if (!who.username) return refuse(who, ReasonCode::BadUserNameOrPassword, "no_user", "a password but no user name");
  return refuse(who, ReasonCode::BadUserNameOrPassword, "unknown_user", "unknown user");
}

// ------------------------------------------------------ publish, subscribe --

bool AccessControl::permitted(const ClientIdentity& who, std::string_view topic, std::uint8_t access, bool filter) {
  const Rules& r = current();
  bool revoked = false;
  const Context* ctx = nullptr;
  const std::size_t index = policy_of(r, who, revoked, ctx);
  if (revoked) {
    add(counters_->denied_revoked);
    return false;
  }
  const Rules::Policy& p = r.policies[index];
  // The sources, in order: the token's ACL claims, then the ACL file. The
  // first that decides, decides; if none does, the answer is no, unless
  // there was no source at all.
  const ClaimRules* claims = ctx ? ctx->claims.get() : nullptr;
  if (claims) {
    const RuleTree& tree = access == kWrite ? claims->publish : claims->subscribe;
    const Decision d = filter ? tree.check_filter(topic, access) : tree.check_topic(topic, access);
    if (d != Decision::NoMatch) return d == Decision::Allow;
  }
  if (!p.acl) return claims == nullptr;
  const Subject subject{who.client_id, who.username ? &*who.username : nullptr};
  const Decision d = filter ? p.acl->check_filter(subject, topic, access) : p.acl->check_topic(subject, topic, access);
  return d == Decision::Allow;
}

bool AccessControl::may_publish(const ClientIdentity& who, std::string_view topic, std::uint8_t, bool) {
  if (permitted(who, topic, kWrite, false)) return true;
  add(counters_->denied_publish);
  return false;
}

bool AccessControl::may_subscribe(const ClientIdentity& who, std::string_view filter, std::uint8_t) {
  // A shared subscription is judged by the filter it shares.
  std::string_view inner = filter;
  if (auto shared = mqtt::parse_shared(filter)) inner = shared->filter;
  if (permitted(who, inner, kRead, true)) return true;
  add(counters_->denied_subscribe);
  return false;
}

bool AccessControl::may_receive(const ClientIdentity& who, const broker::Message& message) {
  if (permitted(who, message.topic(), kRead, false)) return true;
  add(counters_->denied_receive);
  return false;
}

std::vector<std::pair<std::string, std::uint64_t>> AccessControl::metrics() const {
  const auto& c = *counters_;
  return {
      {"auth/connect/accepted/anonymous", get(c.accepted_anonymous)},
      {"auth/connect/accepted/unverified_user", get(c.accepted_unverified)},
      {"auth/connect/accepted/certificate", get(c.accepted_certificate)},
      {"auth/connect/accepted/password", get(c.accepted_password)},
      {"auth/connect/accepted/jwt", get(c.accepted_jwt)},
      {"auth/connect/refused/jwt_invalid", get(c.refused_jwt_invalid)},
      {"auth/connect/refused/jwt_expired", get(c.refused_jwt_expired)},
      {"auth/connect/refused/jwt_not_yet_valid", get(c.refused_jwt_not_yet_valid)},
      {"auth/connect/refused/jwt_claim_mismatch", get(c.refused_jwt_claim)},
      {"auth/connect/refused/anonymous", get(c.refused_anonymous)},
      {"auth/connect/refused/unknown_user", get(c.refused_unknown_user)},
      {"auth/connect/refused/bad_password", get(c.refused_bad_password)},
      {"auth/connect/refused/no_user_name", get(c.refused_no_user)},
      {"auth/denied/publish", get(c.denied_publish)},
      {"auth/denied/subscribe", get(c.denied_subscribe)},
      {"auth/denied/receive", get(c.denied_receive)},
      {"auth/denied/revoked", get(c.denied_revoked)},
      {"auth/reloads", get(c.reloads)},
      {"auth/reload_errors", get(c.reload_errors)},
  };
}

}  // namespace petrel::auth
