#include "auth/access_control.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <array>
#include <cstring>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <shared_mutex>
#include <unordered_map>

#include "auth/file_error.hpp"
#include "mqtt/topic.hpp"

namespace petrel::auth {

using broker::ClientIdentity;
using Clock = std::chrono::steady_clock;
using broker::ConnectDecision;
using mqtt::ReasonCode;

namespace {
// Generations are unique across instances, so a thread's cached snapshot of
// one AccessControl is never mistaken for another's.
std::atomic<std::uint64_t> next_generation{1};
std::atomic<std::uint64_t> next_context_id{1};

// The decisions a thread made last, for the checks that repeat (the same
// publisher on the same topic, deliveries of one topic to the same
// subscriber): a direct-mapped table keyed by the connection's context id,
// its re-authentication epoch, the rules' generation, the kind of check and
// the topic text. A key holds everything a decision depends on, so an entry
// is never stale; topics longer than kMemoTopic are not kept.
constexpr std::size_t kMemoSlots = 512;
constexpr std::size_t kMemoTopic = 94;
struct MemoEntry {
  std::uint64_t context = 0;  // 0: empty
  std::uint64_t generation = 0;
  std::uint32_t epoch = 0;
  std::uint8_t kind = 0;
  std::uint8_t length = 0;
  bool allowed = false;
  bool revoked = false;
  char topic[kMemoTopic];
};
thread_local std::array<MemoEntry, kMemoSlots> memo{};
}  // namespace

struct AccessControl::Rules {
  struct Policy {
    std::string listener;
    bool allow_anonymous = false;
    bool certificate_identity = false;
    std::shared_ptr<const PasswordFile> passwords;
    std::shared_ptr<const AclFile> acl;
    std::shared_ptr<const ScramFile> scram;
    bool jwt = false;
    bool http = false;
    bool authenticates() const { return passwords != nullptr || jwt || http; }
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
  enum class How : std::uint8_t { Anonymous, Unverified, Certificate, Password, Jwt, Http, Scram };
  std::size_t policy = 0;
  std::uint64_t generation = 0;  // of the snapshot it was authenticated with
  How how = How::Anonymous;
  // The password or SCRAM file's field the client was let in with, to notice
  // it change on reload (a re-authentication replaces it).
  mutable std::mutex mutex;
  mutable std::string credential;
  std::shared_ptr<const ClaimRules> claims;  // a token's ACL claims, if it had any
  // Unique per context (never reused, unlike its address): the key of its
  // decisions in the per-thread memo. `epoch` moves when a re-authentication
  // changes what the context is checked with.
  const std::uint64_t id = next_context_id.fetch_add(1, std::memory_order_relaxed);
  mutable std::atomic<std::uint32_t> epoch{0};
  // The ACL section of this client in the snapshot of `generation`,
  // resolved once at CONNECT (valid while that snapshot is current).
  const RuleTree* own_rules = nullptr;
  // Re-checked once per snapshot after a reload.
  mutable std::atomic<std::uint64_t> checked{0};
  mutable std::atomic<bool> revoked{false};
};

struct AccessControl::Counters {
  std::atomic<std::uint64_t> accepted_anonymous{0}, accepted_unverified{0}, accepted_certificate{0},
      accepted_password{0}, accepted_jwt{0}, accepted_http{0}, accepted_scram{0};
  std::atomic<std::uint64_t> refused_scram{0}, refused_method{0}, reauth_accepted{0}, reauth_refused{0};
  std::atomic<std::uint64_t> refused_anonymous{0}, refused_unknown_user{0}, refused_bad_password{0},
      refused_no_user{0}, refused_jwt_invalid{0}, refused_jwt_expired{0}, refused_jwt_not_yet_valid{0},
      refused_jwt_claim{0}, refused_http_denied{0}, refused_http_error{0};
  std::atomic<std::uint64_t> http_requests{0}, http_errors{0}, http_acl_misses{0};
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
  // Without any ACL source, and without credentials a reload could revoke,
  // every publish and subscription is allowed: no check at all.
  bool revocable = !options_.defaults.password_file.empty() || !options_.defaults.scram_file.empty();
  for (const auto& l : options_.listeners)
    revocable = revocable || !l.password_file.empty() || !l.scram_file.empty();
  checks_anything_ = checks_delivery_ || revocable;
  rules_ = build();
  generation_.store(rules_->generation, std::memory_order_release);
  auto order = [](const std::vector<std::string>& names, std::vector<std::string> defaults) {
    std::vector<Source> out;
    for (const auto& n : names.empty() ? defaults : names)
      out.push_back(n == "password_file" ? Source::PasswordFile
                    : n == "jwt"         ? Source::Jwt
                    : n == "http"        ? Source::Http
                    : n == "claims"      ? Source::Claims
                                         : Source::AclFile);
    return out;
  };
  authentication_ = order(options_.authentication, {"password_file", "jwt", "http"});
  authorization_ = order(options_.authorization, {"claims", "acl_file", "http"});
  if (options_.http.enabled()) {
    try {
      http_ = std::make_unique<HttpClient>(HttpClient::Settings{options_.http.timeout, options_.http.max_connections,
                                                                options_.http.ca_file});
    } catch (const std::exception& e) {
      throw FileError(options_.http.ca_file, 0, fmt::format("cannot load the CA file: {}", e.what()));
    }
    if (!options_.http.url.empty()) http_auth_ = HttpTarget::parse(options_.http.url);
    if (!options_.http.acl_url.empty()) http_acl_ = HttpTarget::parse(options_.http.acl_url);
    cache_ = std::make_unique<AnswerCache>(options_.http.cache_size);
  }
}

AccessControl::~AccessControl() = default;

std::shared_ptr<const AccessControl::Rules> AccessControl::build() const {
  auto rules = std::make_shared<Rules>();
  // Each file is read once, however many listeners name it.
  std::map<std::string, std::shared_ptr<const PasswordFile>> passwords;
  std::map<std::string, std::shared_ptr<const AclFile>> acls;
  std::map<std::string, std::shared_ptr<const ScramFile>> scrams;
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
    if (!o.scram_file.empty()) {
      auto& f = scrams[o.scram_file];
      if (!f) f = std::make_shared<const ScramFile>(ScramFile::load(o.scram_file));
      p.scram = f;
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
  if (!options_.http.url.empty())
    for (auto& p : rules->policies) p.http = true;
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
    if (p.scram && counted.insert(p.scram.get()).second) users += p.scram->size();
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
  // Only this class attaches contexts to identities (ScramState is an
  // exchange's state, never attached): a static cast, on the hot path.
  context = static_cast<const Context*>(who.auth.get());
  if (const Context* ctx = context) {
    if (ctx->generation != r.generation && (ctx->how == Context::How::Password || ctx->how == Context::How::Scram)) {
      // After a reload: is the credential this client was let in with still the user's?
      if (ctx->checked.load(std::memory_order_acquire) != r.generation) {
        const auto& p = r.policies[ctx->policy];
        const std::string* current = nullptr;
        if (ctx->how == Context::How::Password) {
          const PasswordEntry* e = p.passwords && who.username ? p.passwords->find(*who.username) : nullptr;
          current = e ? &e->encoded : nullptr;
        } else {
          const ScramCredential* e = p.scram && who.username ? p.scram->find(*who.username) : nullptr;
          current = e ? &e->encoded : nullptr;
        }
        std::lock_guard lock(ctx->mutex);
        ctx->revoked.store(!current || *current != ctx->credential, std::memory_order_relaxed);
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
      : label == "http_denied"        ? c.refused_http_denied
      : label == "http_error"         ? c.refused_http_error
      : label == "scram_failed"       ? c.refused_scram
      : label == "bad_method"         ? c.refused_method
                                      : c.refused_no_user);
  log_refusal(fmt::format("authentication refused: listener={} peer={} id={} user={} reason={}", who.listener,
                          who.peer, who.client_id, who.username ? *who.username : std::string("(none)"), why));
  ConnectDecision d;
  d.reason = code;
  d.why = std::move(why);
  d.logged = true;
  return d;
}

// One CONNECT on its way through the authentication sources. A copy of what
// the request refers to: an asynchronous source (HTTP) outlives the call.
struct AccessControl::Attempt {
  ClientIdentity who;
  std::optional<std::string> password;
  std::shared_ptr<Context> ctx;
  Later later;
};

void AccessControl::resolve_own_rules(Context& ctx, const std::optional<std::string>& username,
                                      std::string_view client_id) const {
  const Rules& r = current();
  if (ctx.generation != r.generation) return;
  const auto& p = r.policies[ctx.policy];
  if (!p.acl) return;
  const Subject subject{client_id, username ? &*username : nullptr};
  ctx.own_rules = p.acl->own_rules(subject);
}

ConnectDecision AccessControl::accept(Attempt& a, int how) {
  auto& c = *counters_;
  a.ctx->how = static_cast<Context::How>(how);
  resolve_own_rules(*a.ctx, a.who.username, a.who.client_id);
  switch (a.ctx->how) {
    case Context::How::Anonymous: add(c.accepted_anonymous); break;
    case Context::How::Unverified: add(c.accepted_unverified); break;
    case Context::How::Certificate: add(c.accepted_certificate); break;
    case Context::How::Password: add(c.accepted_password); break;
    case Context::How::Jwt: add(c.accepted_jwt); break;
    case Context::How::Http: add(c.accepted_http); break;
    case Context::How::Scram: add(c.accepted_scram); break;
  }
  ConnectDecision d;
  // With no ACL and no credential a reload could revoke, nothing ever reads
  // a context: the connection does not carry one (and its identity is not
  // copied to attach it), which an idle connection's memory notices.
  if (checks_anything_) d.context = a.ctx;
  return d;
}

namespace {
// ACL lists a credential carried (a token's claims, the HTTP service's answer).
std::shared_ptr<const ClaimRules> claim_rules(const std::vector<std::string>& publish,
                                              const std::vector<std::string>& subscribe) {
  auto claims = std::make_shared<ClaimRules>();
  // Filters that are not valid topic filters grant nothing.
  for (const auto& f : publish)
    if (mqtt::valid_topic_filter(f)) claims->publish.add(f, kWrite);
  for (const auto& f : subscribe)
    if (mqtt::valid_topic_filter(f)) claims->subscribe.add(f, kRead);
  return claims;
}

std::vector<std::string> json_strings(const nlohmann::json& j, const char* key) {
  std::vector<std::string> out;
  auto it = j.find(key);
  if (it == j.end()) return out;
  if (it->is_string()) out.push_back(it->get<std::string>());
  if (it->is_array())
    for (const auto& e : *it)
      if (e.is_string()) out.push_back(e.get<std::string>());
  return out;
}

// The service's answer: {"result": "allow" | "deny" | "ignore", ...}, status 200.
std::optional<std::string> http_result(const HttpResponse& res, nlohmann::json& body, std::string& why) {
  if (!res.ok) {
    why = fmt::format("HTTP service: {}", res.error);
    return std::nullopt;
  }
  if (res.status != 200) {
    why = fmt::format("HTTP service answered status {}", res.status);
    return std::nullopt;
  }
  try {
    body = nlohmann::json::parse(res.body);
  } catch (const nlohmann::json::exception&) {
    why = "HTTP service: the answer is not JSON";
    return std::nullopt;
  }
  const auto it = body.is_object() ? body.find("result") : body.end();
  if (it == body.end() || !it->is_string() ||
      (*it != "allow" && *it != "deny" && *it != "ignore")) {
    why = "HTTP service: the answer has no result allow, deny or ignore";
    return std::nullopt;
  }
  return it->get<std::string>();
}

std::string json_text(const nlohmann::json& j) {
  // A password or a name need not be UTF-8: replace what is not, never throw.
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}
}  // namespace

std::optional<ConnectDecision> AccessControl::authenticate(const broker::ConnectRequest& request, Later later) {
  const Rules& r = current();
  const ClientIdentity& who = request.identity;
  auto a = std::make_shared<Attempt>();
  a->who = who;
  a->password = request.password;
  a->later = std::move(later);
  a->ctx = std::make_shared<Context>();
  auto& ctx = *a->ctx;
  ctx.generation = r.generation;
  ctx.checked.store(r.generation, std::memory_order_relaxed);
  if (auto it = r.by_listener.find(who.listener); it != r.by_listener.end()) {
    ctx.policy = it->second;
  } else {
    ctx.policy = r.policies.size() - 1;
  }
  const Rules::Policy& p = r.policies[ctx.policy];

  if (const auto& method = request.properties.authentication_method) {
    // Enhanced authentication: the client chose the method, and it decides.
    if (*method != "SCRAM-SHA-256" || !p.scram)
      return refuse(who, ReasonCode::BadAuthenticationMethod, "bad_method",
                    fmt::format("authentication method '{}' is not offered on this listener", *method));
    return scram_start(who, ctx.policy, request.properties.authentication_data);
  }
  if (who.username_from_certificate) return accept(*a, static_cast<int>(Context::How::Certificate));
  // On a certificate-identity listener a client without a certificate has no
  // user name whatever its CONNECT says: it is anonymous.
  if ((!who.username && !request.password) || p.certificate_identity) {
    if (p.allow_anonymous) return accept(*a, static_cast<int>(Context::How::Anonymous));
    return refuse(who, ReasonCode::NotAuthorized, "anonymous",
                  p.certificate_identity ? "no client certificate, and anonymous clients are not allowed"
                                         : "anonymous clients are not allowed on this listener");
  }
  if (!p.authenticates()) {
    // Nothing here can check a user name: it is taken as given, like an
    // anonymous client's.
    if (p.allow_anonymous) return accept(*a, static_cast<int>(Context::How::Unverified));
    return refuse(who, ReasonCode::NotAuthorized, "anonymous",
                  "no password_file on this listener to check the user name, and anonymous clients are not allowed");
  }
  return run_sources(a, 0);
}

std::optional<ConnectDecision> AccessControl::run_sources(const std::shared_ptr<Attempt>& a, std::size_t from) {
  const Rules& r = current();
  const Rules::Policy& p = r.policies[a->ctx->policy];
  const ClientIdentity& who = a->who;
  for (std::size_t i = from; i < authentication_.size(); ++i) {
    switch (authentication_[i]) {
      case Source::PasswordFile: {
        if (!p.passwords || !who.username) break;
        switch (p.passwords->check(*who.username, a->password.value_or(std::string()))) {
          case PasswordFile::Result::Match:
            a->ctx->credential = p.passwords->find(*who.username)->encoded;
            return accept(*a, static_cast<int>(Context::How::Password));
          case PasswordFile::Result::Mismatch:
            return refuse(who, ReasonCode::BadUserNameOrPassword, "bad_password",
                          a->password ? "wrong password" : "no password");
          case PasswordFile::Result::UnknownUser: break;
        }
        break;
      }
      case Source::Jwt: {
        if (!r.jwt || !a->password || !JwtVerifier::looks_like_token(*a->password)) break;
        const auto now = std::chrono::duration_cast<std::chrono::seconds>(
                             std::chrono::system_clock::now().time_since_epoch()).count();
        auto result = r.jwt->verify(*a->password, who.username, who.client_id, now);
        if (result.grant) {
          if (result.grant->has_acl) a->ctx->claims = claim_rules(result.grant->publish, result.grant->subscribe);
          return accept(*a, static_cast<int>(Context::How::Jwt));
        }
        using F = JwtVerifier::Failure;
        const char* label = result.failure == F::Expired         ? "jwt_expired"
                            : result.failure == F::NotYetValid   ? "jwt_not_yet_valid"
                            : result.failure == F::ClaimMismatch ? "jwt_claim_mismatch"
                                                                 : "jwt_invalid";
        return refuse(who, ReasonCode::BadUserNameOrPassword, label, result.why);
      }
      case Source::Http: {
        if (!http_ || !http_auth_) break;
        nlohmann::json body = {{"clientid", who.client_id},
                               {"username", who.username ? nlohmann::json(*who.username) : nlohmann::json()},
                               {"password", a->password ? nlohmann::json(*a->password) : nlohmann::json()},
                               {"peer", who.peer},
                               {"listener", who.listener},
                               {"protocol", std::string(mqtt::to_string(who.version))}};
        add(counters_->http_requests);
        // The connection waits (its CONNECT deadline still runs); the loop does not.
        http_->post(*http_auth_, json_text(body), [this, a, i](HttpResponse res) {
          nlohmann::json answer;
          std::string why;
          const auto result = http_result(res, answer, why);
          std::optional<ConnectDecision> d;
          if (!result) {
            add(counters_->http_errors);
            d = refuse(a->who, ReasonCode::BadUserNameOrPassword, "http_error", why);
          } else if (*result == "allow") {
            if (answer.contains("acl") && answer["acl"].is_object())
              a->ctx->claims = claim_rules(json_strings(answer["acl"], "publish"), json_strings(answer["acl"], "subscribe"));
            d = accept(*a, static_cast<int>(Context::How::Http));
          } else if (*result == "deny") {
            d = refuse(a->who, ReasonCode::BadUserNameOrPassword, "http_denied", "HTTP service: deny");
          } else {
            d = run_sources(a, i + 1);  // ignore: the next source (HTTP appears once, so this answers now)
          }
          if (d) a->later(std::move(*d));
        });
        return std::nullopt;
      }
      case Source::Claims:
      case Source::AclFile: break;  // authorization sources
    }
  }
  if (!who.username) return refuse(who, ReasonCode::BadUserNameOrPassword, "no_user", "a password but no user name");
  return refuse(who, ReasonCode::BadUserNameOrPassword, "unknown_user", "unknown user");
}

// ------------------------------------------------------ publish, subscribe --

// A sharded map of the HTTP service's ACL answers, each valid until its
// expiry. Readers take a shard's shared lock; a miss or an expired answer
// makes the caller fetch (once: the entry is marked while the request is
// out), and until the answer arrives the last known answer stands (none:
// refused).
class AccessControl::AnswerCache {
 public:
  explicit AnswerCache(std::size_t capacity) : per_shard_(std::max<std::size_t>(1, capacity / kShards)) {}

  struct Lookup {
    std::optional<Decision> answer;
    bool fetch = false;
  };
  Lookup get(const std::string& key, Clock::time_point now) {
    Shard& s = shard(key);
    {
      std::shared_lock lock(s.mutex);
      auto it = s.map.find(key);
      if (it != s.map.end() && it->second.known && now < it->second.expires) return {it->second.answer, false};
    }
    std::unique_lock lock(s.mutex);
    auto it = s.map.find(key);
    if (it == s.map.end()) {
      make_room(s, now);
      s.map.emplace(key, Entry{Decision::Deny, false, true, now});
      return {std::nullopt, true};
    }
    Entry& e = it->second;
    const std::optional<Decision> known = e.known ? std::optional<Decision>(e.answer) : std::nullopt;
    if (e.known && now < e.expires) return {known, false};
    if (e.fetching) return {known, false};
    e.fetching = true;
    return {known, true};
  }

  void put(const std::string& key, Decision answer, Clock::time_point expires) {
    Shard& s = shard(key);
    std::unique_lock lock(s.mutex);
    s.map[key] = Entry{answer, true, false, expires};
  }

 private:
  struct Entry {
    Decision answer;
    bool known;
    bool fetching;
    Clock::time_point expires;
  };
  struct Shard {
    std::shared_mutex mutex;
    std::unordered_map<std::string, Entry> map;
  };
  static constexpr std::size_t kShards = 16;
  Shard& shard(const std::string& key) { return shards_[std::hash<std::string>{}(key) % kShards]; }
  void make_room(Shard& s, Clock::time_point now) {
    if (s.map.size() < per_shard_) return;
    std::erase_if(s.map, [&](const auto& kv) { return !kv.second.fetching && kv.second.expires <= now; });
    for (auto it = s.map.begin(); s.map.size() >= per_shard_ && it != s.map.end();)
      it = it->second.fetching ? std::next(it) : s.map.erase(it);
  }
  std::array<Shard, kShards> shards_;
  std::size_t per_shard_;
};

Decision AccessControl::http_acl(const ClientIdentity& who, std::string_view topic, std::uint8_t access) {
  const bool write = access == kWrite;
  std::string key;
  key.reserve(who.listener.size() + who.client_id.size() + topic.size() + 32);
  key.append(who.listener).push_back('\0');
  if (who.username) {
    key.push_back('u');
    key.append(*who.username);
  }
  key.push_back('\0');
  key.append(who.client_id).push_back('\0');
  key.push_back(write ? 'p' : 's');
  key.append(topic);
  const auto now = Clock::now();
  auto found = cache_->get(key, now);
  if (!found.answer) add(counters_->http_acl_misses);
  if (found.fetch) {
    nlohmann::json body = {{"clientid", who.client_id},
                           {"username", who.username ? nlohmann::json(*who.username) : nlohmann::json()},
                           {"peer", who.peer},
                           {"listener", who.listener},
                           {"topic", std::string(topic)},
                           {"action", write ? "publish" : "subscribe"}};
    add(counters_->http_requests);
    http_->post(*http_acl_, json_text(body), [this, key = std::move(key)](HttpResponse res) {
      nlohmann::json answer;
      std::string why;
      const auto result = http_result(res, answer, why);
      const auto now = Clock::now();
      if (!result) {
        // Refused for a short while: a dead service is not asked again for every message.
        add(counters_->http_errors);
        spdlog::debug("HTTP ACL request failed: {}", why);
        cache_->put(key, Decision::Deny, now + std::min<Clock::duration>(options_.http.cache_ttl, std::chrono::seconds(5)));
        return;
      }
      const Decision d = *result == "allow" ? Decision::Allow : *result == "deny" ? Decision::Deny : Decision::NoMatch;
      cache_->put(key, d, now + options_.http.cache_ttl);
    });
  }
  // Not known yet: refused now (fail closed); the answer, once in, decides the next time.
  return found.answer.value_or(Decision::Deny);
}

bool AccessControl::permitted(const ClientIdentity& who, std::string_view topic, std::uint8_t access, bool filter,
                              bool delivery) {
  const Rules& r = current();
  // The memo: only for connections with a context, only when no answer may
  // come from the HTTP cache (which changes on its own).
  const auto* known = static_cast<const Context*>(who.auth.get());
  MemoEntry* slot = nullptr;
  std::uint32_t epoch = 0;
  const std::uint8_t kind = static_cast<std::uint8_t>(access | (filter ? 4 : 0) | (delivery ? 8 : 0));
  if (known && !http_acl_ && topic.size() <= kMemoTopic) {
    epoch = known->epoch.load(std::memory_order_acquire);
    const std::size_t h = std::hash<std::string_view>{}(topic) ^ (known->id * 0x9E3779B97F4A7C15ull) ^ kind;
    slot = &memo[h % kMemoSlots];
    if (slot->context == known->id && slot->generation == r.generation && slot->epoch == epoch &&
        slot->kind == kind && slot->length == topic.size() && std::memcmp(slot->topic, topic.data(), topic.size()) == 0) {
      if (slot->revoked) add(counters_->denied_revoked);
      return slot->allowed;
    }
  }
  auto remember = [&](bool allowed, bool revoked) {
    if (slot) {
      slot->context = known->id;
      slot->generation = r.generation;
      slot->epoch = epoch;
      slot->kind = kind;
      slot->length = static_cast<std::uint8_t>(topic.size());
      slot->allowed = allowed;
      slot->revoked = revoked;
      std::memcpy(slot->topic, topic.data(), topic.size());
    }
    return allowed;
  };
  bool revoked = false;
  const Context* ctx = nullptr;
  const std::size_t index = policy_of(r, who, revoked, ctx);
  if (revoked) {
    add(counters_->denied_revoked);
    return remember(false, true);
  }
  const Rules::Policy& p = r.policies[index];
  // The sources, in the configured order; the first that decides, decides.
  // If none does, the answer is no, unless this client has no source at all.
  const ClaimRules* claims = ctx ? ctx->claims.get() : nullptr;
  bool any = false;
  for (const Source source : authorization_) {
    Decision d = Decision::NoMatch;
    switch (source) {
      case Source::Claims:
        if (!claims) continue;
        any = true;
        {
          const RuleTree& tree = access == kWrite ? claims->publish : claims->subscribe;
          d = filter ? tree.check_filter(topic, access) : tree.check_topic(topic, access);
        }
        break;
      case Source::AclFile: {
        if (!p.acl) continue;
        any = true;
        const Subject subject{who.client_id, who.username ? &*who.username : nullptr};
        const RuleTree* const* own = ctx && ctx->generation == r.generation ? &ctx->own_rules : nullptr;
        d = filter ? p.acl->check_filter(subject, topic, access, own) : p.acl->check_topic(subject, topic, access, own);
        break;
      }
      case Source::Http:
        if (!http_acl_) continue;
        any = true;
        // A delivery belongs to a subscription the service allowed at
        // SUBSCRIBE: it is not asked again per message.
        d = delivery ? Decision::Allow : http_acl(who, topic, access);
        break;
      default: continue;
    }
    if (d != Decision::NoMatch) return remember(d == Decision::Allow, false);
  }
  return remember(!any, false);
}

// ------------------------------------------------------------------ SCRAM --

// The state of one SCRAM exchange, between the server's first message and
// the client's final one.
struct AccessControl::ScramState final : broker::AuthContext {
  std::size_t policy = 0;
  mutable ScramExchange exchange;  // advanced by the connection's own loop only
};

bool AccessControl::offers_method(std::string_view method) const {
  return method == "SCRAM-SHA-256" && options_.any_scram();
}

ConnectDecision AccessControl::scram_start(const ClientIdentity& who, std::size_t policy,
                                           const std::optional<std::string>& data) {
  const Rules& r = current();
  auto st = std::make_shared<ScramState>();
  st->policy = policy;
  std::string server_first;
  const auto error = data ? st->exchange.start(*data, r.policies[policy].scram.get(), server_first)
                          : std::optional<std::string>("no Authentication Data (client-first message)");
  if (error) return refuse(who, ReasonCode::BadUserNameOrPassword, "scram_failed", "SCRAM: " + *error);
  ConnectDecision d;
  d.reason = ReasonCode::ContinueAuthentication;
  d.auth_data = std::move(server_first);
  d.context = std::move(st);
  return d;
}

std::optional<ConnectDecision> AccessControl::authenticate_step(const broker::AuthStep& step, Later) {
  const Rules& r = current();
  const ClientIdentity& who = step.identity;
  if (!step.exchange) {
    // AUTH 0x19: a re-authentication starts, on the connection's listener.
    bool revoked = false;
    const Context* ctx = nullptr;
    const std::size_t policy = policy_of(r, who, revoked, ctx);
    if (step.method != "SCRAM-SHA-256" || !r.policies[policy].scram)
      return refuse(who, ReasonCode::BadAuthenticationMethod, "bad_method",
                    fmt::format("authentication method '{}' is not offered on this listener", step.method));
    auto d = scram_start(who, policy, step.data);
    if (d.reason != ReasonCode::ContinueAuthentication) add(counters_->reauth_refused);
    return d;
  }
  const auto* st = dynamic_cast<const ScramState*>(step.exchange.get());  // not the hot path
  std::string server_final;
  const auto error = !st          ? std::optional<std::string>("no exchange in progress")
                     : step.data ? st->exchange.finish(*step.data, server_final)
                                 : std::optional<std::string>("no Authentication Data (client-final message)");
  if (error) {
    if (step.reauthentication) add(counters_->reauth_refused);
    return refuse(who, ReasonCode::BadUserNameOrPassword, "scram_failed", "SCRAM: " + *error);
  }
  const std::string& user = st->exchange.user();
  ConnectDecision d;
  d.auth_data = std::move(server_final);
  if (step.reauthentication) {
    // The same user, whose current credential the connection is now checked with.
    if (!who.username || *who.username != user) {
      add(counters_->reauth_refused);
      return refuse(who, ReasonCode::NotAuthorized, "scram_failed",
                    fmt::format("re-authentication as '{}', another user than the connection's", user));
    }
    if (const auto* ctx = static_cast<const Context*>(who.auth.get())) {
      std::lock_guard lock(ctx->mutex);
      ctx->credential = st->exchange.credential();
      ctx->checked.store(0, std::memory_order_release);  // re-checked on the next operation
      ctx->epoch.fetch_add(1, std::memory_order_acq_rel);  // and no remembered decision of before stands
    }
    add(counters_->reauth_accepted);
    return d;
  }
  auto ctx = std::make_shared<Context>();
  ctx->policy = st->policy;
  ctx->generation = r.generation;
  ctx->checked.store(r.generation, std::memory_order_relaxed);
  ctx->how = Context::How::Scram;
  ctx->credential = st->exchange.credential();
  resolve_own_rules(*ctx, std::optional<std::string>(user), who.client_id);
  add(counters_->accepted_scram);
  d.context = std::move(ctx);
  d.username = user;
  return d;
}

bool AccessControl::may_publish(const ClientIdentity& who, std::string_view topic, std::uint8_t, bool) {
  if (!checks_anything_ || permitted(who, topic, kWrite, false, false)) return true;
  add(counters_->denied_publish);
  return false;
}

bool AccessControl::may_subscribe(const ClientIdentity& who, std::string_view filter, std::uint8_t) {
  // A shared subscription is judged by the filter it shares.
  std::string_view inner = filter;
  if (auto shared = mqtt::parse_shared(filter)) inner = shared->filter;
  if (!checks_anything_ || permitted(who, inner, kRead, true, false)) return true;
  add(counters_->denied_subscribe);
  return false;
}

bool AccessControl::may_receive(const ClientIdentity& who, const broker::Message& message) {
  if (permitted(who, message.topic(), kRead, false, true)) return true;
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
      {"auth/connect/accepted/http", get(c.accepted_http)},
      {"auth/connect/accepted/scram", get(c.accepted_scram)},
      {"auth/connect/refused/scram_failed", get(c.refused_scram)},
      {"auth/connect/refused/bad_method", get(c.refused_method)},
      {"auth/reauth/accepted", get(c.reauth_accepted)},
      {"auth/reauth/refused", get(c.reauth_refused)},
      {"auth/connect/refused/http_denied", get(c.refused_http_denied)},
      {"auth/connect/refused/http_error", get(c.refused_http_error)},
      {"auth/http/requests", get(c.http_requests)},
      {"auth/http/errors", get(c.http_errors)},
      {"auth/http/acl_cache_misses", get(c.http_acl_misses)},
      {"auth/http/connections_opened", http_ ? http_->connections_opened() : 0},
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
