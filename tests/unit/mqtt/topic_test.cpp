#include "mqtt/topic.hpp"

#include <gtest/gtest.h>

namespace petrel::mqtt {
namespace {

TEST(TopicName, Validity) {
  EXPECT_TRUE(valid_topic_name("a/b"));
  EXPECT_TRUE(valid_topic_name("/"));
  EXPECT_TRUE(valid_topic_name("$SYS/x"));
  EXPECT_FALSE(valid_topic_name(""));
  EXPECT_TRUE(valid_topic_name("", true));
  EXPECT_FALSE(valid_topic_name("a/+"));
  EXPECT_FALSE(valid_topic_name("#"));
  EXPECT_FALSE(valid_topic_name("a#"));
}

TEST(TopicFilter, Validity) {
  for (auto f : {"#", "+", "a/#", "+/+", "a/+/b", "/", "a//b", "+/#", "$SYS/#"})
    EXPECT_TRUE(valid_topic_filter(f)) << f;
  for (auto f : {"", "a#", "a/#/b", "a+", "a/b+", "#/a", "++"}) EXPECT_FALSE(valid_topic_filter(f)) << f;
}

TEST(SharedFilter, Parse) {
  auto s = parse_shared("$share/g/a/+");
  ASSERT_TRUE(s.has_value());
  EXPECT_EQ(s->group, "g");
  EXPECT_EQ(s->filter, "a/+");
  EXPECT_TRUE(valid_shared_filter(*s));
  EXPECT_FALSE(parse_shared("a/b").has_value());
  EXPECT_FALSE(parse_shared("$sharex/g/a").has_value());
  EXPECT_FALSE(valid_shared_filter(*parse_shared("$share/g")));
  EXPECT_FALSE(valid_shared_filter(*parse_shared("$share//a")));
  EXPECT_FALSE(valid_shared_filter(*parse_shared("$share/g+/a")));
  EXPECT_FALSE(valid_shared_filter(*parse_shared("$share/g/")));
}

struct MatchCase {
  const char* filter;
  const char* topic;
  bool matches;
};

class TopicMatch : public testing::TestWithParam<MatchCase> {};

TEST_P(TopicMatch, Matches) {
  const auto& c = GetParam();
  EXPECT_EQ(topic_matches(c.filter, c.topic), c.matches) << c.filter << " vs " << c.topic;
}

INSTANTIATE_TEST_SUITE_P(Spec, TopicMatch,
                         testing::Values(MatchCase{"a/b", "a/b", true}, MatchCase{"a/b", "a/c", false},
                                         MatchCase{"a/+", "a/b", true}, MatchCase{"a/+", "a/b/c", false},
                                         MatchCase{"a/+", "a/", true}, MatchCase{"+/+", "/a", true},
                                         MatchCase{"+", "/a", false}, MatchCase{"#", "a/b/c", true},
                                         MatchCase{"a/#", "a", true}, MatchCase{"a/#", "a/b/c", true},
                                         MatchCase{"a/#", "ab", false}, MatchCase{"+/b/#", "x/b", true},
                                         MatchCase{"#", "$SYS/x", false}, MatchCase{"+/x", "$SYS/x", false},
                                         MatchCase{"$SYS/#", "$SYS/x", true}, MatchCase{"$SYS/+", "$SYS/x", true},
                                         MatchCase{"a//b", "a//b", true}, MatchCase{"a/+/b", "a//b", true},
                                         MatchCase{"/#", "/a", true}, MatchCase{"a/b/c", "a/b", false}));

}  // namespace
}  // namespace petrel::mqtt
