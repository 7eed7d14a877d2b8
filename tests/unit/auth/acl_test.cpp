// The ACL file and its rule tree, table-driven: pattern substitution, read
// against write, deny precedence, $SYS, subscriptions judged by coverage,
// and the tree agreeing with a plain scan of the rules for random topics.
#include <gtest/gtest.h>

#include <random>

#include "auth/acl.hpp"
#include "auth/file_error.hpp"
#include "mqtt/topic.hpp"

using namespace petrel::auth;

namespace {

constexpr const char* kAcl = R"(# anonymous clients
topic read public/#
topic deny public/secret

user alice
topic readwrite home/alice/#
topic read sensors/+/temp
topic write cmd/#
topic deny cmd/reboot
topic read $SYS/#

user bob
topic home/bob/#

pattern readwrite devices/%c/#
pattern read users/%u/inbox
pattern write out/%u/%c
pattern deny devices/%c/locked
)";

struct Case {
  const char* user;  // nullptr: anonymous
  const char* client_id;
  const char* topic;
  std::uint8_t access;
  Decision expected;
};

const std::string* name(const char* user) {
  thread_local std::string s;
  if (!user) return nullptr;
  s = user;
  return &s;
}

}  // namespace

TEST(Acl, TopicDecisions) {
  const AclFile acl = AclFile::parse(kAcl, "acl");
  EXPECT_EQ(acl.rule_count(), 12u);
  EXPECT_EQ(acl.user_count(), 2u);
  const Case cases[] = {
      // anonymous rules (before any `user` line)
      {nullptr, "c1", "public/news", kRead, Decision::Allow},
      {nullptr, "c1", "public/news", kWrite, Decision::NoMatch},
      {nullptr, "c1", "public/secret", kRead, Decision::Deny},
      {nullptr, "c1", "home/alice/x", kRead, Decision::NoMatch},
      // a user's own rules; read vs write
      {"alice", "a1", "home/alice/lamp", kWrite, Decision::Allow},
      {"alice", "a1", "home/alice", kRead, Decision::Allow},  // '#' matches the parent level too
      {"alice", "a1", "sensors/kitchen/temp", kRead, Decision::Allow},
      {"alice", "a1", "sensors/kitchen/temp", kWrite, Decision::NoMatch},
      {"alice", "a1", "sensors/kitchen/hum", kRead, Decision::NoMatch},
      {"alice", "a1", "cmd/light", kWrite, Decision::Allow},
      {"alice", "a1", "cmd/light", kRead, Decision::NoMatch},
      // deny wins over an allow in the same stage
      {"alice", "a1", "cmd/reboot", kWrite, Decision::Deny},
      {"alice", "a1", "public/news", kRead, Decision::NoMatch},  // anonymous rules are not alice's
      {"bob", "b1", "home/bob/x", kWrite, Decision::Allow},      // no access word: readwrite
      {"bob", "b1", "home/bob/x", kRead, Decision::Allow},
      {"bob", "b1", "home/alice/x", kRead, Decision::NoMatch},
      // $SYS: no wildcard-led rule matches it; an explicit one does
      {"alice", "a1", "$SYS/broker/uptime", kRead, Decision::Allow},
      {"bob", "b1", "$SYS/broker/uptime", kRead, Decision::NoMatch},
      // patterns: %c and %u substituted
      {"bob", "dev7", "devices/dev7/status", kWrite, Decision::Allow},
      {"bob", "dev7", "devices/dev8/status", kWrite, Decision::NoMatch},
      {nullptr, "dev7", "devices/dev7/status", kRead, Decision::Allow},
      {"carol", "c", "users/carol/inbox", kRead, Decision::Allow},
      {"carol", "c", "users/bob/inbox", kRead, Decision::NoMatch},
      {nullptr, "c", "users//inbox", kRead, Decision::NoMatch},  // %u never applies without a user name
      {"carol", "c9", "out/carol/c9", kWrite, Decision::Allow},
      {"carol", "c9", "out/carol/c8", kWrite, Decision::NoMatch},
      {"carol", "dev7", "devices/dev7/locked", kRead, Decision::Deny},
      // a client id with '/' spans levels, as Mosquitto's textual substitution does
      {"carol", "site/a", "devices/site/a/x", kRead, Decision::Allow},
      // '+' or '#' in a name would widen a pattern: denied
      {"carol", "dev+", "devices/dev+/x", kRead, Decision::Deny},
      {"ca#", "c", "users/ca#/inbox", kRead, Decision::Deny},
      // a pattern's deny holds where the user's own rules say nothing
      {"alice", "dev7", "devices/dev7/locked", kRead, Decision::Deny},
  };
  for (const auto& c : cases) {
    const Subject who{c.client_id, name(c.user)};
    EXPECT_EQ(acl.check_topic(who, c.topic, c.access), c.expected)
        << (c.user ? c.user : "(anonymous)") << " " << c.client_id << " " << c.topic << " access " << int(c.access);
  }
}

