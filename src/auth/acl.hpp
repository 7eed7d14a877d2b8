// The Mosquitto ACL file, and the tree its rules are matched in.
//
//   # comment
//   topic [read|write|readwrite|deny] FILTER     rule of the current user
//   user NAME                                    the following topic lines are NAME's
//   pattern [read|write|readwrite|deny] FILTER   rule of every client; %c = client id, %u = user name
//
// `topic` lines before any `user` line are the anonymous clients'. The
// access defaults to readwrite.
//
// Decisions are Mosquitto's (2.x, src/security_default.c), in two stages:
// first the client's own rules (its user's, or the anonymous ones), then the
// patterns. In each stage a matching `deny` rule refuses; otherwise a
// matching rule granting the access allows; otherwise the next stage is
// asked. A pattern stage is skipped for a user name or client id holding
// '+' or '#' (which could otherwise widen a pattern), and a pattern with %u
// never applies to a client without a user name. When neither stage decides
// the answer is NoMatch: the caller goes on to its next source, and denies
// at the end.
//
// Topics beginning with '$' ($SYS/...) are matched by no rule whose first
// level is a wildcard: `topic read #` does not grant $SYS, `topic read
// $SYS/#` does.
//
// A SUBSCRIBE filter is judged by the rules that cover it: a rule covers a
// filter when every topic the filter can match, the rule matches too
// (`sensors/#` covers `sensors/+/temp`; `sensors/+` does not cover
// `sensors/#`). Deliveries are then checked topic by topic, so a deny rule
// inside a granted filter still holds.
//
// Matching walks a tree of the rules' topic levels (literal levels in a
// hash map, '+', '#', and for patterns the levels holding %c or %u, which
// are substituted as they are compared), so a check costs a walk over the
// topic's levels, not a scan of every rule: 10,000 rules cost what ten do.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace petrel::auth {

enum Access : std::uint8_t { kRead = 1, kWrite = 2 };

enum class Decision : std::uint8_t { NoMatch, Allow, Deny };

// A client as the rules see it.
struct Subject {
  std::string_view client_id;
  const std::string* username = nullptr;  // null: anonymous
};

class RuleTree {
 public:
  RuleTree();
  ~RuleTree();
  RuleTree(RuleTree&&) noexcept;
  RuleTree& operator=(RuleTree&&) noexcept;

  // Adds a rule. access: kRead | kWrite, or 0 for deny. `pattern`: levels
  // holding %c or %u are substituted at match time.
  void add(std::string_view filter, std::uint8_t access, bool pattern = false);
  bool empty() const { return rules_ == 0; }
  std::size_t size() const { return rules_; }

  // What the rules matching `topic` (or covering subscription `filter`) say
  // about `access`.
  Decision check_topic(std::string_view topic, std::uint8_t access, const Subject* subject = nullptr) const;
  Decision check_filter(std::string_view filter, std::uint8_t access, const Subject* subject = nullptr) const;

  struct Node;

 private:
  std::unique_ptr<Node> root_;
  std::size_t rules_ = 0;
};

class AclFile {
 public:
  // Throws FileError naming `source` and the line.
  static AclFile parse(std::string_view text, const std::string& source);
  static AclFile load(const std::string& path);

  // `own`, if given, points at the result of own_rules(who), looked up
  // earlier (a connection resolves it once, at CONNECT).
  Decision check_topic(const Subject& who, std::string_view topic, std::uint8_t access,
                       const RuleTree* const* own = nullptr) const;
  Decision check_filter(const Subject& who, std::string_view filter, std::uint8_t access,
                        const RuleTree* const* own = nullptr) const;
  // The client's own section: its user's, the anonymous one, or none.
  const RuleTree* own_rules(const Subject& who) const;

  std::size_t rule_count() const { return rules_; }
  std::size_t user_count() const { return users_.size(); }

 private:
  template <class Check>
  Decision decide(const Subject& who, const RuleTree* own, Check&& check) const;

  RuleTree anonymous_;
  std::unordered_map<std::string, RuleTree> users_;
  RuleTree patterns_;
  std::size_t rules_ = 0;
};

}  // namespace petrel::auth
