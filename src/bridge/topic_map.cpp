#include "bridge/topic_map.hpp"

#include <algorithm>

#include "mqtt/topic.hpp"

namespace petrel::bridge {

TopicMap::TopicMap(std::vector<ForwardRule> forward, std::vector<SubscribeRule> subscribe)
    : forward_(std::move(forward)), subscribe_(std::move(subscribe)) {
  for (const auto& r : forward_) longest_prefix_ = std::max(longest_prefix_, r.remote_prefix.size());
}

const ForwardRule* TopicMap::forward_rule(std::string_view local_topic) const {
  for (const auto& r : forward_)
    if (mqtt::topic_matches(r.filter, local_topic)) return &r;
  return nullptr;
}

bool TopicMap::remote_topic(std::string_view local_topic, std::string& out, const ForwardRule** rule) const {
  const ForwardRule* r = forward_rule(local_topic);
  if (rule) *rule = r;
  if (!r) return false;
  out.assign(r->remote_prefix).append(local_topic);
  return true;
}

std::optional<std::string> TopicMap::local_topic(std::string_view remote_topic) const {
  for (const auto& r : subscribe_) {
    if (!mqtt::topic_matches(r.filter, remote_topic)) continue;
    std::string out;
    out.reserve(r.local_prefix.size() + remote_topic.size());
    out.append(r.local_prefix).append(remote_topic);
    return out;
  }
  return std::nullopt;
}

}  // namespace petrel::bridge
