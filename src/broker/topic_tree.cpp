#include "broker/topic_tree.hpp"

#include <algorithm>
#include <cstring>
#include <mutex>

#include "mqtt/topic.hpp"

namespace petrel::broker {
namespace {

// Splits off the first level of `rest`; returns {level, remainder, had_more}.
struct Split {
  std::string_view level;
  std::string_view rest;
  bool more;
};
Split split(std::string_view s) {
  auto slash = s.find('/');
  if (slash == std::string_view::npos) return {s, {}, false};
  return {s.substr(0, slash), s.substr(slash + 1), true};
}

}  // namespace

std::size_t TopicTree::LevelHash::operator()(std::string_view s) const {
  constexpr std::uint64_t k = 0x9E3779B97F4A7C15ull;
  std::uint64_t h = s.size() * k;
  std::size_t i = 0;
  for (; i + 8 <= s.size(); i += 8) {
    std::uint64_t w;
    std::memcpy(&w, s.data() + i, 8);
    h = (h ^ w) * k;
    h ^= h >> 29;
  }
  if (i < s.size()) {
    std::uint64_t w = 0;
    std::memcpy(&w, s.data() + i, s.size() - i);
    h = (h ^ w) * k;
    h ^= h >> 29;
  }
  return static_cast<std::size_t>(h);
}

TopicTree::Node* TopicTree::Node::child(std::string_view level, bool create) {
  if (level == "+" || level == "#") {
    auto& slot = level == "+" ? plus : hash;
    if (!slot && create) slot = std::make_unique<Node>();
    return slot.get();
  }
  auto it = children.find(level);
  if (it == children.end()) {
    if (!create) return nullptr;
    it = children.emplace(std::string(level), std::make_unique<Node>()).first;
  }
  return it->second.get();
}

void TopicTree::Node::prune(std::string_view level) {
  if (level == "+" || level == "#") {
    auto& slot = level == "+" ? plus : hash;
    if (slot && slot->empty()) slot.reset();
    return;
  }
  if (auto it = children.find(level); it != children.end() && it->second->empty()) children.erase(it);
}

TopicTree::TopicTree() = default;
TopicTree::~TopicTree() = default;

bool TopicTree::subscribe(std::string_view filter, const SessionPtr& session, const mqtt::SubscribeOptions& options,
                          std::uint32_t subscription_id) {
  std::string_view group;
  if (auto shared = mqtt::parse_shared(filter)) {
    group = shared->group;
    filter = shared->filter;
  }
  std::unique_lock lock(mutex_);
  Node* node = &root_;
  while (true) {
    auto [level, rest, more] = split(filter);
    node = node->child(level, true);
    if (!more) break;
    filter = rest;
  }
  std::vector<Subscriber>* list = &node->subscribers;
  if (!group.empty()) {
    auto g = node->shared.find(group);
    if (g == node->shared.end()) g = node->shared.emplace(std::string(group), std::make_unique<SharedGroup>()).first;
    list = &g->second->members;
  }
  for (auto& s : *list) {
    if (s.session.get() == session.get()) {
      s.options = options;
      s.subscription_id = subscription_id;
      return true;
    }
  }
  list->push_back(Subscriber{session, options, subscription_id});
  ++count_;
  return false;
}

bool TopicTree::remove(Node& node, std::string_view filter, std::string_view group, const Session* session) {
  auto [level, rest, more] = split(filter);
  Node* found = node.child(level, false);
  if (!found) return false;
  Node& child = *found;
  bool removed = false;
  if (more) {
    removed = remove(child, rest, group, session);
  } else {
    auto erase_from = [&](std::vector<Subscriber>& list) {
      auto pos =
          std::find_if(list.begin(), list.end(), [&](const Subscriber& s) { return s.session.get() == session; });
      if (pos == list.end()) return false;
      list.erase(pos);
      return true;
    };
    if (group.empty()) {
      removed = erase_from(child.subscribers);
    } else if (auto g = child.shared.find(group); g != child.shared.end()) {
      removed = erase_from(g->second->members);
      if (g->second->members.empty()) child.shared.erase(g);
    }
  }
  node.prune(level);
  return removed;
}

bool TopicTree::unsubscribe(std::string_view filter, const Session* session) {
  std::string_view group;
  if (auto shared = mqtt::parse_shared(filter)) {
    group = shared->group;
    filter = shared->filter;
  }
  std::unique_lock lock(mutex_);
  const bool removed = remove(root_, filter, group, session);
  if (removed) --count_;
  return removed;
}

void TopicTree::collect(const Node& node, std::vector<SubscriptionMatch>& out) {
  for (const auto& s : node.subscribers)
    out.push_back(SubscriptionMatch{s.session, s.options, s.subscription_id, false});
  for (const auto& [name, group] : node.shared) {
    const auto& members = group->members;
    if (members.empty()) continue;
    const std::size_t start = group->next.fetch_add(1, std::memory_order_relaxed);
    const Subscriber* pick = &members[start % members.size()];
    for (std::size_t i = 0; i < members.size(); ++i) {
      const auto& candidate = members[(start + i) % members.size()];
      if (candidate.session->online()) {
        pick = &candidate;
        break;
      }
    }
    out.push_back(SubscriptionMatch{pick->session, pick->options, pick->subscription_id, true});
  }
}

void TopicTree::match_levels(const Node& node, std::string_view topic, std::size_t pos, bool root,
                             std::vector<SubscriptionMatch>& out) {
  // A topic starting with '$' is not matched by a filter starting with a
  // wildcard [MQTT-4.7.2-1].
  const bool dollar = root && !topic.empty() && topic[0] == '$';
  const auto slash = topic.find('/', pos);
  const auto level = topic.substr(pos, slash == std::string_view::npos ? std::string_view::npos : slash - pos);
  if (!dollar && node.hash) collect(*node.hash, out);
  auto visit = [&](const Node& child) {
    if (slash == std::string_view::npos) {
      collect(child, out);
      if (child.hash) collect(*child.hash, out);  // "a/#" also matches "a"
    } else {
      match_levels(child, topic, slash + 1, false, out);
    }
  };
  if (!node.children.empty()) {
    if (auto e = node.children.find(level); e != node.children.end()) visit(*e->second);
  }
  if (!dollar && node.plus) visit(*node.plus);
}

void TopicTree::match(std::string_view topic, std::vector<SubscriptionMatch>& out) const {
  std::shared_lock lock(mutex_);
  match_levels(root_, topic, 0, true, out);
}

std::size_t TopicTree::size() const {
  std::shared_lock lock(mutex_);
  return count_;
}

}  // namespace petrel::broker
