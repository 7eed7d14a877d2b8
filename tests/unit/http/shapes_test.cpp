// JSON shaping and its encodings: base64 both ways, ISO 8601 times, a
// session, a retained message (text and binary payloads), a listener with
// failures grouped by kind and a certificate's days until expiry; tokens.
#include <gtest/gtest.h>

#include <fstream>

#include "http/message.hpp"
#include "http/shapes.hpp"
#include "http/tokens.hpp"

namespace petrel::http {
namespace {

TEST(Base64, RoundTripsEveryLength) {
  std::string bytes;
  for (int i = 0; i < 40; ++i) {
    const auto enc = base64_encode(bytes);
    EXPECT_EQ(enc.size() % 4, 0u);
    auto dec = base64_decode(enc);
    ASSERT_TRUE(dec);
    EXPECT_EQ(*dec, bytes);
    bytes.push_back(static_cast<char>(i * 37));
  }
  EXPECT_EQ(base64_encode("hi"), "aGk=");
  EXPECT_EQ(base64_decode("aGk"), "hi");  // padding optional
  EXPECT_FALSE(base64_decode("a*b="));
  EXPECT_FALSE(base64_decode("a"));
}

TEST(Shapes, IsoTime) {
  EXPECT_EQ(iso_time(std::chrono::system_clock::from_time_t(0)), nullptr);
  EXPECT_EQ(iso_time(std::chrono::system_clock::from_time_t(1754000000)), "2025-07-31T22:13:20Z");
}

TEST(Shapes, Session) {
  broker::SessionInfo s;
  s.client_id = "c1";
  s.online = true;
  s.username = "u";
  s.listener = "default";
  s.version = mqtt::Version::V5;
  s.queued = 3;
  const auto j = session_json(s);
  EXPECT_EQ(j["client_id"], "c1");
  EXPECT_EQ(j["protocol"], "5.0");
  EXPECT_EQ(j["username"], "u");
  EXPECT_EQ(j["queued"], 3);
  EXPECT_EQ(j["peer"], nullptr);
  EXPECT_EQ(j["connected_at"], nullptr);
}

TEST(Shapes, MessagePayloads) {
  mqtt::Properties p;
  p.content_type = "text/plain";
  p.user_properties = {{"k", "v"}};
  auto text = broker::Message::create("a/b", "héllo", 1, true, p, "origin");
  auto j = message_json(*text);
  EXPECT_EQ(j["payload"], "héllo");
  EXPECT_EQ(j["size"], 6);
  EXPECT_EQ(j["properties"]["content_type"], "text/plain");
  EXPECT_EQ(j["properties"]["user_properties"][0][1], "v");
  auto binary = broker::Message::create("a/b", std::string("\xff\x00\x01", 3), 0, true, "");
  j = message_json(*binary);
  EXPECT_EQ(j["payload"], nullptr);
  EXPECT_EQ(j["payload_base64"], "/wAB");
}

TEST(Shapes, ListenerGroupsFailuresAndCountsDays) {
  ListenerStatus l;
  l.name = "tls";
  l.type = "tls";
  l.state = "backing_off";
  l.failures = {{"max_connections", "refusal", {5, 1}}, {"certificate_expired", "handshake", {2, 2}},
                {"connect_timeout", "timeout", {1, 0}}};
  CertificateStatus c;
  const auto now = std::chrono::system_clock::from_time_t(1754000000);
  c.not_after = now + std::chrono::hours(24 * 10 + 12);
  l.certificate = c;
  const auto j = listener_json(l, now);
  EXPECT_EQ(j["refusals"]["max_connections"]["total"], 5);
  EXPECT_EQ(j["handshake_failures"]["certificate_expired"]["last_minute"], 2);
  EXPECT_EQ(j["timeouts"]["connect_timeout"]["total"], 1);
  EXPECT_DOUBLE_EQ(j["certificate"]["days_until_expiry"].get<double>(), 10.5);
  EXPECT_EQ(j["state"], "backing_off");
  EXPECT_TRUE(j.contains("handshakes"));
}

TEST(Shapes, ErrorResponse) {
  const auto r = Response::error(404, "no such thing");
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(nlohmann::json::parse(r.body), (nlohmann::json{{"error", {{"status", 404}, {"message", "no such thing"}}}}));
}

TEST(Tokens, LoadsAndMatches) {
  const std::string path = ::testing::TempDir() + "/petrel-tokens";
  {
    std::ofstream f(path);
    f << "# comment\n\n   0123456789abcdef  \nsecond-token-000000\n";
  }
  const auto tokens = load_tokens(path);
  ASSERT_EQ(tokens.size(), 2u);
  EXPECT_TRUE(token_matches(tokens, "0123456789abcdef"));
  EXPECT_TRUE(token_matches(tokens, "second-token-000000"));
  EXPECT_FALSE(token_matches(tokens, "0123456789abcde"));
  EXPECT_FALSE(token_matches(tokens, "0123456789abcdeg"));
  EXPECT_FALSE(token_matches(tokens, ""));
  {
    std::ofstream f(path);
    f << "short\n";
  }
  EXPECT_THROW(load_tokens(path), std::runtime_error);
  EXPECT_THROW(load_tokens(path + "-missing"), std::runtime_error);
}

}  // namespace
}  // namespace petrel::http
