// A bridge's topic rules as a pure function of topics (unit-tested without a
// broker): which forward rule a local message goes out under and with which
// remote topic, and which local topic a message from the remote becomes.
//
// A local message that matches several forward rules is forwarded once: the
// bridge's session holds one subscription per rule and the core merges
// overlapping subscriptions into one delivery at the highest QoS, so the
// rule that names its remote topic is the first matching one in
// configuration order. The same goes for subscribe rules and remote topics.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "bridge/settings.hpp"

namespace petrel::bridge {

class TopicMap {
 public:
  TopicMap(std::vector<ForwardRule> forward, std::vector<SubscribeRule> subscribe);

  // The first forward rule matching a local topic, or null.
  const ForwardRule* forward_rule(std::string_view local_topic) const;
  // remote_prefix + topic, into `out` (replaced); false if no rule matches.
  bool remote_topic(std::string_view local_topic, std::string& out, const ForwardRule** rule = nullptr) const;
  // local_prefix + topic of the first subscribe rule matching a topic the
  // remote sent; nothing if none matches (the remote sent what the bridge
  // did not subscribe to, e.g. left over in its session from an earlier
  // configuration).
  std::optional<std::string> local_topic(std::string_view remote_topic) const;

  // The longest remote_prefix (bytes a forwarded PUBLISH may grow by).
  std::size_t longest_remote_prefix() const { return longest_prefix_; }
  const std::vector<ForwardRule>& forward() const { return forward_; }
  const std::vector<SubscribeRule>& subscribe() const { return subscribe_; }

 private:
  std::vector<ForwardRule> forward_;
  std::vector<SubscribeRule> subscribe_;
  std::size_t longest_prefix_ = 0;
};

}  // namespace petrel::bridge
