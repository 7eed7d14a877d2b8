// SqliteStore against a real database file: what is reported comes back
// after reopening, in order; cancelled deliveries never land; damaged or
// foreign files are refused and left alone. Restarts of the whole broker are
// covered black-box by tests/persistence.
#include "store/sqlite_store.hpp"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <condition_variable>
#include <filesystem>
#include <mutex>
#include <fstream>
#include <set>
#include <thread>

namespace petrel::store {
namespace {

namespace fs = std::filesystem;

class SqliteStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("petrel-store-test-" + std::to_string(::getpid()) + "-" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  SqliteOptions options() const {
    SqliteOptions o;
    o.path = (dir_ / "petrel.db").string();
    return o;
  }
  static broker::Delivery delivery(const std::string& topic, std::string payload, std::uint8_t qos) {
    mqtt::Properties props;
    props.content_type = "text/plain";
    props.user_properties.emplace_back("k", "v");
    broker::Delivery d;
    d.message = broker::Message::create(topic, payload, qos, false, props, "pub");
    d.qos = qos;
    d.subscription_ids = {7, 300000};
    return d;
  }
  // Waits (bounded) until the writer has committed everything this thread reported.
  static void wait_committed(const SqliteStore& s) {
    const auto ticket = s.thread_ticket();
    for (int i = 0; i < 5000 && s.committed() < ticket; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    ASSERT_GE(s.committed(), ticket);
  }
  // Rows of `table`, read with a connection of our own (the store must be closed).
  std::int64_t rows(const char* table) const {
    sqlite3* db = nullptr;
    std::int64_t n = -1;
    if (sqlite3_open((dir_ / "petrel.db").c_str(), &db) == SQLITE_OK) {
      sqlite3_stmt* s = nullptr;
      const std::string sql = std::string("SELECT count(*) FROM ") + table;
      if (sqlite3_prepare_v2(db, sql.c_str(), -1, &s, nullptr) == SQLITE_OK && sqlite3_step(s) == SQLITE_ROW)
        n = sqlite3_column_int64(s, 0);
      sqlite3_finalize(s);
    }
    sqlite3_close(db);
    return n;
  }
  fs::path dir_;
};

TEST_F(SqliteStoreTest, SessionsComeBackAfterReopening) {
  std::uint64_t queued_id = 0, sent_id = 0;
  {
    SqliteStore s(options());
    s.start();
    broker::WillMessage will;
    will.will.topic = "wills/a";
    will.will.payload = "gone";
    will.will.qos = 1;
    will.client_id = "a";
    will.delay = 30;
    const auto a = s.session_saved("a", 0, 600, mqtt::Version::V5, &will);
    EXPECT_NE(a, 0u);
    broker::SubscriptionEntry e;
    e.options.qos = 2;
    e.options.no_local = true;
    e.subscription_id = 7;
    s.subscription_added("a", "x/+/y", e);
    s.subscription_added("a", "gone/#", e);
    s.subscription_removed("a", "gone/#");
    queued_id = s.delivery_added(a, delivery("x/1/y", "first", 1));
    sent_id = s.delivery_added(a, delivery("x/2/y", "second", 2));
    s.delivery_state(sent_id, 42, broker::OutState::AwaitPubcomp);
    s.inbound_qos2_added("a", 9);
    s.inbound_qos2_added("a", 10);
    s.inbound_qos2_removed("a", 10);
    s.session_offline("a", 600, &will);
    EXPECT_NE(s.session_saved("b", 0, 60, mqtt::Version::V311, nullptr), a);
    s.session_deleted("b");
  }
  SqliteStore s(options());
  auto sessions = s.load_sessions();
  ASSERT_EQ(sessions.size(), 1u);
  const auto& a = sessions[0];
  EXPECT_EQ(a.client_id, "a");
  EXPECT_EQ(a.version, mqtt::Version::V5);
  EXPECT_EQ(a.expiry_interval, 600u);
  ASSERT_TRUE(a.disconnected_at.has_value());
  ASSERT_TRUE(a.will.has_value());
  EXPECT_EQ(a.will->will.topic, "wills/a");
  EXPECT_EQ(a.will->delay, 30u);
  ASSERT_EQ(a.subscriptions.size(), 1u);
  EXPECT_EQ(a.subscriptions[0].first, "x/+/y");
  EXPECT_TRUE(a.subscriptions[0].second.options.no_local);
  EXPECT_EQ(a.subscriptions[0].second.subscription_id, 7u);
  ASSERT_EQ(a.deliveries.size(), 2u);
  EXPECT_EQ(a.deliveries[0].id, queued_id);
  EXPECT_EQ(a.deliveries[0].packet_id, 0);
  EXPECT_EQ(a.deliveries[0].delivery.message->payload(), "first");
  EXPECT_EQ(a.deliveries[0].delivery.message->properties().content_type, "text/plain");
  EXPECT_EQ(a.deliveries[0].delivery.subscription_ids, (std::vector<std::uint32_t>{7, 300000}));
  EXPECT_EQ(a.deliveries[1].id, sent_id);
  EXPECT_EQ(a.deliveries[1].packet_id, 42);
  EXPECT_EQ(a.deliveries[1].state, broker::OutState::AwaitPubcomp);
  EXPECT_EQ(a.inbound_qos2, (std::vector<std::uint16_t>{9}));
}

TEST_F(SqliteStoreTest, CommitsAdvanceTicketsAndAckedDeliveriesAreGone) {
  {
    SqliteStore s(options());
    s.start();
    const auto a = s.session_saved("a", 0, 60, mqtt::Version::V5, nullptr);
    const auto d = delivery("t", "p", 1);
    const auto id = s.delivery_added(a, d);
    s.delivery_state(id, 1, broker::OutState::AwaitPuback);
    s.delivery_removed(id, *d.message);
    const auto ticket = s.thread_ticket();
    EXPECT_GT(ticket, 0u);
    // The writer commits without being asked; wait (bounded) for it.
    for (int i = 0; i < 5000 && s.committed() < ticket; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    EXPECT_GE(s.committed(), ticket);
  }
  SqliteStore again(options());
  auto sessions = again.load_sessions();
  ASSERT_EQ(sessions.size(), 1u);
  EXPECT_TRUE(sessions[0].deliveries.empty());
}

// Issue 16: a message queued for many sessions is one `messages` row and
// one delivery row per session, and after reopening the deliveries share one
// Message, as they did before.
TEST_F(SqliteStoreTest, AMessageForManySessionsIsStoredOnceAndSharedAfterReopening) {
  {
    SqliteStore s(options());
    s.start();
    const auto shared = delivery("fleet/cmd", "reboot", 1);
    const auto solo = delivery("x", "solo", 2);
    for (const char* id : {"a", "b", "c"}) {
      const auto key = s.session_saved(id, 0, 600, mqtt::Version::V5, nullptr);
      s.delivery_added(key, shared);
      if (std::string_view(id) == "a") s.delivery_added(key, solo);
    }
    wait_committed(s);
    EXPECT_EQ(s.stored_messages(), 2u);
  }
  EXPECT_EQ(rows("messages"), 2);
  EXPECT_EQ(rows("deliveries"), 4);
  SqliteStore s(options());
  auto sessions = s.load_sessions();
  EXPECT_EQ(s.messages_loaded(), 2u);
  EXPECT_EQ(s.stored_messages(), 2u);
  ASSERT_EQ(sessions.size(), 3u);
  std::set<const broker::Message*> fleet, all;
  for (const auto& st : sessions) {
    ASSERT_EQ(st.deliveries.size(), st.client_id == "a" ? 2u : 1u) << st.client_id;
    const auto& first = st.deliveries[0].delivery;
    EXPECT_EQ(first.message->payload(), "reboot");
    EXPECT_EQ(first.message->properties().content_type, "text/plain");
    EXPECT_EQ(first.subscription_ids, (std::vector<std::uint32_t>{7, 300000}));
    fleet.insert(first.message.get());
    for (const auto& d : st.deliveries) all.insert(d.delivery.message.get());
  }
  EXPECT_EQ(fleet.size(), 1u) << "the three deliveries of one message do not share it";
  EXPECT_EQ(all.size(), 2u);
}

// A message's row goes with its last stored delivery: acknowledged, or
// removed with its session; one added and removed within a batch never
// lands; one whose row went is written again if it is queued again.
TEST_F(SqliteStoreTest, MessagesNoSessionNeedsAreDeleted) {
  const auto m = delivery("fleet/cmd", "reboot", 1);
  std::uint64_t kept = 0;
  {
    SqliteStore s(options());
    s.start();
    const auto a = s.session_saved("a", 0, 600, mqtt::Version::V5, nullptr);
    const auto b = s.session_saved("b", 0, 600, mqtt::Version::V5, nullptr);
    const auto to_a = s.delivery_added(a, m);
    const auto to_b = s.delivery_added(b, m);
    wait_committed(s);
    EXPECT_EQ(s.stored_messages(), 1u);
    s.delivery_removed(to_a, *m.message);
    wait_committed(s);
    EXPECT_EQ(s.stored_messages(), 1u) << "b still needs it";
    s.delivery_removed(to_b, *m.message);
    wait_committed(s);
    EXPECT_EQ(s.stored_messages(), 0u);

    // Queued again (the same Message): written again.
    kept = s.delivery_added(a, m);
    wait_committed(s);
    EXPECT_EQ(s.stored_messages(), 1u);

    // Added and acknowledged within one transaction: nothing is left behind.
    const auto group = s.begin_group();
    const auto brief_delivery = delivery("t", "brief", 1);
    const auto brief = s.delivery_added(b, brief_delivery);
    s.delivery_removed(brief, *brief_delivery.message);
    s.end_group(group);
    wait_committed(s);
    EXPECT_EQ(s.stored_messages(), 1u);

    // A session that ends: its stored deliveries are removed, then it is.
    const auto c = s.session_saved("c", 0, 600, mqtt::Version::V5, nullptr);
    const auto for_c = delivery("t", "for c", 1);
    const auto to_c = s.delivery_added(c, for_c);
    wait_committed(s);
    EXPECT_EQ(s.stored_messages(), 2u);
    s.delivery_removed(to_c, *for_c.message);
    s.session_deleted("c");
    wait_committed(s);
    EXPECT_EQ(s.stored_messages(), 1u);
  }
  EXPECT_EQ(rows("messages"), 1);
  EXPECT_EQ(rows("deliveries"), 1);
  {
    // After reopening, the last delivery of a message read back takes its row along.
    SqliteStore s(options());
    auto sessions = s.load_sessions();
    EXPECT_EQ(s.stored_messages(), 1u);
    ASSERT_EQ(sessions.size(), 2u);
    // Removed with the message it was read back with.
    const broker::Message* restored = nullptr;
    for (const auto& st : sessions)
      for (const auto& sd : st.deliveries)
        if (sd.id == kept) restored = sd.delivery.message.get();
    ASSERT_NE(restored, nullptr);
    s.start();
    s.delivery_removed(kept, *restored);
    wait_committed(s);
    EXPECT_EQ(s.stored_messages(), 0u);
  }
  EXPECT_EQ(rows("messages"), 0);
  EXPECT_EQ(rows("deliveries"), 0);
}

// An acknowledgement that arrives after the writer took the delivery, but
// before it inserted it, cancels the insert: the commit that covers the
// delivery (and lets the publisher's PUBACK go) holds no row of it, and the
// removal, committed later, has nothing left to do. The removal is held in
// a group here, so that only the first commit can have dropped the row.
TEST_F(SqliteStoreTest, AnAcknowledgementAfterTheWriterTookTheDeliveryStillLeavesNoRow) {
  {
    SqliteStore s(options());
    std::mutex mutex;
    std::condition_variable cv;
    bool writing = false, go = false;
    s.set_before_inserts([&] {
      std::unique_lock lock(mutex);
      writing = true;
      cv.notify_all();
      cv.wait(lock, [&] { return go; });
    });
    s.start();
    const auto a = s.session_saved("a", 0, 600, mqtt::Version::V5, nullptr);
    wait_committed(s);
    const auto d = delivery("t", "acknowledged late", 1);
    const auto id = s.delivery_added(a, d);
    const auto added = s.thread_ticket();
    {
      std::unique_lock lock(mutex);
      ASSERT_TRUE(cv.wait_for(lock, std::chrono::seconds(5), [&] { return writing; }));
    }
    const auto group = s.begin_group();
    s.delivery_removed(id, *d.message);
    {
      std::lock_guard lock(mutex);
      go = true;
    }
    cv.notify_all();
    for (int i = 0; i < 5000 && s.committed() < added; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    ASSERT_GE(s.committed(), added);
    EXPECT_EQ(s.stored_messages(), 0u) << "the delivery was written although its acknowledgement had come";
    s.end_group(group);
    wait_committed(s);
    EXPECT_EQ(s.stored_messages(), 0u);
  }
  EXPECT_EQ(rows("deliveries"), 0);
  EXPECT_EQ(rows("messages"), 0);
  SqliteStore s(options());
  auto sessions = s.load_sessions();
  ASSERT_EQ(sessions.size(), 1u);
  EXPECT_TRUE(sessions[0].deliveries.empty());
}

// Rows nothing refers to (left by an older or interrupted petrel) are
// deleted when the sessions are read.
TEST_F(SqliteStoreTest, UnreferencedRowsAreDeletedAtStart) {
  {
    SqliteStore s(options());
    s.start();
    const auto a = s.session_saved("a", 0, 600, mqtt::Version::V5, nullptr);
    s.delivery_added(a, delivery("t", "kept", 1));
  }
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open((dir_ / "petrel.db").c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db,
                         "INSERT INTO messages (id, topic, payload, qos, retain, origin) "
                         "VALUES (90, 't', 'alone', 1, 0, 'p'), (91, 't', 'orphan', 1, 0, 'p');"
                         "INSERT INTO deliveries (id, session, message, qos, retain, packet_id, state) "
                         "VALUES (900, 77, 91, 1, 0, 0, 0)",
                         nullptr, nullptr, nullptr),
            SQLITE_OK);
  sqlite3_close(db);
  {
    SqliteStore s(options());
    auto sessions = s.load_sessions();
    ASSERT_EQ(sessions.size(), 1u);
    ASSERT_EQ(sessions[0].deliveries.size(), 1u);
    EXPECT_EQ(s.stored_messages(), 1u);
  }
  EXPECT_EQ(rows("messages"), 1);
  EXPECT_EQ(rows("deliveries"), 1);
}

TEST_F(SqliteStoreTest, RetainedMessagesSurviveButSysTopicsDoNot) {
  {
    SqliteStore s(options());
    s.start();
    s.set(broker::Message::create("a/b", "kept", 1, true, mqtt::Properties{}, "c"));
    s.set(broker::Message::create("a/c", "erased", 0, true, mqtt::Properties{}, "c"));
    s.erase("a/c");
    s.set(broker::Message::create("$SYS/broker/uptime", "1", 0, true, mqtt::Properties{}, ""));
    EXPECT_EQ(s.size(), 2u);
  }
  SqliteStore s(options());
  EXPECT_EQ(s.retained_loaded(), 1u);
  std::vector<broker::MessagePtr> found;
  s.match("#", found);
  ASSERT_EQ(found.size(), 1u);
  EXPECT_EQ(found[0]->payload(), "kept");
  EXPECT_EQ(found[0]->qos(), 1);
}

TEST_F(SqliteStoreTest, GarbageIsRefusedAndKept) {
  const auto path = dir_ / "petrel.db";
  {
    std::ofstream f(path, std::ios::binary);
    for (int i = 0; i < 4096; ++i) f.put(static_cast<char>(i * 7));
  }
  const auto size = fs::file_size(path);
  try {
    SqliteStore s(options());
    FAIL() << "a garbage file was accepted";
  } catch (const StoreError& e) {
    EXPECT_NE(std::string(e.what()).find("petrel never discards a database"), std::string::npos) << e.what();
  }
  EXPECT_EQ(fs::file_size(path), size);
}

TEST_F(SqliteStoreTest, ForeignAndNewerDatabasesAreRefused) {
  const auto path = (dir_ / "petrel.db").string();
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, "CREATE TABLE other (x)", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(db);
  try {
    SqliteStore s(options());
    FAIL() << "another program's database was accepted";
  } catch (const StoreError& e) {
    EXPECT_NE(std::string(e.what()).find("not a petrel database"), std::string::npos) << e.what();
  }
  fs::remove(path);
  { SqliteStore s(options()); }
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, "PRAGMA user_version = 99", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(db);
  try {
    SqliteStore s(options());
    FAIL() << "a newer schema was accepted";
  } catch (const StoreError& e) {
    EXPECT_NE(std::string(e.what()).find("written by a newer petrel"), std::string::npos) << e.what();
  }
}

TEST_F(SqliteStoreTest, OnePetrelPerDatabase) {
  SqliteStore first(options());
  try {
    SqliteStore second(options());
    FAIL() << "two stores opened one database";
  } catch (const StoreError& e) {
    EXPECT_NE(std::string(e.what()).find("another petrel"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace petrel::store
