// The subscription tree: topic filters split into levels, one node per level,
// subscribers at the node where their filter ends. Matching a topic walks the
// levels once, following the exact child, the '+' child and collecting the
// '#' child at every step, so its cost depends on the topic's depth and the
// number of matching filters, not on the number of subscriptions.
//
// Shared subscriptions ($share/group/filter) hang off the node of their
// filter as named groups; each match picks one member per group, round-robin,
// preferring members that are online (see docs/architecture.md).
//
// Threading: one reader/writer lock. Publishes (every event loop) take it
// shared; SUBSCRIBE/UNSUBSCRIBE and session ends take it exclusive. Matching
// copies out SessionPtrs so no lock is held while delivering.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "broker/session.hpp"
#include "mqtt/packets.hpp"

namespace petrel::broker {

struct SubscriptionMatch {
  SessionPtr session;
  mqtt::SubscribeOptions options;
  std::uint32_t subscription_id = 0;
  bool shared = false;
};

class TopicTree {
 public:
  TopicTree();
  ~TopicTree();

  // Adds or replaces `session`'s subscription to `filter` (which may be a
  // $share filter). Returns true if it replaced an existing one.
  bool subscribe(std::string_view filter, const SessionPtr& session, const mqtt::SubscribeOptions& options,
                 std::uint32_t subscription_id);
  // Returns true if the subscription existed.
  bool unsubscribe(std::string_view filter, const Session* session);

  // Appends one entry per matching subscription (one per shared group).
  void match(std::string_view topic, std::vector<SubscriptionMatch>& out) const;

  std::size_t size() const;

 private:
  struct Subscriber {
    SessionPtr session;
    mqtt::SubscribeOptions options;
    std::uint32_t subscription_id;
  };
  struct SharedGroup {
    std::vector<Subscriber> members;
    mutable std::atomic<std::size_t> next{0};
  };
  // Topic levels are short: a multiply-xor over 8-byte words hashes them in
  // a few instructions (std::hash's murmur was a tenth of a publish).
  struct LevelHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const;
  };
  struct Node {
    // Literal levels; the '+' and '#' levels have children of their own, so
    // matching a topic looks up one level per level, not three.
    std::unordered_map<std::string, std::unique_ptr<Node>, LevelHash, std::equal_to<>> children;
    std::unique_ptr<Node> plus;
    std::unique_ptr<Node> hash;
    std::vector<Subscriber> subscribers;
    std::map<std::string, std::unique_ptr<SharedGroup>, std::less<>> shared;
    bool empty() const { return children.empty() && !plus && !hash && subscribers.empty() && shared.empty(); }
    // The child for `level` ("+", "#" or literal), created if `create`.
    Node* child(std::string_view level, bool create);
    // Removes the child for `level` if it is empty.
    void prune(std::string_view level);
  };

  static void collect(const Node& node, std::vector<SubscriptionMatch>& out);
  static void match_levels(const Node& node, std::string_view topic, std::size_t pos, bool root,
                           std::vector<SubscriptionMatch>& out);
  static bool remove(Node& node, std::string_view filter, std::string_view group, const Session* session);

  mutable std::shared_mutex mutex_;
  Node root_;
  std::size_t count_ = 0;
};

}  // namespace petrel::broker
