// The bridge's topic rules as pure functions: forward rules pick the remote
// topic (first matching rule wins), subscribe rules the local one.
#include "bridge/topic_map.hpp"

#include <gtest/gtest.h>

namespace petrel::bridge {
namespace {

TopicMap sample() {
  return TopicMap({{"sensors/#", "edge-17/", 1, true}, {"sensors/private/#", "never/", 2, false}, {"alarms/+", "", 0, true}},
                  {{"commands/edge-17/#", "from-cloud/", 1}, {"broadcast/#", "", 0}});
}

TEST(TopicMap, ForwardPrefixesTheLocalTopic) {
  auto m = sample();
  std::string out;
  const ForwardRule* rule = nullptr;
  ASSERT_TRUE(m.remote_topic("sensors/t1/temp", out, &rule));
  EXPECT_EQ(out, "edge-17/sensors/t1/temp");
  ASSERT_NE(rule, nullptr);
  EXPECT_EQ(rule->qos, 1);
  ASSERT_TRUE(m.remote_topic("alarms/fire", out));
  EXPECT_EQ(out, "alarms/fire");  // an empty prefix keeps the topic
}

TEST(TopicMap, FirstMatchingForwardRuleWins) {
  auto m = sample();
  std::string out;
  const ForwardRule* rule = nullptr;
  ASSERT_TRUE(m.remote_topic("sensors/private/x", out, &rule));
  EXPECT_EQ(out, "edge-17/sensors/private/x");
  EXPECT_EQ(rule->filter, "sensors/#");
}

TEST(TopicMap, UnmatchedTopicsAreNotForwarded) {
  auto m = sample();
  std::string out = "untouched";
  EXPECT_FALSE(m.remote_topic("alarms/fire/now", out));  // '+' is one level
  EXPECT_FALSE(m.remote_topic("other", out));
  EXPECT_EQ(m.forward_rule("$SYS/broker/uptime"), nullptr);  // '#' does not match $ topics
}

TEST(TopicMap, SubscribePrefixesTheRemoteTopic) {
  auto m = sample();
  EXPECT_EQ(m.local_topic("commands/edge-17/reboot"), "from-cloud/commands/edge-17/reboot");
  EXPECT_EQ(m.local_topic("broadcast/all"), "broadcast/all");
  EXPECT_EQ(m.local_topic("commands/edge-18/reboot"), std::nullopt);
}

TEST(TopicMap, LongestRemotePrefix) {
  EXPECT_EQ(sample().longest_remote_prefix(), std::string("edge-17/").size());
  EXPECT_EQ(TopicMap({}, {}).longest_remote_prefix(), 0u);
}

}  // namespace
}  // namespace petrel::bridge
