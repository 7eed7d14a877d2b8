// The decisions about WebSocket upgrade requests and close statuses
// (src/net/websocket.hpp); the I/O is covered by tests/websocket.
#include "net/websocket.hpp"

#include <gtest/gtest.h>

namespace petrel::net {
namespace {

namespace http = boost::beast::http;

UpgradeRequest upgrade(std::string target = "/mqtt", std::string protocol = "mqtt") {
  UpgradeRequest r{http::verb::get, target, 11};
  r.set(http::field::host, "localhost");
  r.set(http::field::connection, "Upgrade");
  r.set(http::field::upgrade, "websocket");
  r.set(http::field::sec_websocket_key, "dGhlIHNhbXBsZSBub25jZQ==");
  r.set(http::field::sec_websocket_version, "13");
  if (!protocol.empty()) r.set(http::field::sec_websocket_protocol, protocol);
  return r;
}

TEST(WebSocketUpgrade, AcceptsMqttOnTheConfiguredPath) {
  WebSocketSettings s;
  auto d = decide_upgrade(upgrade(), s);
  EXPECT_EQ(d.status, 101u);
  EXPECT_EQ(d.subprotocol, "mqtt");
  // A query string does not change the path.
  EXPECT_EQ(decide_upgrade(upgrade("/mqtt?token=1"), s).status, 101u);
  s.path = "/";
  EXPECT_EQ(decide_upgrade(upgrade("/"), s).status, 101u);
}

TEST(WebSocketUpgrade, PicksTheFirstAcceptableSubprotocol) {
  WebSocketSettings s;
  EXPECT_EQ(decide_upgrade(upgrade("/mqtt", "wamp, mqttv3.1 ,mqtt"), s).subprotocol, "mqttv3.1");
  auto r = upgrade("/mqtt", "chat");
  r.insert(http::field::sec_websocket_protocol, "mqtt");  // a repeated header counts too
  EXPECT_EQ(decide_upgrade(r, s).subprotocol, "mqtt");
  // Tokens are compared exactly (RFC 6455: case-sensitive).
  auto d = decide_upgrade(upgrade("/mqtt", "MQTT"), s);
  EXPECT_EQ(d.status, 400u);
  EXPECT_EQ(d.label, "no_subprotocol");
  EXPECT_EQ(decide_upgrade(upgrade("/mqtt", ""), s).label, "no_subprotocol");
}

TEST(WebSocketUpgrade, RefusesWithTheRightStatus) {
  WebSocketSettings s;
  auto wrong = decide_upgrade(upgrade("/other"), s);
  EXPECT_EQ(wrong.status, 404u);
  EXPECT_EQ(wrong.label, "wrong_path");
  EXPECT_EQ(decide_upgrade(upgrade("/mqtt/"), s).status, 404u);

  auto post = upgrade();
  post.method(http::verb::post);
  EXPECT_EQ(decide_upgrade(post, s).status, 405u);
  EXPECT_EQ(decide_upgrade(post, s).label, "bad_method");

  UpgradeRequest plain{http::verb::get, "/mqtt", 11};
  plain.set(http::field::host, "localhost");
  EXPECT_EQ(decide_upgrade(plain, s).status, 426u);
  EXPECT_EQ(decide_upgrade(plain, s).label, "not_websocket");
}

TEST(WebSocketUpgrade, ForwardedForOnlyFromTrustedProxies) {
  WebSocketSettings s;
  auto r = upgrade();
  r.set("X-Forwarded-For", "198.51.100.1, 203.0.113.7");
  const auto proxy = boost::asio::ip::make_address("127.0.0.1");
  EXPECT_EQ(forwarded_for(r, proxy, s), "");
  s.trusted_proxies.push_back(proxy);
  EXPECT_EQ(forwarded_for(r, proxy, s), "203.0.113.7");
  EXPECT_EQ(forwarded_for(r, boost::asio::ip::make_address("10.0.0.1"), s), "");
  r.set("X-Forwarded-For", "not-an-address");
  EXPECT_EQ(forwarded_for(r, proxy, s), "");
  r.set("X-Forwarded-For", "2001:db8::1");
  EXPECT_EQ(forwarded_for(r, proxy, s), "2001:db8::1");
}

TEST(WebSocketClose, StatusFollowsTheMqttReason) {
  using mqtt::ReasonCode;
  EXPECT_EQ(websocket_close_code(ReasonCode::Success), 1000);
  EXPECT_EQ(websocket_close_code(ReasonCode::SessionTakenOver), 1000);
  EXPECT_EQ(websocket_close_code(ReasonCode::ServerShuttingDown), 1001);
  EXPECT_EQ(websocket_close_code(ReasonCode::MalformedPacket), 1002);
  EXPECT_EQ(websocket_close_code(ReasonCode::ProtocolError), 1002);
  EXPECT_EQ(websocket_close_code(ReasonCode::TopicAliasInvalid), 1002);
  EXPECT_EQ(websocket_close_code(ReasonCode::NotAuthorized), 1008);
  EXPECT_EQ(websocket_close_code(ReasonCode::QuotaExceeded), 1008);
  EXPECT_EQ(websocket_close_code(ReasonCode::PacketTooLarge), 1009);
  EXPECT_EQ(websocket_close_code(ReasonCode::ImplementationSpecificError), 1011);
  EXPECT_EQ(websocket_close_code(ReasonCode::ServerBusy), 1013);
}

}  // namespace
}  // namespace petrel::net
