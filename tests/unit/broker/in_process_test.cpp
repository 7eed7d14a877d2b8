// The core's seam for in-process clients (broker/in_process.hpp): a session
// held through SessionLink alone, with a policy of its own (queue bounds,
// QoS 1/2 refused when full, no ACL filter), reserved against network
// clients, and acknowledge() driving its in-flight window.
#include "broker/in_process.hpp"

#include <gtest/gtest.h>

#include "harness.hpp"

namespace petrel::broker {
namespace {

using mqtt::PacketType;
using mqtt::ReasonCode;
using test::as;
using test::Harness;

struct Link final : SessionLink, std::enable_shared_from_this<Link> {
  void wake() override { ++wakes; }
  void kick(ReasonCode r) override { kicks.push_back(r); }
  void post(std::function<void()> fn) override { fn(); }
  int wakes = 0;
  std::vector<ReasonCode> kicks;
};

struct InProcessTest : ::testing::Test {
  Harness h;
  std::shared_ptr<Link> link = std::make_shared<Link>();
  std::shared_ptr<SessionPolicy> policy = std::make_shared<SessionPolicy>();
  SessionPtr session;
  void SetUp() override {
    policy->max_queued_messages = 3;
    h.broker.add_in_process("$bridge/x", policy);
    auto id = std::make_shared<ClientIdentity>();
    id->client_id = "$bridge/x";
    session = h.broker.attach(id, false, 0xFFFFFFFF, std::nullopt, link).session;
    h.broker.subscribe(session, "s/#", mqtt::SubscribeOptions{2, true, false, 2}, 0);
  }
  Broker::Routed publish(std::uint8_t qos, const std::string& payload = "p", const std::string& origin = "pub") {
    return h.broker.route(Message::create("s/t", payload, qos, false, origin));
  }
  std::vector<Outgoing> drain(std::size_t window = 10) {
    std::vector<Outgoing> out;
    std::lock_guard lock(session->mutex);
    session->drain(DrainLimits{window, 1 << 20, 1u << 28, mqtt::Version::V5}, Clock::now(), h.broker.session_store(),
                   out);
    return out;
  }
};

TEST_F(InProcessTest, OwnBoundsEvictQos0FirstThenRefuse) {
  EXPECT_FALSE(publish(0, "a").refused);
  EXPECT_FALSE(publish(1, "b").refused);
  EXPECT_FALSE(publish(0, "c").refused);
  // Full (3, not [mqtt] max_queued_messages): QoS 1 evicts the oldest QoS 0.
  auto r = publish(1, "d");
  EXPECT_FALSE(r.refused);
  EXPECT_EQ(r.receivers, 1u);
  EXPECT_FALSE(publish(1, "e").refused);  // evicts "c"
  EXPECT_FALSE(publish(0, "f").refused);  // QoS 0 into a full queue: dropped, not refused
  r = publish(2, "g");
  EXPECT_TRUE(r.refused);
  EXPECT_EQ(r.receivers, 0u);
  EXPECT_EQ(policy->dropped.get(), 4u);
  EXPECT_EQ(policy->refused.get(), 1u);
  std::vector<std::string> left;
  for (auto& o : drain()) left.emplace_back(o.delivery.message->payload());
  EXPECT_EQ(left, (std::vector<std::string>{"b", "d", "e"}));
}

TEST_F(InProcessTest, ByteBoundEvictsQos0FirstThenRefuses) {
  policy->max_queued_messages = 100;
  policy->max_queued_bytes = 30;  // three messages of "s/t" (3 bytes) + 7 bytes of payload
  EXPECT_FALSE(publish(0, "0000000").refused);
  EXPECT_FALSE(publish(1, "1111111").refused);
  EXPECT_FALSE(publish(2, "2222222").refused);
  // Full by bytes, not by count: QoS 1 evicts the oldest QoS 0, then finds none left to evict.
  auto r = publish(1, "3333333");
  EXPECT_FALSE(r.refused);
  EXPECT_EQ(r.receivers, 1u);
  EXPECT_TRUE(publish(1, "4444444").refused);
  EXPECT_FALSE(publish(0, "5").refused);  // 31 bytes: dropped, not refused
  EXPECT_EQ(policy->dropped.get(), 3u);
  EXPECT_EQ(policy->refused.get(), 1u);
  std::vector<std::string> left;
  for (auto& o : drain()) left.emplace_back(o.delivery.message->payload());
  EXPECT_EQ(left, (std::vector<std::string>{"1111111", "2222222", "3333333"}));
}

TEST_F(InProcessTest, NoLocalKeepsItsOwnMessagesAway) {
  EXPECT_EQ(publish(1, "own", "$bridge/x").receivers, 0u);
  EXPECT_EQ(publish(1, "other", "$bridge/y").receivers, 1u);
}

TEST_F(InProcessTest, NetworkClientsCannotTakeTheClientId) {
  EXPECT_TRUE(h.broker.in_process("$bridge/x"));
  EXPECT_FALSE(h.broker.in_process("$bridge/y"));
  auto c = h.client();
  EXPECT_EQ(c->connect("$bridge/x").reason, ReasonCode::ClientIdentifierNotValid);
  EXPECT_TRUE(link->kicks.empty());
}

TEST_F(InProcessTest, AcknowledgeDrivesTheWindow) {
  publish(1, "q1");
  publish(2, "q2");
  auto out = drain();
  ASSERT_EQ(out.size(), 2u);
  const auto id1 = out[0].packet_id, id2 = out[1].packet_id;
  auto& store = h.broker.session_store();
  std::lock_guard lock(session->mutex);
  // Wrong kinds: PUBREC for QoS 1, PUBACK / PUBCOMP for QoS 2 awaiting PUBREC.
  EXPECT_EQ(acknowledge(*session, PacketType::Pubrec, id1, ReasonCode::Success, store), AckResult::WrongKind);
  EXPECT_EQ(acknowledge(*session, PacketType::Puback, id2, ReasonCode::Success, store), AckResult::WrongKind);
  EXPECT_EQ(acknowledge(*session, PacketType::Pubcomp, id2, ReasonCode::Success, store), AckResult::WrongKind);
  Delivery done;
  EXPECT_EQ(acknowledge(*session, PacketType::Puback, id1, ReasonCode::Success, store, &done), AckResult::Completed);
  EXPECT_EQ(done.message->payload(), "q1");
  EXPECT_EQ(acknowledge(*session, PacketType::Puback, id1, ReasonCode::Success, store), AckResult::UnknownId);
  EXPECT_EQ(acknowledge(*session, PacketType::Pubrec, id2, ReasonCode::Success, store), AckResult::SendPubrel);
  EXPECT_EQ(session->inflight.find(id2)->second.state, OutState::AwaitPubcomp);
  EXPECT_EQ(acknowledge(*session, PacketType::Pubrec, id2, ReasonCode::Success, store), AckResult::SendPubrel);
  EXPECT_EQ(acknowledge(*session, PacketType::Pubcomp, id2, ReasonCode::Success, store), AckResult::Completed);
  EXPECT_TRUE(session->inflight.empty());
}

TEST_F(InProcessTest, RefusingPubrecEndsTheFlow) {
  publish(2, "q2");
  auto out = drain();
  ASSERT_EQ(out.size(), 1u);
  std::lock_guard lock(session->mutex);
  EXPECT_EQ(acknowledge(*session, PacketType::Pubrec, out[0].packet_id, ReasonCode::QuotaExceeded,
                        h.broker.session_store()),
            AckResult::Completed);
  EXPECT_TRUE(session->inflight.empty());
  EXPECT_FALSE(forget_inflight(*session, out[0].packet_id, h.broker.session_store()));
}

TEST_F(InProcessTest, ClientIdsMustStartWithDollar) {
  EXPECT_THROW(h.broker.add_in_process("bridge/x", policy), std::invalid_argument);
}

TEST(ClientRefusal, V5PublisherGetsQuotaExceededAndV3IsClosed) {
  Harness h;
  auto link = std::make_shared<Link>();
  auto policy = std::make_shared<SessionPolicy>();
  policy->max_queued_messages = 1;
  h.broker.add_in_process("$bridge/x", policy);
  auto id = std::make_shared<ClientIdentity>();
  id->client_id = "$bridge/x";
  auto s = h.broker.attach(id, false, 0xFFFFFFFF, std::nullopt, link).session;
  h.broker.subscribe(s, "s/#", mqtt::SubscribeOptions{2, true, false, 2}, 0);
  auto v5 = h.client();
  v5->connect("pub5");
  v5->publish("s/1", "fills it", 1, 1);
  v5->publish("s/1", "refused", 1, 2);
  v5->publish("s/1", "refused too", 2, 3);
  auto got = v5->received();
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(as<mqtt::PubAck>(got[0])->reason, ReasonCode::Success);
  EXPECT_EQ(as<mqtt::PubAck>(got[1])->reason, ReasonCode::QuotaExceeded);
  EXPECT_EQ(as<mqtt::PubAck>(got[2])->type, PacketType::Pubrec);
  EXPECT_EQ(as<mqtt::PubAck>(got[2])->reason, ReasonCode::QuotaExceeded);
  // The refused QoS 2 id awaits no PUBREL: the same id is a new message.
  v5->send(mqtt::PubAck{PacketType::Pubrel, 3, ReasonCode::Success, {}});
  got = v5->received();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(as<mqtt::PubAck>(got[0])->reason, ReasonCode::PacketIdentifierNotFound);

  auto v3 = h.client(mqtt::Version::V311);
  v3->connect("pub3");
  v3->publish("s/1", "refused", 1, 1);
  EXPECT_TRUE(v3->received().empty());
  EXPECT_TRUE(v3->transport().closed);
}

}  // namespace
}  // namespace petrel::broker
