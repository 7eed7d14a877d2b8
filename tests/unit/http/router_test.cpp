// Routing: literal and parameter segments, the rest-of-path parameter (retained
// topics), percent-decoding per segment, 404 versus 405, broken escapes.
#include <gtest/gtest.h>

#include "http/router.hpp"

namespace petrel::http {
namespace {

Router make() {
  Router r;
  auto tag = [](std::string t) { return [t](const Request&) { Response x; x.body = t; return x; }; };
  r.add("GET", "/health", tag("health"), true);
  r.add("GET", "/api/v1/clients", tag("clients"));
  r.add("GET", "/api/v1/clients/{id}", tag("client"));
  r.add("DELETE", "/api/v1/clients/{id}", tag("kick"));
  r.add("GET", "/api/v1/retained/{topic*}", tag("retained"));
  r.add("POST", "/api/v1/listeners/{name}/reload", tag("reload"));
  return r;
}

std::string run(const Router::Match& m) { return (*m.handler)(Request{}).body; }

TEST(Router, MatchesLiteralsAndParameters) {
  const auto r = make();
  auto m = r.match("GET", "/health");
  ASSERT_TRUE(m.handler);
  EXPECT_EQ(run(m), "health");
  EXPECT_TRUE(m.open);
  m = r.match("GET", "/api/v1/clients/sensor-7");
  ASSERT_TRUE(m.handler);
  EXPECT_EQ(run(m), "client");
  EXPECT_FALSE(m.open);
  EXPECT_EQ(m.params.at("id"), "sensor-7");
  m = r.match("POST", "/api/v1/listeners/tls/reload");
  ASSERT_TRUE(m.handler);
  EXPECT_EQ(m.params.at("name"), "tls");
}

TEST(Router, DecodesEachSegmentAfterSplitting) {
  const auto r = make();
  auto m = r.match("GET", "/api/v1/clients/a%2Fb%20c");
  ASSERT_TRUE(m.handler);
  EXPECT_EQ(m.params.at("id"), "a/b c");
}

TEST(Router, RestParameterTakesSlashesAndEmptyLevels) {
  const auto r = make();
  auto m = r.match("GET", "/api/v1/retained/a/b/c");
  ASSERT_TRUE(m.handler);
  EXPECT_EQ(m.params.at("topic"), "a/b/c");
  m = r.match("GET", "/api/v1/retained//lead/trail/");
  ASSERT_TRUE(m.handler);
  EXPECT_EQ(m.params.at("topic"), "/lead/trail/");
  m = r.match("GET", "/api/v1/retained/%24SYS/x");
  EXPECT_EQ(m.params.at("topic"), "$SYS/x");
  EXPECT_FALSE(r.match("GET", "/api/v1/retained").handler);
}

TEST(Router, WrongMethodListsTheAllowedOnes) {
  const auto r = make();
  auto m = r.match("PUT", "/api/v1/clients/x");
  EXPECT_FALSE(m.handler);
  EXPECT_EQ(m.allowed, (std::vector<std::string>{"GET", "DELETE"}));
  m = r.match("GET", "/api/v1/nothing");
  EXPECT_FALSE(m.handler);
  EXPECT_TRUE(m.allowed.empty());
  EXPECT_FALSE(r.match("GET", "/api/v1/clients/").handler);  // an empty id is no id
  EXPECT_FALSE(r.match("GET", "/api/v1/clients/x/y").handler);
}

TEST(Router, BrokenEscapeIsReported) {
  const auto r = make();
  auto m = r.match("GET", "/api/v1/clients/bad%2");
  EXPECT_FALSE(m.handler);
  EXPECT_EQ(m.bad_escape, "bad%2");
  m = r.match("GET", "/api/v1/clients/bad%zz");
  EXPECT_EQ(m.bad_escape, "bad%zz");
}

TEST(Query, ParsesAndDecodes) {
  auto q = parse_query("limit=10&prefix=a%2Bb&user=x+y&flag&=empty");
  ASSERT_TRUE(q);
  EXPECT_EQ(q->at("limit"), "10");
  EXPECT_EQ(q->at("prefix"), "a+b");
  EXPECT_EQ(q->at("user"), "x y");
  EXPECT_EQ(q->at("flag"), "");
  EXPECT_FALSE(parse_query("a=%G1"));
  EXPECT_EQ(percent_decode("a+b"), "a+b");  // '+' is a plus in paths
}

}  // namespace
}  // namespace petrel::http
