#include "auth/acl.hpp"

#include <fmt/format.h>

#include <optional>

#include "auth/file_error.hpp"
#include "auth/text.hpp"
#include "mqtt/topic.hpp"

namespace petrel::auth {

// One level of the rules' filters. A rule ending here is recorded in
// `allow` (the union of what the allowing rules grant) and `deny`.
struct RuleTree::Node {
  struct Hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
  };
  std::unordered_map<std::string, std::unique_ptr<Node>, Hash, std::equal_to<>> children;
  std::unique_ptr<Node> plus;
  std::unique_ptr<Node> hash;  // '#': matches this level and all below (and the parent itself)
  // Levels of a pattern holding %c or %u, compared after substitution (the
  // substituted text may itself hold '/', spanning several topic levels).
  std::vector<std::pair<std::string, std::unique_ptr<Node>>> templates;
  std::uint8_t allow = 0;
  bool deny = false;
};

namespace {

using Node = RuleTree::Node;

struct Verdict {
  std::uint8_t allow = 0;
  bool deny = false;
  void take(const Node& n) {
    allow |= n.allow;
    deny = deny || n.deny;
  }
};

// Substitutes %c and %u in a pattern level; false if it cannot apply (a %u
// without a user name).
bool substitute(std::string_view tmpl, const Subject& who, std::string& out) {
  out.clear();
  for (std::size_t i = 0; i < tmpl.size(); ++i) {
    if (tmpl[i] == '%' && i + 1 < tmpl.size() && tmpl[i + 1] == 'c') {
      out += who.client_id;
      ++i;
    } else if (tmpl[i] == '%' && i + 1 < tmpl.size() && tmpl[i + 1] == 'u') {
      if (!who.username) return false;
      out += *who.username;
      ++i;
    } else {
      out += tmpl[i];
    }
  }
  return true;
}

// A position in the topic (or filter) being matched: `pos` is where the
// current level starts; `done` once every level has been consumed. Walking
// on positions needs no vector of levels.
struct Cursor {
  std::string_view text;
  std::size_t pos = 0;
  bool done = false;
  std::string_view level() const {
    const auto slash = text.find('/', pos);
    return text.substr(pos, slash == std::string_view::npos ? std::string_view::npos : slash - pos);
  }
  Cursor next() const {
    const auto slash = text.find('/', pos);
    if (slash == std::string_view::npos) return Cursor{text, text.size(), true};
    return Cursor{text, slash + 1, false};
  }
};

// Where the text after a substituted template level continues, if the
// template (which may hold '/', spanning levels) matches at `c`. Wildcards
// in a subject filter never match a template: a template names one client.
std::optional<Cursor> after_template(std::string_view substituted, const Cursor& c) {
  const std::string_view rest = c.text.substr(c.pos);
  if (rest.substr(0, substituted.size()) != substituted) return std::nullopt;
  if (rest.size() == substituted.size()) return Cursor{c.text, c.text.size(), true};
  if (rest[substituted.size()] != '/') return std::nullopt;
  return Cursor{c.text, c.pos + substituted.size() + 1, false};
}

// Every rule whose filter matches the topic from `c` on (as a filter:
// `is_filter`, every rule that covers it).
void walk(const Node& n, const Cursor& c, bool is_filter, const Subject* who, Verdict& v) {
  // A first level that starts with '$' is matched by no wildcard [MQTT-4.7.2-1].
  const bool dollar = c.pos == 0 && !c.done && !c.text.empty() && c.text[0] == '$';
  if (n.hash && !dollar) v.take(*n.hash);  // '#' matches the rest, including nothing at all
  if (c.done) {
    v.take(n);
    return;
  }
  const std::string_view level = c.level();
  if (is_filter && level == "#") return;  // only a '#' rule covers '#'
  const Cursor next = c.next();
  if (n.plus && !dollar) walk(*n.plus, next, is_filter, who, v);
  if (is_filter && level == "+") return;  // only wildcards cover '+'
  if (!n.children.empty())
    if (auto it = n.children.find(level); it != n.children.end()) walk(*it->second, next, is_filter, who, v);
  if (who && !n.templates.empty()) {
    thread_local std::string buffer;
    for (const auto& [tmpl, child] : n.templates) {
      if (!substitute(tmpl, *who, buffer)) continue;
      if (auto after = after_template(buffer, c)) walk(*child, *after, is_filter, who, v);
    }
  }
}

Decision decide(const Verdict& v, std::uint8_t access) {
  if (v.deny) return Decision::Deny;
  if (v.allow & access) return Decision::Allow;
  return Decision::NoMatch;
}

bool has_substitution(std::string_view level) {
  return level.find("%c") != std::string_view::npos || level.find("%u") != std::string_view::npos;
}

}  // namespace