TEST(Acl, SubscriptionsAreJudgedByTheRulesThatCoverThem) {
  const AclFile acl = AclFile::parse(kAcl, "acl");
  const Case cases[] = {
      {"alice", "a1", "home/alice/#", kRead, Decision::Allow},
      {"alice", "a1", "home/alice/+/x", kRead, Decision::Allow},
      {"alice", "a1", "home/#", kRead, Decision::NoMatch},  // wider than the rule
      {"alice", "a1", "sensors/+/temp", kRead, Decision::Allow},
      {"alice", "a1", "sensors/#", kRead, Decision::NoMatch},
      {"alice", "a1", "sensors/hall/temp", kRead, Decision::Allow},
      {"alice", "a1", "#", kRead, Decision::NoMatch},
      {"alice", "a1", "$SYS/#", kRead, Decision::Allow},
      {"bob", "b1", "$SYS/#", kRead, Decision::NoMatch},
      {nullptr, "c1", "public/#", kRead, Decision::Allow},
      {nullptr, "c1", "public/secret", kRead, Decision::Deny},
      {"carol", "dev7", "devices/dev7/#", kRead, Decision::Allow},
      {"carol", "dev7", "devices/+/#", kRead, Decision::NoMatch},  // a template names one client
  };
  for (const auto& c : cases) {
    const Subject who{c.client_id, name(c.user)};
    EXPECT_EQ(acl.check_filter(who, c.topic, c.access), c.expected)
        << (c.user ? c.user : "(anonymous)") << " " << c.topic;
  }
}

TEST(Acl, MalformedLinesNameTheLine) {
  auto error_of = [](std::string_view text) -> std::string {
    try {
      AclFile::parse(text, "acl");
    } catch (const FileError& e) {
      return e.what();
    }
    return "";
  };
  EXPECT_EQ(error_of("topic read a\nfoo bar\n"), "acl:2: unknown keyword 'foo' (expected topic, pattern or user)");
  EXPECT_EQ(error_of("user\n"), "acl:1: 'user' needs a user name");
  EXPECT_EQ(error_of("topic read\n"), "acl:1: 'topic' needs a topic filter");
  EXPECT_EQ(error_of("\n\ntopic read a/#/b\n"), "acl:3: 'a/#/b' is not a valid topic filter");
  EXPECT_EQ(error_of("pattern write a+/b\n"), "acl:1: 'a+/b' is not a valid topic filter");
  EXPECT_EQ(error_of("topic write\n"), "acl:1: 'topic' needs a topic filter");
  // An access word with no filter after it is refused (Mosquitto would take the word for the topic).
  EXPECT_EQ(error_of("topic deny\n"), "acl:1: 'topic' needs a topic filter");
  EXPECT_EQ(error_of("  # indented comment\n\ttopic\tread\ta/b\n"), "");
}

// The tree against a plain scan of the rules (Mosquitto's way), for random
// rules and topics: the same decision every time.
TEST(Acl, TreeAgreesWithAScanOfTheRules) {
  std::mt19937 rng(12345);
  const char* words[] = {"a", "b", "c", "$SYS", "+", "#"};
  auto random_filter = [&](bool allow_wild) {
    std::string f;
    const int n = 1 + static_cast<int>(rng() % 4);
    for (int i = 0; i < n; ++i) {
      if (i) f += '/';
      std::string w = words[rng() % (allow_wild ? 6 : 4)];
      if (w == "#" && i != n - 1) w = "+";
      if (w == "$SYS" && i != 0) w = "a";
      f += w;
    }
    return f;
  };
  for (int round = 0; round < 200; ++round) {
    RuleTree tree;
    std::vector<std::pair<std::string, std::uint8_t>> rules;
    for (int i = 0; i < 8; ++i) {
      const std::string f = random_filter(true);
      const std::uint8_t access = static_cast<std::uint8_t>(rng() % 4);
      tree.add(f, access);
      rules.emplace_back(f, access);
    }
    for (int i = 0; i < 20; ++i) {
      const std::string topic = random_filter(false);
      for (std::uint8_t access : {std::uint8_t(kRead), std::uint8_t(kWrite)}) {
        bool deny = false, allow = false;
        for (const auto& [f, a] : rules) {
          if (!petrel::mqtt::topic_matches(f, topic)) continue;
          if (a == 0) deny = true;
          if (a & access) allow = true;
        }
        const Decision expected = deny ? Decision::Deny : allow ? Decision::Allow : Decision::NoMatch;
        EXPECT_EQ(tree.check_topic(topic, access), expected) << topic;
      }
    }
  }
}
