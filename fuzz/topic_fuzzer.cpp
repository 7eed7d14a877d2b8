// Fuzz target: topic name and filter validation and matching. The input is
// "filter\0topic"; the subscription tree must agree with the reference
// matcher for every valid pair, and nothing may crash on invalid ones.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "broker/topic_tree.hpp"
#include "mqtt/topic.hpp"

using namespace petrel;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  const auto nul = in.find('\0');
  const std::string_view filter = in.substr(0, nul);
  const std::string_view topic = nul == std::string_view::npos ? std::string_view{} : in.substr(nul + 1);
  const bool filter_ok = mqtt::valid_topic_filter(filter);
  const bool topic_ok = mqtt::valid_topic_name(topic);
  if (auto shared = mqtt::parse_shared(filter)) (void)mqtt::valid_shared_filter(*shared);
  if (!filter_ok || !topic_ok || mqtt::parse_shared(filter)) return 0;
  broker::TopicTree tree;
  auto session = std::make_shared<broker::Session>("fuzz");
  tree.subscribe(filter, session, {}, 0);
  std::vector<broker::SubscriptionMatch> out;
  tree.match(topic, out);
  if ((out.size() == 1) != mqtt::topic_matches(filter, topic)) std::abort();
  if (!tree.unsubscribe(filter, session.get()) || tree.size() != 0) std::abort();
  return 0;
}
