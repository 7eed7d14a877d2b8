// In-memory stores. Retained messages live in a tree of topic levels so that
// a subscription's filter walks only the branches it can match.
#include <map>
#include <mutex>
#include <shared_mutex>

#include "store/memory_store.hpp"

namespace petrel::store {

using broker::MessagePtr;
using broker::RetainedStore;
using broker::SessionStore;

namespace {

class MemoryRetainedStore final : public RetainedStore {
 public:
  void set(const MessagePtr& m) override {
    std::unique_lock lock(mutex_);
    Node* node = &root_;
    std::string_view topic = m->topic();
    while (true) {
      auto slash = topic.find('/');
      auto level = topic.substr(0, slash);
      auto it = node->children.find(level);
      if (it == node->children.end()) it = node->children.emplace(std::string(level), std::make_unique<Node>()).first;
      node = it->second.get();
      if (slash == std::string_view::npos) break;
      topic.remove_prefix(slash + 1);
    }
    if (!node->message) ++count_;
    node->message = m;
  }

  bool erase(std::string_view topic) override {
    std::unique_lock lock(mutex_);
    const bool removed = erase_at(root_, topic);
    if (removed) --count_;
    return removed;
  }

  void match(std::string_view filter, std::vector<MessagePtr>& out) const override {
    std::shared_lock lock(mutex_);
    match_at(root_, filter, true, out);
  }

  bool contains(std::string_view topic) const override {
    std::shared_lock lock(mutex_);
    const Node* node = &root_;
    while (true) {
      auto slash = topic.find('/');
      auto it = node->children.find(topic.substr(0, slash));
      if (it == node->children.end()) return false;
      node = it->second.get();
      if (slash == std::string_view::npos) return node->message != nullptr;
      topic.remove_prefix(slash + 1);
    }
  }

  std::size_t size() const override {
    std::shared_lock lock(mutex_);
    return count_;
  }

 private:
  struct Node {
    std::map<std::string, std::unique_ptr<Node>, std::less<>> children;
    MessagePtr message;
  };

  static bool erase_at(Node& node, std::string_view topic) {
    auto slash = topic.find('/');
    auto level = topic.substr(0, slash);
    auto it = node.children.find(level);
    if (it == node.children.end()) return false;
    Node& child = *it->second;
    bool removed;
    if (slash == std::string_view::npos) {
      removed = child.message != nullptr;
      child.message.reset();
    } else {
      removed = erase_at(child, topic.substr(slash + 1));
    }
    if (!child.message && child.children.empty()) node.children.erase(it);
    return removed;
  }

  static void collect_all(const Node& node, std::vector<MessagePtr>& out) {
    if (node.message) out.push_back(node.message);
    for (const auto& [_, child] : node.children) collect_all(*child, out);
  }

  // `node` is the parent of the level that `filter` starts with.
  static void match_at(const Node& node, std::string_view filter, bool root, std::vector<MessagePtr>& out) {
    auto slash = filter.find('/');
    auto level = filter.substr(0, slash);
    const bool last = slash == std::string_view::npos;
    auto rest = last ? std::string_view{} : filter.substr(slash + 1);
    auto step = [&](const Node& child) {
      if (last) {
        if (child.message) out.push_back(child.message);
      } else if (rest == "#") {
        // "a/#" matches "a" itself and everything below it.
        if (child.message) out.push_back(child.message);
        for (const auto& [_, grandchild] : child.children) collect_all(*grandchild, out);
      } else {
        match_at(child, rest, false, out);
      }
    };
    if (level == "#") {
      for (const auto& [name, child] : node.children) {
        if (root && !name.empty() && name[0] == '$') continue;
        collect_all(*child, out);
      }
    } else if (level == "+") {
      for (const auto& [name, child] : node.children) {
        if (root && !name.empty() && name[0] == '$') continue;
        step(*child);
      }
    } else if (auto it = node.children.find(level); it != node.children.end()) {
      step(*it->second);
    }
  }

  mutable std::shared_mutex mutex_;
  Node root_;
  std::size_t count_ = 0;
};

class MemorySessionStore final : public SessionStore {
 public:
  std::uint64_t session_saved(const std::string&, std::uint64_t, std::uint32_t, mqtt::Version,
                              const broker::WillMessage*, const std::optional<std::string>&,
                              const std::string&) override {
    return 0;
  }
  void session_offline(const std::string&, std::uint32_t, const broker::WillMessage*) override {}
  void will_cleared(const std::string&) override {}
  void session_deleted(const std::string&) override {}
  void subscription_added(const std::string&, const std::string&, const broker::SubscriptionEntry&) override {}
  void subscription_removed(const std::string&, const std::string&) override {}
  std::uint64_t delivery_added(std::uint64_t, const broker::Delivery&) override { return 0; }
  void delivery_state(std::uint64_t, std::uint16_t, broker::OutState) override {}
  void delivery_removed(std::uint64_t, const broker::Message&) override {}
  void inbound_qos2_added(const std::string&, std::uint16_t) override {}
  void inbound_qos2_removed(const std::string&, std::uint16_t) override {}
};

}  // namespace

std::unique_ptr<RetainedStore> make_memory_retained_store() {
  return std::make_unique<MemoryRetainedStore>();
}
std::unique_ptr<SessionStore> make_memory_session_store() {
  return std::make_unique<MemorySessionStore>();
}

}  // namespace petrel::store