RuleTree::RuleTree() : root_(std::make_unique<Node>()) {}
RuleTree::~RuleTree() = default;
RuleTree::RuleTree(RuleTree&&) noexcept = default;
RuleTree& RuleTree::operator=(RuleTree&&) noexcept = default;

void RuleTree::add(std::string_view filter, std::uint8_t access, bool pattern) {
  Node* n = root_.get();
  for (std::string_view level : split(filter, '/')) {
    std::unique_ptr<Node>* next = nullptr;
    if (level == "#") {
      next = &n->hash;
    } else if (level == "+") {
      next = &n->plus;
    } else if (pattern && has_substitution(level)) {
      for (auto& [tmpl, child] : n->templates)
        if (tmpl == level) next = &child;
      if (!next) next = &n->templates.emplace_back(std::string(level), nullptr).second;
    } else {
      auto it = n->children.find(level);
      if (it == n->children.end()) it = n->children.emplace(std::string(level), nullptr).first;
      next = &it->second;
    }
    if (!*next) *next = std::make_unique<Node>();
    n = next->get();
  }
  if (access == 0) {
    n->deny = true;
  } else {
    n->allow |= access;
  }
  ++rules_;
}

Decision RuleTree::check_topic(std::string_view topic, std::uint8_t access, const Subject* who) const {
  Verdict v;
  walk(*root_, Cursor{topic}, false, who, v);
  return decide(v, access);
}

Decision RuleTree::check_filter(std::string_view filter, std::uint8_t access, const Subject* who) const {
  Verdict v;
  walk(*root_, Cursor{filter}, true, who, v);
  return decide(v, access);
}

// ------------------------------------------------------------- the file --

AclFile AclFile::parse(std::string_view text, const std::string& source) {
  AclFile acl;
  RuleTree* current = &acl.anonymous_;
  std::size_t number = 0;
  for_each_line(text, [&](std::string_view line) {
    ++number;
    std::string_view rest = trim(line);
    if (rest.empty() || rest.front() == '#') return;
    const std::string_view keyword = next_word(rest);
    if (keyword == "user") {
      if (rest.empty()) throw FileError(source, number, "'user' needs a user name");
      current = &acl.users_[std::string(rest)];
      return;
    }
    if (keyword != "topic" && keyword != "pattern")
      throw FileError(source, number,
                      fmt::format("unknown keyword '{}' (expected topic, pattern or user)", keyword));
    std::uint8_t access = kRead | kWrite;
    std::string_view filter = rest;
    std::string_view word = rest;
    const std::string_view first = next_word(word);
    if (first == "read" || first == "write" || first == "readwrite" || first == "deny") {
      access = first == "read" ? kRead : first == "write" ? kWrite : first == "deny" ? 0 : kRead | kWrite;
      filter = word;
    }
    if (filter.empty()) throw FileError(source, number, fmt::format("'{}' needs a topic filter", keyword));
    if (!mqtt::valid_topic_filter(filter))
      throw FileError(source, number, fmt::format("'{}' is not a valid topic filter", filter));
    if (keyword == "topic") {
      current->add(filter, access);
    } else {
      acl.patterns_.add(filter, access, true);
    }
    ++acl.rules_;
  });
  return acl;
}

AclFile AclFile::load(const std::string& path) { return parse(read_file(path), path); }

const RuleTree* AclFile::own_rules(const Subject& who) const {
  if (!who.username) return &anonymous_;
  auto it = users_.find(*who.username);
  return it == users_.end() ? nullptr : &it->second;
}

template <class Check>
Decision AclFile::decide(const Subject& who, const RuleTree* own, Check&& check) const {
  if (own && !own->empty()) {
    const Decision d = check(*own, nullptr);
    if (d != Decision::NoMatch) return d;
  }
  if (patterns_.empty()) return Decision::NoMatch;
  // A '+' or '#' in a name substituted into a pattern would widen it.
  if (who.client_id.find_first_of("+#") != std::string_view::npos ||
      (who.username && who.username->find_first_of("+#") != std::string::npos))
    return Decision::Deny;
  return check(patterns_, &who);
}

Decision AclFile::check_topic(const Subject& who, std::string_view topic, std::uint8_t access,
                              const RuleTree* const* own) const {
  return decide(who, own ? *own : own_rules(who),
                [&](const RuleTree& t, const Subject* s) { return t.check_topic(topic, access, s); });
}

Decision AclFile::check_filter(const Subject& who, std::string_view filter, std::uint8_t access,
                               const RuleTree* const* own) const {
  return decide(who, own ? *own : own_rules(who),
                [&](const RuleTree& t, const Subject* s) { return t.check_filter(filter, access, s); });
}

}  // namespace petrel::auth
