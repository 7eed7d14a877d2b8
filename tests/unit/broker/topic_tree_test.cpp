// TopicTree against the reference matcher, plus the tree-only behaviours:
// replacement, removal, shared groups and the '$' rule.
#include "broker/topic_tree.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <set>

#include "mqtt/topic.hpp"

namespace petrel::broker {
namespace {

SessionPtr session(const std::string& id) {
  return std::make_shared<Session>(id);
}

std::multiset<std::string> matched(const TopicTree& tree, std::string_view topic) {
  std::vector<SubscriptionMatch> out;
  tree.match(topic, out);
  std::multiset<std::string> ids;
  for (const auto& m : out) ids.insert(m.session->client_id());
  return ids;
}

TEST(TopicTree, WildcardsAndExact) {
  TopicTree tree;
  auto a = session("a"), b = session("b"), c = session("c"), d = session("d");
  tree.subscribe("x/y", a, {}, 0);
  tree.subscribe("x/+", b, {}, 0);
  tree.subscribe("x/#", c, {}, 0);
  tree.subscribe("#", d, {}, 0);
  EXPECT_EQ(matched(tree, "x/y"), (std::multiset<std::string>{"a", "b", "c", "d"}));
  EXPECT_EQ(matched(tree, "x"), (std::multiset<std::string>{"c", "d"}));
  EXPECT_EQ(matched(tree, "x/y/z"), (std::multiset<std::string>{"c", "d"}));
  EXPECT_EQ(matched(tree, "q"), (std::multiset<std::string>{"d"}));
  EXPECT_EQ(tree.size(), 4u);
}

TEST(TopicTree, DollarTopicsSkipLeadingWildcards) {
  TopicTree tree;
  auto a = session("a"), b = session("b"), c = session("c");
  tree.subscribe("#", a, {}, 0);
  tree.subscribe("+/broker", b, {}, 0);
  tree.subscribe("$SYS/#", c, {}, 0);
  EXPECT_EQ(matched(tree, "$SYS/broker"), (std::multiset<std::string>{"c"}));
}

TEST(TopicTree, ResubscribeReplacesAndUnsubscribeRemoves) {
  TopicTree tree;
  auto a = session("a");
  EXPECT_FALSE(tree.subscribe("t", a, {0, false, false, 0}, 0));
  EXPECT_TRUE(tree.subscribe("t", a, {2, false, false, 0}, 9));
  std::vector<SubscriptionMatch> out;
  tree.match("t", out);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].options.qos, 2);
  EXPECT_EQ(out[0].subscription_id, 9u);
  EXPECT_TRUE(tree.unsubscribe("t", a.get()));
  EXPECT_FALSE(tree.unsubscribe("t", a.get()));
  EXPECT_TRUE(matched(tree, "t").empty());
  EXPECT_EQ(tree.size(), 0u);
}

TEST(TopicTree, SharedGroupDeliversToOneMemberRoundRobin) {
  TopicTree tree;
  auto a = session("a"), b = session("b"), plain = session("p");
  a->set_online(true);
  b->set_online(true);
  tree.subscribe("$share/g/s/+", a, {}, 0);
  tree.subscribe("$share/g/s/+", b, {}, 0);
  tree.subscribe("s/+", plain, {}, 0);
  std::multiset<std::string> all;
  for (int i = 0; i < 10; ++i) {
    auto got = matched(tree, "s/1");
    EXPECT_EQ(got.size(), 2u);
    EXPECT_EQ(got.count("p"), 1u);
    all.insert(got.begin(), got.end());
  }
  EXPECT_EQ(all.count("a"), 5u);
  EXPECT_EQ(all.count("b"), 5u);
}

TEST(TopicTree, SharedGroupPrefersOnlineMembers) {
  TopicTree tree;
  auto offline = session("off"), online = session("on");
  online->set_online(true);
  tree.subscribe("$share/g/t", offline, {}, 0);
  tree.subscribe("$share/g/t", online, {}, 0);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(matched(tree, "t"), (std::multiset<std::string>{"on"}));
  EXPECT_TRUE(tree.unsubscribe("$share/g/t", online.get()));
  EXPECT_EQ(matched(tree, "t"), (std::multiset<std::string>{"off"}));
}

// Random filters and topics: the tree agrees with the reference matcher.
TEST(TopicTree, AgreesWithReferenceMatcher) {
  std::mt19937 rng(42);
  const std::vector<std::string> levels = {"a", "b", "c", "", "$x"};
  auto pick = [&](std::size_t n) { return std::uniform_int_distribution<std::size_t>(0, n - 1)(rng); };
  auto random_topic = [&] {
    std::string t;
    const auto depth = 1 + pick(4);
    for (std::size_t i = 0; i < depth; ++i) t += (i ? "/" : "") + levels[pick(levels.size())];
    return t;
  };
  TopicTree tree;
  std::vector<std::pair<std::string, SessionPtr>> subs;
  for (int i = 0; i < 200; ++i) {
    std::string f;
    const auto depth = 1 + pick(4);
    for (std::size_t l = 0; l < depth; ++l) {
      const auto r = pick(10);
      const std::string level = r < 2 ? "+" : (r < 3 && l + 1 == depth) ? "#" : levels[pick(levels.size())];
      f += (l ? "/" : "") + level;
    }
    auto s = session("s" + std::to_string(i));
    tree.subscribe(f, s, {}, 0);
    subs.emplace_back(f, s);
  }
  for (int i = 0; i < 500; ++i) {
    const auto topic = random_topic();
    std::multiset<std::string> expected;
    for (const auto& [f, s] : subs)
      if (mqtt::topic_matches(f, topic)) expected.insert(s->client_id());
    EXPECT_EQ(matched(tree, topic), expected) << topic;
  }
}

}  // namespace
}  // namespace petrel::broker
