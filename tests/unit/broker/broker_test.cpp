// broker::Broker: sessions across connections (takeover and wills, session
// deadlines), and the operator queries and commands.
#include "broker/broker.hpp"

#include <gtest/gtest.h>

#include "harness.hpp"

namespace petrel::broker {
namespace {

using mqtt::ReasonCode;
using mqtt::Version;
using test::as;
using test::Harness;

mqtt::Will will(const std::string& topic, std::uint32_t delay = 0) {
  mqtt::Will w{topic, "gone", 0, false, {}};
  if (delay) w.properties.will_delay_interval = delay;
  return w;
}

std::vector<std::string> topics(test::TestClient& c) {
  c.run_loop();
  std::vector<std::string> out;
  for (const auto& p : c.received())
    if (auto* pub = as<mqtt::Publish>(p)) out.push_back(pub->topic);
  return out;
}

struct WillsTest : ::testing::Test {
  Harness h;
  std::unique_ptr<test::TestClient> watcher = h.client();
  void SetUp() override {
    watcher->connect("watcher");
    watcher->subscribe("wills/#", 0);
    watcher->received();
  }
};

TEST_F(WillsTest, TakeoverThatContinuesTheSessionPublishesNoWill) {
  auto first = h.client(), second = h.client();
  first->connect("c", 600, false, will("wills/c"));
  EXPECT_TRUE(second->connect("c", 600, false).session_present);
  EXPECT_EQ(first->transport().kicks, std::vector<ReasonCode>{ReasonCode::SessionTakenOver});
  EXPECT_TRUE(topics(*watcher).empty());
}

TEST_F(WillsTest, TakeoverWithCleanStartEndsTheSessionAndPublishesTheWill) {
  auto first = h.client(), second = h.client();
  first->connect("c", 600, false, will("wills/c", 30));
  EXPECT_FALSE(second->connect("c", 600, true).session_present);
  EXPECT_EQ(topics(*watcher), std::vector<std::string>{"wills/c"});
}

TEST_F(WillsTest, TakeoverOfASessionThatEndsWithItsConnectionPublishesTheWill) {
  auto first = h.client(Version::V311), second = h.client(Version::V311);
  first->connect("c", 0, true, will("wills/c"));  // 3.1.1 clean session: ends with the connection
  second->connect("c", 0, false);
  EXPECT_EQ(topics(*watcher), std::vector<std::string>{"wills/c"});
}

TEST_F(WillsTest, ReconnectingWithinTheWillDelayCancelsTheWill) {
  auto first = h.client(), second = h.client();
  first->connect("c", 600, false, will("wills/c", 30));
  first->client().on_closed("network gone");
  EXPECT_EQ(h.broker.deadline_count(), 2u);  // the will and the session expiry
  second->connect("c", 600, false);
  EXPECT_EQ(h.broker.deadline_count(), 0u);
  EXPECT_TRUE(topics(*watcher).empty());
}

TEST(Deadlines, ReconnectChurnKeepsOneDeadlineOfEachKindPerSession) {
  Harness h;
  for (int i = 0; i < 1000; ++i) {
    auto c = h.client();
    c->connect("churn", 600, false, will("wills/churn", 60));
    c->client().on_closed("gone");
    ASSERT_EQ(h.broker.deadline_count(), 2u);
  }
}

TEST(Deadlines, SettingAgainReplacesAndCancelRemoves) {
  boost::asio::io_context loop;
  int fired = 0;
  Deadlines d(loop, [&](const SessionPtr&, Deadlines::Kind, Clock::time_point) { ++fired; });
  auto s = std::make_shared<Session>("s");
  std::lock_guard lock(s->mutex);
  d.set(s, Deadlines::Kind::Expiry, Clock::now() + std::chrono::hours(1));
  d.set(s, Deadlines::Kind::Expiry, Clock::now() + std::chrono::hours(2));
  d.set(s, Deadlines::Kind::Will, Clock::now() + std::chrono::hours(1));
  EXPECT_EQ(d.size(), 2u);
  d.cancel_all(*s);
  EXPECT_EQ(d.size(), 0u);
  loop.run();  // nothing left to fire: returns once the posted re-arm ran
  EXPECT_EQ(fired, 0);
}

TEST(Deadlines, DueDeadlinesFireInOrderWithTheirTime) {
  boost::asio::io_context loop;
  std::vector<std::string> order;
  Deadlines d(loop, [&](const SessionPtr& s, Deadlines::Kind kind, Clock::time_point due) {
    std::lock_guard lock(s->mutex);
    EXPECT_EQ(kind == Deadlines::Kind::Will ? s->will_due : s->expiry_due, due);
    order.push_back(s->client_id());
  });
  auto a = std::make_shared<Session>("a"), b = std::make_shared<Session>("b");
  const auto now = Clock::now();
  {
    std::lock_guard la(a->mutex), lb(b->mutex);
    d.set(a, Deadlines::Kind::Expiry, now + std::chrono::milliseconds(2));
    d.set(b, Deadlines::Kind::Will, now);
  }
  loop.run();  // returns when both have fired and nothing is pending
  EXPECT_EQ(order, (std::vector<std::string>{"b", "a"}));
  EXPECT_EQ(d.size(), 0u);
}

TEST(Deadlines, AnExpiredSessionIsRemovedByTheHousekeepingLoop) {
  Harness h;
  auto c = h.client();
  c->connect("short", 1, false);
  c->client().on_closed("gone");
  ASSERT_TRUE(h.broker.find_session("short"));
  h.housekeeping.run();  // the expiry (1 s) fires; then nothing is left to run
  EXPECT_FALSE(h.broker.find_session("short"));
}

// ------------------------------------------------------ operator queries --

struct QueriesTest : ::testing::Test {
  Harness h;
  std::vector<std::unique_ptr<test::TestClient>> clients;
  test::TestClient& add(const std::string& id, std::uint32_t expiry = 600) {
    clients.push_back(h.client());
    clients.back()->connect(id, expiry, false);
    return *clients.back();
  }
};

TEST_F(QueriesTest, SessionsArePagedInClientIdOrder) {
  for (auto id : {"d", "b", "a", "e", "c"}) add(id);
  SessionQuery q;
  q.limit = 2;
  auto page = h.broker.list_sessions(q);
  ASSERT_EQ(page.size(), 2u);
  EXPECT_EQ(page[0].client_id, "a");
  EXPECT_EQ(page[1].client_id, "b");
  q.after = page.back().client_id;
  page = h.broker.list_sessions(q);
  ASSERT_EQ(page.size(), 2u);
  EXPECT_EQ(page[0].client_id, "c");
  q.after = "d";
  page = h.broker.list_sessions(q);
  ASSERT_EQ(page.size(), 1u);
  EXPECT_EQ(page[0].client_id, "e");
}

TEST_F(QueriesTest, SessionsAreFilteredByPrefixAndState) {
  add("sensor-1");
  add("sensor-2").client().on_closed("gone");
  add("pump-1");
  SessionQuery q;
  q.client_id_prefix = "sensor-";
  EXPECT_EQ(h.broker.list_sessions(q).size(), 2u);
  q.online = false;
  auto page = h.broker.list_sessions(q);
  ASSERT_EQ(page.size(), 1u);
  EXPECT_EQ(page[0].client_id, "sensor-2");
  EXPECT_FALSE(page[0].online);
}

TEST_F(QueriesTest, SessionFactsAndSubscriptions) {
  auto& c = add("facts");
  c.subscribe("b/#", 1, 1);
  c.subscribe("a/+", 2, 2);
  auto info = h.broker.find_session("facts");
  ASSERT_TRUE(info);
  EXPECT_EQ(info->subscriptions, 2u);
  auto subs = h.broker.session_subscriptions("facts");
  ASSERT_EQ(subs.size(), 2u);
  EXPECT_EQ(subs[0].filter, "a/+");
  EXPECT_EQ(subs[0].options.qos, 2);
  SubscriptionQuery sq;
  sq.filter_prefix = "b/";
  auto all = h.broker.list_subscriptions(sq);
  ASSERT_EQ(all.size(), 1u);
  EXPECT_EQ(all[0].client_id, "facts");
}

TEST_F(QueriesTest, DisconnectKicksTheConnectionAndKeepsThePersistentSession) {
  auto& c = add("kickme");
  EXPECT_TRUE(h.broker.disconnect_client("kickme", ReasonCode::AdministrativeAction));
  EXPECT_EQ(c.transport().kicks, std::vector<ReasonCode>{ReasonCode::AdministrativeAction});
  EXPECT_FALSE(h.broker.disconnect_client("nobody", ReasonCode::AdministrativeAction));
}

TEST_F(QueriesTest, DeleteSessionEndsItWithoutItsWill) {
  auto watcher = h.client();
  watcher->connect("watcher");
  watcher->subscribe("wills/#", 0);
  watcher->received();
  clients.push_back(h.client());
  auto& c = *clients.back();
  c.connect("doomed", 600, false, will("wills/doomed"));
  c.subscribe("x", 1);
  EXPECT_TRUE(h.broker.delete_session("doomed"));
  EXPECT_EQ(c.transport().kicks, std::vector<ReasonCode>{ReasonCode::AdministrativeAction});
  EXPECT_FALSE(h.broker.find_session("doomed"));
  EXPECT_FALSE(h.broker.delete_session("doomed"));
  // The kicked connection's own end changes nothing any more.
  c.client().on_closed("kicked");
  EXPECT_TRUE(topics(*watcher).empty());
}

TEST_F(QueriesTest, RetainedMessagesAreListedByFilterAndDeleted) {
  auto& c = add("pub");
  c.publish("r/1", "one", 0, 0, true);
  c.publish("r/2", "two", 0, 0, true);
  c.publish("other", "x", 0, 0, true);
  auto found = h.broker.retained_messages("r/#", 10);
  ASSERT_EQ(found.size(), 2u);
  EXPECT_EQ(found[0]->topic(), "r/1");
  EXPECT_EQ(h.broker.retained_messages("#", 1).size(), 1u);
  EXPECT_TRUE(h.broker.delete_retained("r/1"));
  EXPECT_FALSE(h.broker.delete_retained("r/1"));
  EXPECT_EQ(h.broker.retained_messages("r/#", 10).size(), 1u);
}

TEST_F(QueriesTest, RetainedMessagesArePagedByTopic) {
  auto& c = add("pub");
  for (const char* t : {"p/d", "p/a", "p/c", "p/b"}) c.publish(t, "x", 0, 0, true);
  auto page = h.broker.retained_messages("p/#", 2);
  ASSERT_EQ(page.size(), 2u);
  EXPECT_EQ(page[0]->topic(), "p/a");
  EXPECT_EQ(page[1]->topic(), "p/b");
  page = h.broker.retained_messages("p/#", 2, "p/b");
  ASSERT_EQ(page.size(), 2u);
  EXPECT_EQ(page[0]->topic(), "p/c");
  EXPECT_EQ(page[1]->topic(), "p/d");
  EXPECT_TRUE(h.broker.retained_messages("p/#", 2, "p/d").empty());
  EXPECT_EQ(h.broker.retained_count(), 4u);
}

TEST_F(QueriesTest, SessionTotalsCountOnlineOfflineAndQueues) {
  auto& sub = add("sub");
  sub.subscribe("t/#", 1);
  sub.received();
  add("other");
  auto& gone = add("gone");
  gone.client().on_closed("bye");  // offline, persistent (expiry 600)
  auto t = h.broker.session_totals();
  EXPECT_EQ(t.online, 2u);
  EXPECT_EQ(t.offline, 1u);
  EXPECT_EQ((t.connected[{"test", mqtt::Version::V5}]), 2u);
  // A QoS 1 message for the subscriber: queued or in flight, counted either way.
  auto& pub = add("pub");
  pub.publish("t/x", "payload", 1, 7);
  t = h.broker.session_totals();
  EXPECT_EQ(t.queued + t.inflight, 1u);
}

TEST_F(QueriesTest, CountersByQosAndDisconnects) {
  auto& sub = add("sub");
  sub.subscribe("q/#", 2);
  sub.received();
  auto& pub = add("pub");
  pub.publish("q/0", "aa", 0);
  pub.publish("q/1", "bbb", 1, 1);
  const auto& s = h.broker.stats();
  EXPECT_EQ(Stats::get(s.in.messages[0]), 1u);
  EXPECT_EQ(Stats::get(s.in.messages[1]), 1u);
  EXPECT_EQ(Stats::get(s.in.bytes[1]), 6u);  // "q/1" + "bbb"
  EXPECT_EQ(Stats::get(s.out.messages[0]), 1u);
  EXPECT_EQ(Stats::get(s.out.messages[1]), 1u);
  EXPECT_EQ(Stats::get(s.connects), 2u);
  EXPECT_TRUE(h.broker.disconnect_client("sub", mqtt::ReasonCode::AdministrativeAction));
  EXPECT_EQ(Stats::get(s.disconnects_administrative), 1u);
  pub.client().on_closed("lost");
  EXPECT_EQ(Stats::get(s.disconnects_abnormal), 1u);
}

}  // namespace
}  // namespace petrel::broker
