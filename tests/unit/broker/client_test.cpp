// broker::Client against a fake Transport: the protocol state machine of one
// connection, its seams (the Authorizer, the internal-error boundary) and the
// packets it writes.
#include "broker/client.hpp"

#include <gtest/gtest.h>

#include "harness.hpp"

namespace petrel::broker {
namespace {

using mqtt::ReasonCode;
using mqtt::Version;
using test::as;
using test::Harness;

TEST(Client, ConnectAnswersConnackAndRecordsTheIdentity) {
  Harness h;
  auto c = h.client();
  auto ack = c->connect("alice", 300, false);
  EXPECT_EQ(ack.reason, ReasonCode::Success);
  EXPECT_FALSE(ack.session_present);
  EXPECT_TRUE(c->client().connected());
  auto info = h.broker.find_session("alice");
  ASSERT_TRUE(info);
  EXPECT_TRUE(info->online);
  EXPECT_EQ(info->listener, "test");
  EXPECT_EQ(info->peer, "192.0.2.1:50000");
  EXPECT_EQ(info->version, Version::V5);
  EXPECT_EQ(info->expiry_interval, 300u);
}

TEST(Client, PublishWithoutSubscribersIsAckedWithNoMatchingSubscribers) {
  Harness h;
  auto c = h.client();
  c->connect("pub");
  c->publish("t", "x", 1, 7);
  auto got = c->received();
  ASSERT_EQ(got.size(), 1u);
  auto* ack = as<mqtt::PubAck>(got[0]);
  ASSERT_TRUE(ack);
  EXPECT_EQ(ack->packet_id, 7);
  EXPECT_EQ(ack->reason, ReasonCode::NoMatchingSubscribers);
}

TEST(Client, DeliveryWakesTheSubscriberAndFlushDrainsItsQueue) {
  Harness h;
  auto sub = h.client(), pub = h.client();
  sub->connect("sub");
  sub->subscribe("a/+", 1);
  ASSERT_EQ(sub->received().size(), 1u);  // SUBACK
  pub->connect("pub");
  pub->publish("a/b", "hello", 1, 3);
  auto acks = pub->received();
  ASSERT_EQ(acks.size(), 1u);
  EXPECT_EQ(as<mqtt::PubAck>(acks[0])->reason, ReasonCode::Success);
  EXPECT_EQ(sub->transport().wakes, 1);
  sub->run_loop();
  auto got = sub->received();
  ASSERT_EQ(got.size(), 1u);
  auto* p = as<mqtt::Publish>(got[0]);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->topic, "a/b");
  EXPECT_EQ(p->payload, "hello");
  EXPECT_EQ(p->qos, 1);
  EXPECT_EQ(h.broker.find_session("sub")->inflight, 1u);
  sub->send(mqtt::PubAck{mqtt::PacketType::Puback, p->packet_id, ReasonCode::Success, {}});
  EXPECT_EQ(h.broker.find_session("sub")->inflight, 0u);
}

TEST(Client, TheInflightWindowFollowsTheClientsReceiveMaximum) {
  Harness h;
  auto sub = h.client(), pub = h.client();
  mqtt::Connect c;
  c.version = Version::V5;
  c.client_id = "slow";
  c.properties.receive_maximum = 2;
  sub->send(c);
  sub->subscribe("w", 1);
  sub->received();
  pub->connect("pub");
  for (std::uint16_t i = 1; i <= 5; ++i) pub->publish("w", "m", 1, i);
  sub->run_loop();
  EXPECT_EQ(sub->received().size(), 2u);
  auto info = h.broker.find_session("slow");
  EXPECT_EQ(info->inflight, 2u);
  EXPECT_EQ(info->queued, 3u);
}

// An authorizer whose answers the test sets, and which decides CONNECTs later.
class ScriptedAuthorizer final : public Authorizer {
 public:
  std::optional<ConnectDecision> authenticate(const ConnectRequest& r, Later later) override {
    seen_user = r.identity.username;
    seen_password = r.password;
    this->later = std::move(later);
    return std::nullopt;
  }
  bool may_publish(const ClientIdentity&, std::string_view topic, std::uint8_t, bool) override {
    return topic != "forbidden";
  }
  bool may_subscribe(const ClientIdentity&, std::string_view filter, std::uint8_t) override {
    return filter != "secret/#";
  }
  bool may_receive(const ClientIdentity& who, const Message& m) override {
    return !(who.client_id == "nosy" && m.topic() == "private");
  }
  bool checks_delivery() const override { return true; }

