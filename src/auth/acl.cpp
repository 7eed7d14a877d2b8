#include "auth/acl.hpp"

#include <fmt/format.h>

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

// The topic's or filter's levels, in a per-thread buffer (no allocation once warm).
const std::vector<std::string_view>& levels_of(std::string_view s) {
  thread_local std::vector<std::string_view> levels;
  levels.clear();
  std::size_t start = 0;
  while (true) {
    const auto pos = s.find('/', start);
    levels.push_back(s.substr(start, pos == std::string_view::npos ? std::string_view::npos : pos - start));
    if (pos == std::string_view::npos) return levels;
    start = pos + 1;
  }
}

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

// How many levels from `i` a substituted template level matches (its text
// may hold '/'), or 0 if it does not. Wildcards in the subject (a filter
// level '+' or '#') never match a template: a template names one client.
std::size_t template_span(std::string_view substituted, const std::vector<std::string_view>& levels, std::size_t i) {
  std::size_t k = i;
  std::size_t start = 0;
  while (true) {
    if (k >= levels.size()) return 0;
    const auto pos = substituted.find('/', start);
    const std::string_view part =
        substituted.substr(start, pos == std::string_view::npos ? std::string_view::npos : pos - start);
    if (levels[k] != part) return 0;
    ++k;
    if (pos == std::string_view::npos) return k - i;
    start = pos + 1;
  }
}

// Every rule whose filter matches the topic levels[i..] (as a filter:
// `is_filter`, every rule that covers it).
void walk(const Node& n, const std::vector<std::string_view>& levels, std::size_t i, bool is_filter,
          const Subject* who, Verdict& v) {
  // A first level that starts with '$' is matched by no wildcard [MQTT-4.7.2-1].
  const bool dollar = i == 0 && !levels[0].empty() && levels[0][0] == '$';
  if (n.hash && !dollar) v.take(*n.hash);  // '#' matches the rest, including nothing at all
  if (i == levels.size()) {
    v.take(n);
    return;
  }
  const std::string_view level = levels[i];
  if (is_filter && level == "#") return;  // only a '#' rule covers '#'
  if (n.plus && !dollar) walk(*n.plus, levels, i + 1, is_filter, who, v);
  if (is_filter && level == "+") return;  // only wildcards cover '+'
  if (auto it = n.children.find(level); it != n.children.end()) walk(*it->second, levels, i + 1, is_filter, who, v);
  if (who && !n.templates.empty()) {
    thread_local std::string buffer;
    for (const auto& [tmpl, child] : n.templates) {
      if (!substitute(tmpl, *who, buffer)) continue;
      if (const std::size_t span = template_span(buffer, levels, i))
        walk(*child, levels, i + span, is_filter, who, v);
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
  walk(*root_, levels_of(topic), 0, false, who, v);
  return decide(v, access);
}

Decision RuleTree::check_filter(std::string_view filter, std::uint8_t access, const Subject* who) const {
  Verdict v;
  walk(*root_, levels_of(filter), 0, true, who, v);
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

template <class Check>
Decision AclFile::decide(const Subject& who, Check&& check) const {
  const RuleTree* own = nullptr;
  if (!who.username) {
    own = &anonymous_;
  } else if (auto it = users_.find(*who.username); it != users_.end()) {
    own = &it->second;
  }
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

Decision AclFile::check_topic(const Subject& who, std::string_view topic, std::uint8_t access) const {
  return decide(who, [&](const RuleTree& t, const Subject* s) { return t.check_topic(topic, access, s); });
}

Decision AclFile::check_filter(const Subject& who, std::string_view filter, std::uint8_t access) const {
  return decide(who, [&](const RuleTree& t, const Subject* s) { return t.check_filter(filter, access, s); });
}

}  // namespace petrel::auth