  Later later;
  std::optional<std::string> seen_user, seen_password;
};

TEST(Client, ConnectWaitsForALaterDecisionAndKeepsPacketsSentMeanwhile) {
  Harness h;
  ScriptedAuthorizer auth;
  h.broker.set_authorizer(auth);
  auto c = h.client();
  mqtt::Connect connect;
  connect.version = Version::V5;
  connect.client_id = "later";
  connect.username = "u";
  connect.password = "p";
  c->send(connect);
  c->subscribe("t", 0);  // sent before the CONNACK: allowed, and must not be lost
  EXPECT_TRUE(c->client().awaiting_decision());
  EXPECT_TRUE(c->received().empty());
  EXPECT_EQ(auth.seen_user, "u");
  EXPECT_EQ(auth.seen_password, "p");
  ASSERT_TRUE(auth.later);
  auth.later(ConnectDecision{});
  c->run_loop();
  auto got = c->received();
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(as<mqtt::Connack>(got[0])->reason, ReasonCode::Success);
  EXPECT_TRUE(as<mqtt::Suback>(got[1]));
}

TEST(Client, ARefusedConnectGetsTheAuthorizersReasonCode) {
  Harness h;
  ScriptedAuthorizer auth;
  h.broker.set_authorizer(auth);
  auto c = h.client(Version::V311);
  mqtt::Connect connect;
  connect.version = Version::V311;
  connect.client_id = "refused";
  c->send(connect);
  auth.later(ConnectDecision{ReasonCode::BadUserNameOrPassword, "wrong password"});
  c->run_loop();
  auto got = c->received();
  ASSERT_EQ(got.size(), 1u);
  // 3.1.1: return code 4, Bad user name or password.
  EXPECT_EQ(mqtt::to_v3_connack(as<mqtt::Connack>(got[0])->reason), mqtt::ConnackV3::BadUserNameOrPassword);
  EXPECT_TRUE(c->transport().closed);
  EXPECT_FALSE(h.broker.find_session("refused"));
  EXPECT_EQ(Stats::get(h.broker.stats().connect_denied), 1u);
}

TEST(Client, DeniedPublishIsAckedWithNotAuthorizedAndNotRouted) {
  Harness h;
  ScriptedAuthorizer auth;
  h.broker.set_authorizer(auth);
  auto sub = h.client(), pub = h.client();
  for (auto* c : {sub.get(), pub.get()}) {
    c->send(mqtt::Connect{Version::V5, c == sub.get() ? "s" : "p", true, 60, {}, {}, {}, {}});
    auth.later(ConnectDecision{});
    c->run_loop();
    c->received();
  }
  sub->subscribe("#", 1);
  sub->received();
  pub->publish("forbidden", "x", 1, 9);
  auto got = pub->received();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(as<mqtt::PubAck>(got[0])->reason, ReasonCode::NotAuthorized);
  EXPECT_EQ(sub->transport().wakes, 0);
  EXPECT_EQ(Stats::get(h.broker.stats().publish_denied), 1u);
}

TEST(Client, DeniedSubscriptionGetsNotAuthorizedAndOthersAreGranted) {
  Harness h;
  ScriptedAuthorizer auth;
  h.broker.set_authorizer(auth);
  auto c = h.client();
  c->send(mqtt::Connect{Version::V5, "s", true, 60, {}, {}, {}, {}});
  auth.later(ConnectDecision{});
  c->run_loop();
  c->received();
  mqtt::Subscribe s;
  s.packet_id = 4;
  s.subscriptions = {{"secret/#", {1, false, false, 0}}, {"open/#", {1, false, false, 0}}};
  c->send(s);
  auto got = c->received();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(as<mqtt::Suback>(got[0])->reasons,
            (std::vector<ReasonCode>{ReasonCode::NotAuthorized, ReasonCode::GrantedQoS1}));
}

TEST(Client, AMessageTheSubscriberMayNotReceiveIsNotQueued) {
  Harness h;
  ScriptedAuthorizer auth;
  h.broker.set_authorizer(auth);
  auto nosy = h.client(), other = h.client(), pub = h.client();
  for (auto [c, id] : {std::pair{nosy.get(), "nosy"}, {other.get(), "other"}, {pub.get(), "pub"}}) {
    c->send(mqtt::Connect{Version::V5, id, true, 60, {}, {}, {}, {}});
    auth.later(ConnectDecision{});
    c->run_loop();
    c->received();
  }
  nosy->subscribe("#", 0);
  other->subscribe("#", 0);
  pub->publish("private", "x", 0);
  EXPECT_EQ(nosy->transport().wakes, 0);
  EXPECT_EQ(other->transport().wakes, 1);
}

TEST(Client, AnInternalErrorClosesTheConnectionWith0x80AndPublishesTheWill) {
  Harness h;
  auto watcher = h.client(), c = h.client();
  watcher->connect("watcher");
  watcher->subscribe("wills/#", 0);
  watcher->received();
  c->connect("victim", 0, true, mqtt::Will{"wills/victim", "gone", 0, false, {}});
  c->client().on_internal_error("injected");
  auto got = c->received();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(as<mqtt::Disconnect>(got[0])->reason, ReasonCode::UnspecifiedError);
  EXPECT_TRUE(c->transport().closed);
  EXPECT_FALSE(h.broker.find_session("victim"));
  watcher->run_loop();
  auto will = watcher->received();
  ASSERT_EQ(will.size(), 1u);
  EXPECT_EQ(as<mqtt::Publish>(will[0])->topic, "wills/victim");
}

TEST(Client, AConnackThatCannotFitTheClientsMaximumPacketSizeClosesTheConnection) {
  Harness h;
  auto c = h.client();
  mqtt::Connect connect;
  connect.version = Version::V5;
  connect.client_id = "tiny";
  connect.properties.maximum_packet_size = 2;
  c->send(connect);
  EXPECT_TRUE(c->transport().written.empty());
  EXPECT_TRUE(c->transport().closed);
  EXPECT_FALSE(h.broker.find_session("tiny"));
}

TEST(Client, QoS2InboundIsRoutedOnceAndReleasedByPubrel) {
  Harness h;
  auto sub = h.client(), pub = h.client();
  sub->connect("s");
  sub->subscribe("q2", 2);
  sub->received();
  pub->connect("p");
  pub->publish("q2", "once", 2, 11);
  pub->publish("q2", "once", 2, 11);  // a retransmission before PUBREL
  auto got = pub->received();
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(as<mqtt::PubAck>(got[0])->type, mqtt::PacketType::Pubrec);
  EXPECT_EQ(as<mqtt::PubAck>(got[1])->type, mqtt::PacketType::Pubrec);
  sub->run_loop();
  EXPECT_EQ(sub->received().size(), 1u);  // delivered once
  EXPECT_EQ(h.broker.find_session("p")->inbound_qos2, 1u);
  pub->send(mqtt::PubAck{mqtt::PacketType::Pubrel, 11, ReasonCode::Success, {}});
  got = pub->received();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(as<mqtt::PubAck>(got[0])->type, mqtt::PacketType::Pubcomp);
  EXPECT_EQ(h.broker.find_session("p")->inbound_qos2, 0u);
}

}  // namespace
}  // namespace petrel::broker
