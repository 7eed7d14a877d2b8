#include "store/sqlite_store.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <sqlite3.h>

#include <algorithm>
#include <filesystem>
#include <limits>
#include <unordered_set>

#include "mqtt/properties.hpp"
#include "mqtt/wire.hpp"
#include "broker/fault.hpp"
#include "store/memory_store.hpp"

namespace petrel::store {

using broker::Clock;

namespace {

// The schema version this petrel writes. Each entry of kMigrations takes a
// database from version i to i + 1; version 0 is an empty file.
constexpr int kSchemaVersion = 3;
constexpr const char* kMigrations[] = {
    // 0 -> 1
    R"sql(
CREATE TABLE retained (
  topic TEXT PRIMARY KEY, payload BLOB NOT NULL, qos INTEGER NOT NULL, props BLOB,
  origin TEXT NOT NULL, expires_at INTEGER) WITHOUT ROWID;
CREATE TABLE sessions (
  client_id TEXT PRIMARY KEY, version INTEGER NOT NULL, expiry_interval INTEGER NOT NULL,
  disconnected_at INTEGER,
  will_topic TEXT, will_payload BLOB, will_qos INTEGER, will_retain INTEGER, will_props BLOB, will_delay INTEGER
) WITHOUT ROWID;
CREATE TABLE subscriptions (
  client_id TEXT NOT NULL, filter TEXT NOT NULL, qos INTEGER NOT NULL, no_local INTEGER NOT NULL,
  retain_as_published INTEGER NOT NULL, retain_handling INTEGER NOT NULL, subscription_id INTEGER NOT NULL,
  PRIMARY KEY (client_id, filter)) WITHOUT ROWID;
CREATE TABLE deliveries (
  id INTEGER PRIMARY KEY, client_id TEXT NOT NULL,
  topic TEXT NOT NULL, payload BLOB NOT NULL, msg_qos INTEGER NOT NULL, msg_retain INTEGER NOT NULL,
  props BLOB, origin TEXT NOT NULL, expires_at INTEGER,
  qos INTEGER NOT NULL, retain INTEGER NOT NULL, subscription_ids BLOB,
  packet_id INTEGER NOT NULL DEFAULT 0, state INTEGER NOT NULL DEFAULT 0);
CREATE INDEX deliveries_by_client ON deliveries (client_id, id);
CREATE TABLE inbound_qos2 (
  client_id TEXT NOT NULL, packet_id INTEGER NOT NULL, PRIMARY KEY (client_id, packet_id)) WITHOUT ROWID;
)sql",
    // 1 -> 2: who a session belongs to (user name, NULL if anonymous, and the
    // listener it came in on), so access control checks deliveries to a
    // session restored after a restart as its client.
    R"sql(
ALTER TABLE sessions ADD COLUMN username TEXT;
ALTER TABLE sessions ADD COLUMN listener TEXT;
)sql",
    // 2 -> 3: each message stored once (issue 16). Sessions get a number
    // (their key); messages move to a table of their own, identical copies
    // (the rows of one fan-out) becoming one; a delivery is a short row that
    // names its session and message by number. Deliveries stay in id order
    // (the queue order), appended at the end of the table, with no index:
    // nothing looks them up but by id.
    R"sql(
ALTER TABLE sessions ADD COLUMN id INTEGER NOT NULL DEFAULT 0;
UPDATE sessions SET id = numbered.n
  FROM (SELECT client_id, row_number() OVER (ORDER BY client_id) AS n FROM sessions) AS numbered
  WHERE sessions.client_id = numbered.client_id;
CREATE TABLE messages (
  id INTEGER PRIMARY KEY, topic TEXT NOT NULL, payload BLOB NOT NULL, qos INTEGER NOT NULL,
  retain INTEGER NOT NULL, props BLOB, origin TEXT NOT NULL, expires_at INTEGER);
INSERT INTO messages (topic, payload, qos, retain, props, origin, expires_at)
  SELECT topic, payload, msg_qos, msg_retain, props, origin, expires_at FROM deliveries
  GROUP BY topic, payload, msg_qos, msg_retain, props, origin, expires_at ORDER BY min(id);
CREATE INDEX migration_messages ON messages (topic, payload, qos, retain, props, origin, expires_at);
CREATE TABLE deliveries_3 (
  id INTEGER PRIMARY KEY, session INTEGER NOT NULL, message INTEGER NOT NULL, qos INTEGER NOT NULL,
  retain INTEGER NOT NULL, packet_id INTEGER NOT NULL, state INTEGER NOT NULL, subscription_ids BLOB);
INSERT INTO deliveries_3 (id, session, message, qos, retain, packet_id, state, subscription_ids)
  SELECT d.id, s.id, m.id, d.qos, d.retain, d.packet_id, d.state,
         CASE WHEN length(d.subscription_ids) > 0 THEN d.subscription_ids END
  FROM deliveries AS d
  JOIN sessions AS s ON s.client_id = d.client_id
  JOIN messages AS m ON m.topic = d.topic AND m.payload = d.payload AND m.qos = d.msg_qos
    AND m.retain = d.msg_retain AND m.props IS d.props AND m.origin = d.origin AND m.expires_at IS d.expires_at
  ORDER BY d.id;
DROP INDEX migration_messages;
DROP TABLE deliveries;
ALTER TABLE deliveries_3 RENAME TO deliveries;
DELETE FROM messages WHERE id NOT IN (SELECT message FROM deliveries);
)sql",
};
static_assert(std::size(kMigrations) == kSchemaVersion);

// 'PTRL': marks the file as petrel's.
constexpr int kApplicationId = 0x5054524C;

thread_local std::uint64_t tl_ticket = 0;

std::int64_t unix_ms_now() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Message expiry is a steady_clock time in memory and Unix ms on disk, so
// that it keeps counting while the broker is down.
std::int64_t to_unix_ms(Clock::time_point t) {
  return unix_ms_now() + std::chrono::duration_cast<std::chrono::milliseconds>(t - Clock::now()).count();
}
Clock::time_point from_unix_ms(std::int64_t ms) { return Clock::now() + std::chrono::milliseconds(ms - unix_ms_now()); }

std::string encode_props(const mqtt::Properties& p) {
  std::string out;
  mqtt::Writer w(out);
  mqtt::encode_properties(w, p);
  return out;
}

mqtt::Properties decode_props(const void* data, int size, mqtt::PropertyContext ctx) {
  if (!data || size <= 0) return {};
  mqtt::Reader r(std::string_view(static_cast<const char*>(data), static_cast<std::size_t>(size)));
  return mqtt::decode_properties(r, ctx);
}

std::string encode_ids(const std::vector<std::uint32_t>& ids) {
  std::string out;
  mqtt::Writer w(out);
  for (auto id : ids) w.u32(id);
  return out;
}

std::vector<std::uint32_t> decode_ids(const void* data, int size) {
  std::vector<std::uint32_t> ids;
  const auto* p = static_cast<const unsigned char*>(data);
  for (int i = 0; p && i + 4 <= size; i += 4)
    ids.push_back(std::uint32_t{p[i]} << 24 | std::uint32_t{p[i + 1]} << 16 | std::uint32_t{p[i + 2]} << 8 | p[i + 3]);
  return ids;
}

std::string column_text(sqlite3_stmt* s, int i) {
  const auto* t = sqlite3_column_text(s, i);
  return t ? std::string(reinterpret_cast<const char*>(t), static_cast<std::size_t>(sqlite3_column_bytes(s, i)))
           : std::string();
}
std::string column_blob(sqlite3_stmt* s, int i) {
  const auto* b = sqlite3_column_blob(s, i);
  return b ? std::string(static_cast<const char*>(b), static_cast<std::size_t>(sqlite3_column_bytes(s, i)))
           : std::string();
}

}  // namespace

namespace {
// INSERT of `n` stored deliveries.
std::string delivery_insert(std::size_t n) {
  std::string sql =
      "INSERT INTO deliveries (id, session, message, qos, retain, packet_id, state, subscription_ids) VALUES ";
  for (std::size_t i = 0; i < n; ++i) sql += i ? ",(?,?,?,?,?,?,?,?)" : "(?,?,?,?,?,?,?,?)";
  return sql;
}
}  // namespace

// The write statements, prepared once (finalized with statements_).
struct SqliteStore::Statements {
  sqlite3_stmt *retain_set, *retain_erase, *session_save, *session_offline, *will_clear, *session_delete[3], *sub_add,
      *sub_remove, *message_add, *message_erase, *delivery_add, *delivery_add_many, *delivery_state, *delivery_remove,
      *qos2_add, *qos2_remove, *session_key, *begin, *commit, *rollback;
};

// What most changes do not need: kept out of Op, so that the journal entry
// of a stored delivery (the bulk of a fan-out) is 40 bytes.
struct SqliteStore::Detail {
  std::string key{};     // client id, or topic (retained)
  std::string filter{};  // subscriptions
  mqtt::Version version = mqtt::Version::V311;
  std::int64_t time = 0;
  mqtt::SubscribeOptions options{};
  std::vector<std::uint32_t> subscription_ids{};  // DeliveryAdd, when there are any
  std::optional<broker::WillMessage> will{};
  std::optional<std::string> username{};  // SessionSave
  std::string listener{};                 // SessionSave
};

// One change, as queued for the writer.
struct SqliteStore::Op {
  enum class Kind : std::uint8_t {
    RetainSet,
    RetainErase,
    SessionSave,
    SessionOffline,
    SessionKey,
    WillClear,
    SessionDelete,
    SubAdd,
    SubRemove,
    DeliveryAdd,
    DeliveryState,
    DeliveryRemove,
    Qos2Add,
    Qos2Remove,
  };
  Kind kind;
  std::uint8_t qos = 0;
  std::uint8_t state = 0;     // DeliveryState; DeliveryAdd: kCancelledLater once cancelled
  bool retain = false;
  std::uint32_t number = 0;   // expiry interval, subscription id, packet id
  std::uint64_t id = 0;       // delivery id
  std::uint64_t session = 0;  // session key
  MessagePtr message{};       // DeliveryAdd, DeliveryRemove, RetainSet
  std::unique_ptr<Detail> detail{};

  Detail& more() {
    if (!detail) detail = std::make_unique<Detail>();
    return *detail;
  }
};

// What a batch changes in the writer's table of messages, merged into it
// once the batch is committed (a failed batch is retried from scratch).
struct SqliteStore::Overlay {
  std::unordered_map<std::uint64_t, MessagePtr> created;            // written by this batch
  std::unordered_map<const broker::Message*, std::uint64_t> created_ids;
  std::unordered_map<std::uint64_t, std::int64_t> deliveries;       // change of each one's count
  std::unordered_set<std::uint64_t> erased;                         // deleted by this batch
  // The last message looked up: a fan-out adds its deliveries one after
  // the other.
  const broker::Message* last = nullptr;
  std::uint64_t last_id = 0;
  std::int64_t* last_count = nullptr;
};

// ------------------------------------------------------------ start-up --

SqliteStore::SqliteStore(SqliteOptions options) : options_(std::move(options)), memory_(make_memory_retained_store()) {
  open_and_check();
  load_retained();
  auto next = [&](const char* sql) {
    sqlite3_stmt* s = prepare(sql);
    std::uint64_t n = 1;
    if (sqlite3_step(s) == SQLITE_ROW) n = static_cast<std::uint64_t>(sqlite3_column_int64(s, 0)) + 1;
    sqlite3_reset(s);
    return n;
  };
  next_delivery_id_ = next("SELECT coalesce(max(id), 0) FROM deliveries");
  next_message_id_ = next("SELECT coalesce(max(id), 0) FROM messages");
  next_session_key_ = next("SELECT coalesce(max(id), 0) FROM sessions");
}

SqliteStore::~SqliteStore() {
  stop();
  for (auto* s : statements_) sqlite3_finalize(s);
  sqlite3_close(db_);
}

void SqliteStore::exec(const char* sql) {
  char* error = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &error) != SQLITE_OK) {
    std::string why = error ? error : sqlite3_errmsg(db_);
    sqlite3_free(error);
    throw StoreError(why);
  }
}

sqlite3_stmt* SqliteStore::prepare(const char* sql) {
  sqlite3_stmt* s = nullptr;
  if (sqlite3_prepare_v3(db_, sql, -1, SQLITE_PREPARE_PERSISTENT, &s, nullptr) != SQLITE_OK)
    throw StoreError(fmt::format("cannot prepare '{}': {}", sql, sqlite3_errmsg(db_)));
  statements_.push_back(s);
  return s;
}

void SqliteStore::open_and_check() {
  // One connection, used by one thread at a time (start-up, then the
  // writer): SQLite's own mutexes and memory statistics are pure cost.
  static std::once_flag configured;
  std::call_once(configured, [] {
    sqlite3_config(SQLITE_CONFIG_MULTITHREAD);
    sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
  });
  const std::string& path = options_.path;
  auto fail = [&](const std::string& why) -> StoreError {
    return StoreError(fmt::format(
        "store '{}': {}{} petrel never discards a database on its own: move the file (and its -wal file) away to "
        "start with an empty store and keep it for inspection, restore a backup, or set [store] path to another "
        "file (docs/persistence.md#when-the-database-cannot-be-opened)",
        path, why, why.ends_with('?') ? "" : "."));
  };
  if (sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                      nullptr) != SQLITE_OK) {
    const std::string why = db_ ? sqlite3_errmsg(db_) : "out of memory";
    throw fail(fmt::format("cannot open: {}", why));
  }
  sqlite3_extended_result_codes(db_, 1);
  try {
    // One petrel per database: take the exclusive lock now and hold it as
    // long as the broker runs.
    exec("PRAGMA locking_mode = EXCLUSIVE");
    sqlite3_busy_timeout(db_, 0);
    if (sqlite3_exec(db_, "BEGIN EXCLUSIVE; COMMIT", nullptr, nullptr, nullptr) != SQLITE_OK) {
      const int code = sqlite3_errcode(db_) & 0xFF;
      if (code == SQLITE_BUSY || code == SQLITE_LOCKED)
        throw StoreError("the database is locked: is another petrel using it?");
      if (code == SQLITE_NOTADB || code == SQLITE_CORRUPT)
        throw StoreError(fmt::format("the database is corrupt or not a database ({})", sqlite3_errmsg(db_)));
      throw StoreError(sqlite3_errmsg(db_));
    }
    int version = 0, app = 0;
    {
      sqlite3_stmt* s = nullptr;
      if (sqlite3_prepare_v2(db_, "PRAGMA user_version", -1, &s, nullptr) != SQLITE_OK || sqlite3_step(s) != SQLITE_ROW) {
        const std::string why = sqlite3_errmsg(db_);
        sqlite3_finalize(s);
        if (sqlite3_errcode(db_) == SQLITE_BUSY)
          throw StoreError("the database is locked: is another petrel using it?");
        throw StoreError(why);
      }
      version = sqlite3_column_int(s, 0);
      sqlite3_finalize(s);
      if (sqlite3_prepare_v2(db_, "PRAGMA application_id", -1, &s, nullptr) == SQLITE_OK && sqlite3_step(s) == SQLITE_ROW)
        app = sqlite3_column_int(s, 0);
      sqlite3_finalize(s);
    }
    if (version == 0 && app == 0) {
      // A new database must be empty: tables without petrel's marks belong
      // to another program.
      sqlite3_stmt* s = nullptr;
      int tables = 0;
      if (sqlite3_prepare_v2(db_, "SELECT count(*) FROM sqlite_master", -1, &s, nullptr) == SQLITE_OK &&
          sqlite3_step(s) == SQLITE_ROW)
        tables = sqlite3_column_int(s, 0);
      sqlite3_finalize(s);
      if (tables) throw StoreError("not a petrel database (another program's SQLite file)");
    } else {
      if (app != kApplicationId) throw StoreError("not a petrel database (another program's SQLite file)");
      if (version > kSchemaVersion)
        throw StoreError(fmt::format("written by a newer petrel (schema version {}; this petrel reads up to {})",
                                     version, kSchemaVersion));
      // Cheap structural check of every page; catches torn or overwritten files.
      sqlite3_stmt* s = nullptr;
      std::string verdict;
      if (sqlite3_prepare_v2(db_, "PRAGMA quick_check(1)", -1, &s, nullptr) == SQLITE_OK && sqlite3_step(s) == SQLITE_ROW)
        verdict = column_text(s, 0);
      else
        verdict = sqlite3_errmsg(db_);
      sqlite3_finalize(s);
      if (verdict != "ok") throw StoreError(fmt::format("the database is corrupt ({})", verdict));
    }
    exec("PRAGMA journal_mode = WAL");
    exec(options_.sync ? "PRAGMA synchronous = FULL" : "PRAGMA synchronous = NORMAL");
    if (version < kSchemaVersion) {
      // A database written by an older petrel is copied aside before it is
      // changed: a migration that goes wrong (or a downgrade) has the file
      // as it was to go back to.
      std::string backup;
      if (version) backup = backup_before_migration(version);
      exec("BEGIN IMMEDIATE");
      try {
        if (version == 0) exec(fmt::format("PRAGMA application_id = {}", kApplicationId).c_str());
        for (int v = version; v < kSchemaVersion; ++v) exec(kMigrations[v]);
        exec(fmt::format("PRAGMA user_version = {}", kSchemaVersion).c_str());
        exec("COMMIT");
      } catch (const StoreError& e) {
        sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
        throw StoreError(fmt::format("migrating the schema from version {} to {} failed ({}); the database is "
                                     "unchanged{}",
                                     version, kSchemaVersion, e.what(),
                                     backup.empty() ? "" : fmt::format(" and copied to '{}'", backup)));
      }
      if (version)
        spdlog::info("store '{}': schema migrated from version {} to {} (the version {} database is kept as '{}')",
                     path, version, kSchemaVersion, version, backup);
    }
    // The writer checkpoints the WAL itself (checkpoint()): a wal hook of
    // our own replaces SQLite's automatic checkpoint inside COMMIT.
    sqlite3_wal_hook(
        db_,
        [](void* self, sqlite3*, const char*, int pages) {
          static_cast<SqliteStore*>(self)->wal_pages_ = pages;
          return SQLITE_OK;
        },
        this);
  } catch (const StoreError& e) {
    sqlite3_close(db_);
    db_ = nullptr;
    throw fail(e.what());
  }
}

std::string SqliteStore::backup_before_migration(int version) {
  // <path>.v<N>.bak, or .v<N>.1.bak, ... if that exists: never overwritten.
  std::string target;
  for (int i = 0;; ++i) {
    target = i ? fmt::format("{}.v{}.{}.bak", options_.path, version, i) : fmt::format("{}.v{}.bak", options_.path, version);
    std::error_code ec;
    if (!std::filesystem::exists(target, ec) && !ec) break;
    if (i > 1000) throw StoreError(fmt::format("cannot find a free name for the backup of version {}", version));
  }
  sqlite3* copy = nullptr;
  auto fail = [&](const std::string& why) {
    sqlite3_close(copy);
    std::error_code ec;
    std::filesystem::remove(target, ec);
    return StoreError(fmt::format("cannot back the version {} database up to '{}' before migrating it: {}", version,
                                  target, why));
  };
  if (sqlite3_open_v2(target.c_str(), &copy, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr) != SQLITE_OK)
    throw fail(copy ? sqlite3_errmsg(copy) : "out of memory");
  sqlite3_backup* b = sqlite3_backup_init(copy, "main", db_, "main");
  if (!b) throw fail(sqlite3_errmsg(copy));
  const int rc = sqlite3_backup_step(b, -1);
  sqlite3_backup_finish(b);
  if (rc != SQLITE_DONE) throw fail(sqlite3_errstr(rc));
  // A file that stands on its own (no -wal beside it), fsync'ed.
  if (sqlite3_exec(copy, "PRAGMA journal_mode = DELETE", nullptr, nullptr, nullptr) != SQLITE_OK)
    throw fail(sqlite3_errmsg(copy));
  sqlite3_close(copy);
  return target;
}

void SqliteStore::load_retained() {
  sqlite3_stmt* s = prepare("SELECT topic, payload, qos, props, origin, expires_at FROM retained");
  const auto now = Clock::now();
  std::vector<std::string> expired;
  int rc;
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
    std::optional<Clock::time_point> expires;
    if (sqlite3_column_type(s, 5) != SQLITE_NULL) expires = from_unix_ms(sqlite3_column_int64(s, 5));
    auto m = broker::Message::restore(
        column_text(s, 0), column_blob(s, 1), static_cast<std::uint8_t>(sqlite3_column_int(s, 2)), true,
        decode_props(sqlite3_column_blob(s, 3), sqlite3_column_bytes(s, 3), mqtt::PropertyContext::Publish),
        column_text(s, 4), expires);
    if (m->expired(now)) {
      expired.emplace_back(m->topic());
      continue;
    }
    memory_->set(m);
    ++retained_loaded_;
  }
  sqlite3_reset(s);
  if (rc != SQLITE_DONE) throw StoreError(fmt::format("store '{}': reading retained messages: {}", options_.path, sqlite3_errmsg(db_)));
  retained_expired_ = expired.size();
  for (auto& topic : expired) {
    Op op{.kind = Op::Kind::RetainErase};
    op.more().key = std::move(topic);
    push(std::move(op));
  }
}

std::vector<StoredSession> SqliteStore::load_sessions() {
  std::vector<StoredSession> out;
  auto check = [&](int rc, const char* what) {
    if (rc != SQLITE_DONE)
      throw StoreError(fmt::format("store '{}': reading {}: {}", options_.path, what, sqlite3_errmsg(db_)));
  };
  int rc;
  std::vector<std::pair<std::string, std::uint64_t>> new_keys;  // sessions without a key (cannot happen after 2 -> 3)
  sqlite3_stmt* s = prepare(
      "SELECT client_id, id, version, expiry_interval, disconnected_at, will_topic, will_payload, will_qos, "
      "will_retain, will_props, will_delay, username, listener FROM sessions");
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
    StoredSession st;
    st.client_id = column_text(s, 0);
    st.key = static_cast<std::uint64_t>(sqlite3_column_int64(s, 1));
    if (st.key == 0) {
      st.key = next_session_key_++;
      new_keys.emplace_back(st.client_id, st.key);
    }
    st.version = static_cast<mqtt::Version>(sqlite3_column_int(s, 2));
    st.expiry_interval = static_cast<std::uint32_t>(sqlite3_column_int64(s, 3));
    if (sqlite3_column_type(s, 4) != SQLITE_NULL) st.disconnected_at = sqlite3_column_int64(s, 4);
    if (sqlite3_column_type(s, 5) != SQLITE_NULL) {
      broker::WillMessage w;
      w.client_id = st.client_id;
      w.will.topic = column_text(s, 5);
      w.will.payload = column_blob(s, 6);
      w.will.qos = static_cast<std::uint8_t>(sqlite3_column_int(s, 7));
      w.will.retain = sqlite3_column_int(s, 8) != 0;
      w.will.properties =
          decode_props(sqlite3_column_blob(s, 9), sqlite3_column_bytes(s, 9), mqtt::PropertyContext::Will);
      w.delay = static_cast<std::uint32_t>(sqlite3_column_int64(s, 10));
      st.will = std::move(w);
    }
    if (sqlite3_column_type(s, 11) != SQLITE_NULL) st.username = column_text(s, 11);
    if (sqlite3_column_type(s, 12) != SQLITE_NULL) st.listener = column_text(s, 12);
    out.push_back(std::move(st));
  }
  sqlite3_reset(s);
  check(rc, "sessions");
  for (auto& [client_id, key] : new_keys) {
    Op op{.kind = Op::Kind::SessionKey, .session = key};
    op.more().key = client_id;
    push(std::move(op));
  }
  // Indexes into `out`, which no longer moves.
  std::unordered_map<std::string_view, std::size_t> by_client_id;
  std::unordered_map<std::uint64_t, std::size_t> by_key;
  by_client_id.reserve(out.size());
  by_key.reserve(out.size());
  for (std::size_t i = 0; i < out.size(); ++i) {
    by_client_id.emplace(out[i].client_id, i);
    by_key.emplace(out[i].key, i);
  }

  s = prepare(
      "SELECT client_id, filter, qos, no_local, retain_as_published, retain_handling, subscription_id FROM "
      "subscriptions");
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
    auto it = by_client_id.find(column_text(s, 0));
    if (it == by_client_id.end()) continue;
    broker::SubscriptionEntry e;
    e.options.qos = static_cast<std::uint8_t>(sqlite3_column_int(s, 2));
    e.options.no_local = sqlite3_column_int(s, 3) != 0;
    e.options.retain_as_published = sqlite3_column_int(s, 4) != 0;
    e.options.retain_handling = static_cast<std::uint8_t>(sqlite3_column_int(s, 5));
    e.subscription_id = static_cast<std::uint32_t>(sqlite3_column_int64(s, 6));
    out[it->second].subscriptions.emplace_back(column_text(s, 1), e);
  }
  sqlite3_reset(s);
  check(rc, "subscriptions");

  // Each stored message once: its deliveries share it.
  s = prepare("SELECT id, topic, payload, qos, retain, props, origin, expires_at FROM messages");
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
    std::optional<Clock::time_point> expires;
    if (sqlite3_column_type(s, 7) != SQLITE_NULL) expires = from_unix_ms(sqlite3_column_int64(s, 7));
    const auto id = static_cast<std::uint64_t>(sqlite3_column_int64(s, 0));
    auto m = broker::Message::restore(
        column_text(s, 1), column_blob(s, 2), static_cast<std::uint8_t>(sqlite3_column_int(s, 3)),
        sqlite3_column_int(s, 4) != 0,
        decode_props(sqlite3_column_blob(s, 5), sqlite3_column_bytes(s, 5), mqtt::PropertyContext::Publish),
        column_text(s, 6), expires);
    message_ids_.emplace(m.get(), id);
    messages_.emplace(id, Written{std::move(m), 0});
  }
  sqlite3_reset(s);
  check(rc, "messages");

  std::vector<std::uint64_t> orphans;  // deliveries of no session, or of no message
  s = prepare(
      "SELECT id, session, message, qos, retain, packet_id, state, subscription_ids FROM deliveries ORDER BY id");
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
    const auto id = static_cast<std::uint64_t>(sqlite3_column_int64(s, 0));
    auto session = by_key.find(static_cast<std::uint64_t>(sqlite3_column_int64(s, 1)));
    auto message = messages_.find(static_cast<std::uint64_t>(sqlite3_column_int64(s, 2)));
    if (session == by_key.end() || message == messages_.end()) {
      orphans.push_back(id);
      continue;
    }
    ++message->second.deliveries;
    broker::StoredDelivery d;
    d.id = id;
    d.delivery.message = message->second.message;
    d.delivery.qos = static_cast<std::uint8_t>(sqlite3_column_int(s, 3));
    d.delivery.retain = sqlite3_column_int(s, 4) != 0;
    d.delivery.subscription_ids = decode_ids(sqlite3_column_blob(s, 7), sqlite3_column_bytes(s, 7));
    d.packet_id = static_cast<std::uint16_t>(sqlite3_column_int(s, 5));
    d.state = static_cast<broker::OutState>(sqlite3_column_int(s, 6));
    out[session->second].deliveries.push_back(std::move(d));
  }
  sqlite3_reset(s);
  check(rc, "queued messages");

  s = prepare("SELECT client_id, packet_id FROM inbound_qos2");
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
    auto it = by_client_id.find(column_text(s, 0));
    if (it == by_client_id.end()) continue;
    out[it->second].inbound_qos2.push_back(static_cast<std::uint16_t>(sqlite3_column_int(s, 1)));
  }
  sqlite3_reset(s);
  check(rc, "QoS 2 packet ids");

  // What nothing refers to is deleted now (a database of an older petrel or
  // an interrupted one may hold some): orphaned deliveries, then messages
  // without deliveries.
  std::vector<std::uint64_t> unused;
  for (const auto& [id, w] : messages_)
    if (w.deliveries == 0) unused.push_back(id);
  if (!orphans.empty() || !unused.empty()) {
    exec("BEGIN");
    try {
      sqlite3_stmt* d = prepare("DELETE FROM deliveries WHERE id = ?");
      for (auto id : orphans) {
        sqlite3_bind_int64(d, 1, static_cast<sqlite3_int64>(id));
        rc = sqlite3_step(d);
        sqlite3_reset(d);
        if (rc != SQLITE_DONE) throw StoreError(sqlite3_errmsg(db_));
      }
      d = prepare("DELETE FROM messages WHERE id = ?");
      for (auto id : unused) {
        sqlite3_bind_int64(d, 1, static_cast<sqlite3_int64>(id));
        rc = sqlite3_step(d);
        sqlite3_reset(d);
        if (rc != SQLITE_DONE) throw StoreError(sqlite3_errmsg(db_));
      }
      exec("COMMIT");
    } catch (const StoreError& e) {
      sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
      throw StoreError(fmt::format("store '{}': deleting unreferenced rows: {}", options_.path, e.what()));
    }
    if (!orphans.empty())
      spdlog::warn("store '{}': deleted {} stored deliveries of sessions or messages that do not exist", options_.path,
                   orphans.size());
  }
  for (auto id : unused) {
    auto it = messages_.find(id);
    message_ids_.erase(it->second.message.get());
    messages_.erase(it);
  }
  messages_loaded_ = messages_.size();
  stored_messages_.store(messages_.size(), std::memory_order_relaxed);
  return out;
}

// ----------------------------------------------------------- reporting --

std::uint64_t SqliteStore::thread_ticket() const { return tl_ticket; }

void SqliteStore::push(Op op) {
  bool notify = false;
  {
    std::lock_guard lock(mutex_);
    pending_.push_back(std::move(op));
    tl_ticket = ++enqueued_;
    notify = must_wake_writer();
  }
  if (notify) wake_writer_.notify_one();
}

bool SqliteStore::must_wake_writer() {
  // Not while a group holds back everything pending (a fan-out in
  // progress): the writer could take nothing, and waking it for each of the
  // group's changes would cost a context switch per stored delivery;
  // end_group() wakes it.
  if (!writer_waiting_ || !options_.sync) return false;
  if (!open_groups_.empty() && *open_groups_.begin() <= enqueued_ - pending_.size() + 1) return false;
  writer_waiting_ = false;
  return true;
}

std::uint64_t SqliteStore::backlog() {
  std::lock_guard lock(mutex_);
  return enqueued_ - committed_.load(std::memory_order_acquire);
}

std::uint64_t SqliteStore::begin_group() {
  std::lock_guard lock(mutex_);
  const std::uint64_t first = enqueued_ + 1;
  open_groups_.insert(first);
  return first;
}

void SqliteStore::end_group(std::uint64_t group) {
  bool notify = false;
  {
    std::lock_guard lock(mutex_);
    if (auto it = open_groups_.find(group); it != open_groups_.end()) open_groups_.erase(it);
    notify = writer_waiting_ && options_.sync && !pending_.empty();
    if (notify) writer_waiting_ = false;
  }
  if (notify) wake_writer_.notify_one();
}

void SqliteStore::set(const MessagePtr& m) {
  std::lock_guard lock(retained_mutex_);
  memory_->set(m);
  // $SYS topics are the broker's own and rebuilt at every start.
  if (m->topic().starts_with("$SYS/")) return;
  push(Op{.kind = Op::Kind::RetainSet, .message = m});
}

bool SqliteStore::erase(std::string_view topic) {
  std::lock_guard lock(retained_mutex_);
  const bool had = memory_->erase(topic);
  if (had) {
    Op op{.kind = Op::Kind::RetainErase};
    op.more().key = std::string(topic);
    push(std::move(op));
  }
  return had;
}

std::uint64_t SqliteStore::session_saved(const std::string& client_id, std::uint64_t key,
                                         std::uint32_t expiry_interval, mqtt::Version version,
                                         const broker::WillMessage* will, const std::optional<std::string>& username,
                                         const std::string& listener) {
  if (key == 0) key = next_session_key_.fetch_add(1, std::memory_order_relaxed);
  Op op{.kind = Op::Kind::SessionSave, .number = expiry_interval, .session = key};
  auto& d = op.more();
  d.key = client_id;
  d.version = version;
  if (will) d.will = *will;
  d.username = username;
  d.listener = listener;
  push(std::move(op));
  return key;
}

void SqliteStore::session_offline(const std::string& client_id, std::uint32_t expiry_interval,
                                  const broker::WillMessage* will) {
  Op op{.kind = Op::Kind::SessionOffline, .number = expiry_interval};
  auto& d = op.more();
  d.key = client_id;
  d.time = unix_ms_now();
  if (will) d.will = *will;
  push(std::move(op));
}

void SqliteStore::will_cleared(const std::string& client_id) {
  Op op{.kind = Op::Kind::WillClear};
  op.more().key = client_id;
  push(std::move(op));
}

void SqliteStore::session_deleted(const std::string& client_id) {
  Op op{.kind = Op::Kind::SessionDelete};
  op.more().key = client_id;
  push(std::move(op));
}

void SqliteStore::subscription_added(const std::string& client_id, const std::string& filter,
                                     const broker::SubscriptionEntry& entry) {
  Op op{.kind = Op::Kind::SubAdd, .number = entry.subscription_id};
  auto& d = op.more();
  d.key = client_id;
  d.filter = filter;
  d.options = entry.options;
  push(std::move(op));
}

void SqliteStore::subscription_removed(const std::string& client_id, const std::string& filter) {
  Op op{.kind = Op::Kind::SubRemove};
  auto& d = op.more();
  d.key = client_id;
  d.filter = filter;
  push(std::move(op));
}

std::uint64_t SqliteStore::delivery_added(std::uint64_t session_key, const broker::Delivery& d) {
  if (session_key == 0) return 0;
  Op op{.kind = Op::Kind::DeliveryAdd, .qos = d.qos, .retain = d.retain, .session = session_key, .message = d.message};
  if (!d.subscription_ids.empty()) op.more().subscription_ids = d.subscription_ids;
  // The id is given in the journal's order (apply() relies on it).
  bool notify = false;
  std::uint64_t id;
  {
    std::lock_guard lock(mutex_);
    id = op.id = next_delivery_id_++;
    pending_.push_back(std::move(op));
    tl_ticket = ++enqueued_;
    notify = must_wake_writer();
  }
  if (notify) wake_writer_.notify_one();
  return id;
}

void SqliteStore::delivery_state(std::uint64_t id, std::uint16_t packet_id, broker::OutState state) {
  // A QoS 1 message may be resent with another packet id after a restart
  // (it may arrive twice anyway): only QoS 2 ids must survive.
  if (state == broker::OutState::AwaitPuback) return;
  push(Op{.kind = Op::Kind::DeliveryState, .state = static_cast<std::uint8_t>(state), .number = packet_id, .id = id});
}

void SqliteStore::delivery_removed(std::uint64_t id, const broker::Message& message) {
  push(Op{.kind = Op::Kind::DeliveryRemove, .id = id, .message = MessagePtr(&message)});
}

void SqliteStore::inbound_qos2_added(const std::string& client_id, std::uint16_t packet_id) {
  Op op{.kind = Op::Kind::Qos2Add, .number = packet_id};
  op.more().key = client_id;
  push(std::move(op));
}

void SqliteStore::inbound_qos2_removed(const std::string& client_id, std::uint16_t packet_id) {
  Op op{.kind = Op::Kind::Qos2Remove, .number = packet_id};
  op.more().key = client_id;
  push(std::move(op));
}

// -------------------------------------------------------------- writer --

void SqliteStore::start() {
  if (!writer_.joinable()) writer_ = std::thread([this] { run(); });
}

void SqliteStore::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_writer_.notify_one();
  if (writer_.joinable()) {
    writer_.join();
  } else if (db_) {
    // Never started (start-up failed later): still commit what was queued.
    std::vector<Op> batch;
    batch.swap(pending_);
    if (!batch.empty()) {
      try {
        apply(batch);
      } catch (const std::exception& e) {
        spdlog::error("store '{}': final commit failed: {}", options_.path, e.what());
      }
    }
  }
}

void SqliteStore::record_commit(std::chrono::steady_clock::duration took) {
  const double seconds = std::chrono::duration<double>(took).count();
  std::size_t i = 0;
  while (i < kCommitBounds.size() && seconds > kCommitBounds[i]) ++i;
  commit_buckets_[i].fetch_add(1, std::memory_order_relaxed);
  commit_nanos_.fetch_add(static_cast<std::uint64_t>(std::chrono::nanoseconds(took).count()),
                          std::memory_order_relaxed);
  failing_.store(false, std::memory_order_relaxed);
}

void SqliteStore::record_failure(const std::string& what) {
  std::lock_guard lock(health_mutex_);
  last_failure_ = Health{true, what, std::chrono::system_clock::now()};
  failing_.store(true, std::memory_order_relaxed);
}

SqliteStore::CommitLatency SqliteStore::commit_latency() const {
  CommitLatency out;
  for (std::size_t i = 0; i < commit_buckets_.size(); ++i) {
    out.buckets[i] = commit_buckets_[i].load(std::memory_order_relaxed);
    out.count += out.buckets[i];
  }
  out.sum_seconds = static_cast<double>(commit_nanos_.load(std::memory_order_relaxed)) / 1e9;
  return out;
}

SqliteStore::Health SqliteStore::health() const {
  std::lock_guard lock(health_mutex_);
  Health h = last_failure_;
  h.failing = failing_.load(std::memory_order_relaxed);
  return h;
}

void SqliteStore::run() {
  std::vector<Op> batch;
  auto retry_delay = std::chrono::milliseconds(100);
  while (true) {
    // The writer thread never ends silently: an unexpected error outside a
    // commit (a commit's own failure is retried in write_batch) is logged,
    // counted, and the thread goes on; the batch it held is retried.
    try {
      if (!write_batch(batch, retry_delay)) return;
    } catch (const std::exception& e) {
      errors_.fetch_add(1, std::memory_order_relaxed);
      spdlog::error("store '{}': unexpected error in the writer thread, it goes on: {}", options_.path, e.what());
      std::unique_lock lock(mutex_);
      wake_writer_.wait_for(lock, retry_delay);
    }
  }
}

bool SqliteStore::write_batch(std::vector<Op>& batch, std::chrono::milliseconds& retry_delay) {
  std::uint64_t last = 0;
  bool stop = false;
  bool idle_checkpoint = false;
  {
    std::unique_lock lock(mutex_);
    // How many pending changes may be committed: those before the first
    // change of the earliest group still in progress (all at shutdown).
    auto ready = [&]() -> std::size_t {
      if (stopping_ || open_groups_.empty()) return pending_.size();
      const std::uint64_t first = enqueued_ - pending_.size() + 1;
      const std::uint64_t limit = *open_groups_.begin();
      return limit <= first ? 0 : std::min<std::size_t>(pending_.size(), limit - first);
    };
    if (batch.empty()) {
      if (options_.sync) {
        while (ready() == 0 && !stopping_) {
          writer_waiting_ = true;
          if (wal_pages_ == 0) {
            wake_writer_.wait(lock);
          } else if (wake_writer_.wait_for(lock, kIdleCheckpoint) == std::cv_status::timeout && ready() == 0 &&
                     !stopping_) {
            // Idle for a moment with a WAL: truncate it (below, unlocked).
            writer_waiting_ = false;
            idle_checkpoint = true;
            break;
          }
        }
      } else {
        wake_writer_.wait_for(lock, options_.flush_interval, [&] { return stopping_; });
        idle_checkpoint = pending_.empty() && wal_pages_ > 0;
      }
    }
    if (idle_checkpoint) {
      lock.unlock();
      checkpoint(SQLITE_CHECKPOINT_TRUNCATE);
      return true;
    }
    // Take the ready prefix, in order (after a failed batch: behind it).
    const std::size_t n = ready();
    last = enqueued_ - (pending_.size() - n);
    if (batch.empty() && n == pending_.size()) {
      batch.swap(pending_);  // the whole journal: no copy
    } else {
      std::move(pending_.begin(), pending_.begin() + static_cast<std::ptrdiff_t>(n), std::back_inserter(batch));
      pending_.erase(pending_.begin(), pending_.begin() + static_cast<std::ptrdiff_t>(n));
    }
    stop = stopping_;
  }
  if (!batch.empty()) {
    try {
      const auto t0 = std::chrono::steady_clock::now();
      apply(batch);
      record_commit(std::chrono::steady_clock::now() - t0);
      // A fan-out's journal (tens of thousands of entries) is not kept for
      // the next batch: its memory goes back.
      if (batch.capacity() > kKeepOps) {
        std::vector<Op>().swap(batch);
      } else {
        batch.clear();
      }
      retry_delay = std::chrono::milliseconds(100);
    } catch (const std::exception& e) {
      errors_.fetch_add(1, std::memory_order_relaxed);
      record_failure(e.what());
      // Disk full, I/O error: keep the batch (nothing is acknowledged
      // before it commits) and retry; the event loops are not blocked.
      spdlog::error("store '{}': write failed, retrying in {} ms: {}", options_.path, retry_delay.count(), e.what());
      std::unique_lock lock(mutex_);
      wake_writer_.wait_for(lock, retry_delay);
      retry_delay = std::min(retry_delay * 2, std::chrono::milliseconds(5000));
      if (stopping_ && retry_delay >= std::chrono::milliseconds(5000)) {
        spdlog::error("store '{}': giving up on {} changes at shutdown", options_.path, batch.size());
        return false;
      }
      return true;
    }
    // Tickets up to `last` were all in this or earlier batches.
    committed_.store(last, std::memory_order_release);
    commits_.fetch_add(1, std::memory_order_relaxed);
    if (commit_listener_) commit_listener_(last);
    // After the acknowledgements are on their way, not inside the commit.
    if (wal_pages_ >= kCheckpointPages) checkpoint(SQLITE_CHECKPOINT_PASSIVE);
  } else {
    committed_.store(last, std::memory_order_release);
  }
  return !stop;
}

void SqliteStore::checkpoint(int mode) {
  int log = 0, done = 0;
  const int rc = sqlite3_wal_checkpoint_v2(db_, nullptr, mode, &log, &done);
  if (rc != SQLITE_OK) {
    spdlog::warn("store '{}': WAL checkpoint failed: {}", options_.path, sqlite3_errmsg(db_));
    return;
  }
  if (done >= log) wal_pages_ = 0;
}

std::uint64_t SqliteStore::message_id(const MessagePtr& m, Overlay& ov) {
  const broker::Message* key = m.get();
  if (key == ov.last) return ov.last_id;
  std::uint64_t id = 0;
  if (auto created = ov.created_ids.find(key); created != ov.created_ids.end()) {
    id = created->second;
  } else if (auto it = message_ids_.find(key); it != message_ids_.end() && !ov.erased.contains(it->second)) {
    id = it->second;
  } else {
    // Not on disk: written now, once, for all its deliveries.
    id = next_message_id_++;
    auto* s = statements_for_writes_->message_add;
    const auto& msg = *m;
    sqlite3_bind_int64(s, 1, static_cast<sqlite3_int64>(id));
    sqlite3_bind_text(s, 2, msg.topic().data(), static_cast<int>(msg.topic().size()), SQLITE_STATIC);
    sqlite3_bind_blob(s, 3, msg.payload().data(), static_cast<int>(msg.payload().size()), SQLITE_STATIC);
    sqlite3_bind_int(s, 4, msg.qos());
    sqlite3_bind_int(s, 5, msg.retain());
    std::string props;
    if (msg.properties_length()) {
      props = encode_props(msg.properties());
      sqlite3_bind_blob(s, 6, props.data(), static_cast<int>(props.size()), SQLITE_STATIC);
    }
    sqlite3_bind_text(s, 7, msg.origin_client_id().data(), static_cast<int>(msg.origin_client_id().size()),
                      SQLITE_STATIC);
    if (msg.expires_at()) sqlite3_bind_int64(s, 8, to_unix_ms(*msg.expires_at()));
    const int rc = sqlite3_step(s);
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    if (rc != SQLITE_DONE) throw StoreError(sqlite3_errmsg(db_));
    ov.created.emplace(id, m);
    ov.created_ids.emplace(key, id);
  }
  ov.last = key;
  ov.last_id = id;
  ov.last_count = &ov.deliveries[id];
  return id;
}

void SqliteStore::merge(Overlay& ov) {
  for (auto id : ov.erased) {
    if (auto it = messages_.find(id); it != messages_.end()) {
      if (auto by = message_ids_.find(it->second.message.get()); by != message_ids_.end() && by->second == id)
        message_ids_.erase(by);
      messages_.erase(it);
    }
  }
  for (auto& [id, m] : ov.created) {
    message_ids_[m.get()] = id;
    messages_.emplace(id, Written{std::move(m), 0});
  }
  for (const auto& [id, change] : ov.deliveries) {
    if (auto it = messages_.find(id); it != messages_.end())
      it->second.deliveries = static_cast<std::uint64_t>(static_cast<std::int64_t>(it->second.deliveries) + change);
  }
  stored_messages_.store(messages_.size(), std::memory_order_relaxed);
}

void SqliteStore::cancel_acknowledged(std::uint64_t first, std::uint64_t last) {
  // Deliveries of this batch whose acknowledgement (or other removal) was
  // reported after the batch was taken, while its other changes were being
  // written: neither the row nor its removal needs the disk. The commit
  // then covers the insert's ticket without the row, which is the state
  // after the acknowledgement that the broker has already received; if
  // petrel stops before the removal's own ticket is committed, the delivery
  // is simply not there, as the acknowledgement said. The insert is marked
  // cancelled in the batch (kept if the batch is retried) and the removal
  // emptied (id 0) in the journal.
  std::lock_guard lock(mutex_);
  for (auto& op : pending_) {
    if (op.kind != Op::Kind::DeliveryRemove || op.id < first || op.id > last) continue;
    Added& a = added_[op.id - first];
    if (!a.op) continue;
    a.op->state = kCancelledLater;
    a.cancelled = true;
    op.id = 0;
  }
}

void SqliteStore::apply(std::vector<Op>& batch) {
  fault::check("store", "write");
  if (!statements_for_writes_) {
    statements_for_writes_ = std::make_unique<Statements>(Statements{
        prepare("INSERT OR REPLACE INTO retained (topic, payload, qos, props, origin, expires_at) VALUES (?,?,?,?,?,?)"),
        prepare("DELETE FROM retained WHERE topic = ?"),
        prepare(
            "INSERT INTO sessions (client_id, version, expiry_interval, disconnected_at, will_topic, will_payload, "
            "will_qos, will_retain, will_props, will_delay, username, listener, id) "
            "VALUES (?1,?2,?3,NULL,?4,?5,?6,?7,?8,?9,?10,?11,?12) "
            "ON CONFLICT (client_id) DO UPDATE SET version = ?2, expiry_interval = ?3, disconnected_at = NULL, "
            "will_topic = ?4, will_payload = ?5, will_qos = ?6, will_retain = ?7, will_props = ?8, will_delay = ?9, "
            "username = ?10, listener = ?11, id = ?12"),
        prepare(
            "UPDATE sessions SET expiry_interval = ?2, disconnected_at = ?3, will_topic = ?4, will_payload = ?5, "
            "will_qos = ?6, will_retain = ?7, will_props = ?8, will_delay = ?9 WHERE client_id = ?1"),
        prepare(
            "UPDATE sessions SET will_topic = NULL, will_payload = NULL, will_qos = NULL, will_retain = NULL, "
            "will_props = NULL, will_delay = NULL WHERE client_id = ?"),
        // A session's deliveries are removed one by one before it is
        // deleted (SessionStore::session_deleted): deliveries have no index
        // by session, which would cost every fan-out a write in every page
        // of that index.
        {prepare("DELETE FROM sessions WHERE client_id = ?"), prepare("DELETE FROM subscriptions WHERE client_id = ?"),
         prepare("DELETE FROM inbound_qos2 WHERE client_id = ?")},
        prepare(
            "INSERT OR REPLACE INTO subscriptions (client_id, filter, qos, no_local, retain_as_published, "
            "retain_handling, subscription_id) VALUES (?,?,?,?,?,?,?)"),
        prepare("DELETE FROM subscriptions WHERE client_id = ? AND filter = ?"),
        prepare(
            "INSERT INTO messages (id, topic, payload, qos, retain, props, origin, expires_at) VALUES (?,?,?,?,?,?,?,?)"),
        prepare("DELETE FROM messages WHERE id = ?"),
        prepare(delivery_insert(1).c_str()),
        prepare(delivery_insert(kRowsPerInsert).c_str()),
        prepare("UPDATE deliveries SET packet_id = ?, state = ? WHERE id = ?"),
        prepare("DELETE FROM deliveries WHERE id = ?"),
        prepare("INSERT OR IGNORE INTO inbound_qos2 (client_id, packet_id) VALUES (?,?)"),
        prepare("DELETE FROM inbound_qos2 WHERE client_id = ? AND packet_id = ?"),
        prepare("UPDATE sessions SET id = ? WHERE client_id = ?"),
        prepare("BEGIN"),
        prepare("COMMIT"),
        prepare("ROLLBACK"),
    });
  }
  Statements* st = statements_for_writes_.get();
  auto run = [&](sqlite3_stmt* s) {
    const int rc = sqlite3_step(s);
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW) throw StoreError(sqlite3_errmsg(db_));
  };
  auto text = [](sqlite3_stmt* s, int i, std::string_view v) {
    sqlite3_bind_text(s, i, v.data(), static_cast<int>(v.size()), SQLITE_STATIC);
  };
  auto blob = [](sqlite3_stmt* s, int i, std::string_view v) {
    sqlite3_bind_blob(s, i, v.data(), static_cast<int>(v.size()), SQLITE_STATIC);
  };
  auto bind_will = [&](sqlite3_stmt* s, const std::optional<broker::WillMessage>& w, std::string& props) {
    if (!w) return;  // all NULL
    text(s, 4, w->will.topic);
    blob(s, 5, w->will.payload);
    sqlite3_bind_int(s, 6, w->will.qos);
    sqlite3_bind_int(s, 7, w->will.retain);
    props = encode_props(w->will.properties);
    blob(s, 8, props);
    sqlite3_bind_int64(s, 9, w->delay);
  };

  // A delivery added and removed within one batch never needs the disk.
  // Delivery ids are given in journal order, one after the other, so the
  // deliveries this batch adds are the ids from its first DeliveryAdd to its
  // last, all of them: added[id - first] is each one's entry.
  std::uint64_t first = 0, last = 0;
  for (const auto& op : batch)
    if (op.kind == Op::Kind::DeliveryAdd) {
      if (!first) first = op.id;
      last = op.id;
    }
  auto in_batch = [&](std::uint64_t id) { return first && id >= first && id <= last; };
  added_.assign(first ? last - first + 1 : 0, Added{});

  // Stored deliveries are inserted kRowsPerInsert to a statement, after
  // every other change of the batch: one statement keeps its cursor at the
  // end of the table, where the rows go, instead of seeking there for each
  // (a fan-out's rows take 40 % less time), and acknowledgements that
  // arrive meanwhile can still cancel them (cancel_acknowledged()).
  struct Row {
    const Added* add;
    std::uint64_t message;
  };
  std::vector<Row> rows;
  rows.reserve(kRowsPerInsert);
  std::string ids;
  auto insert_rows = [&] {
    auto bind = [&](sqlite3_stmt* s, int base, const Row& r) {
      const Op& op = *r.add->op;
      sqlite3_bind_int64(s, base + 1, static_cast<sqlite3_int64>(op.id));
      sqlite3_bind_int64(s, base + 2, static_cast<sqlite3_int64>(op.session));
      sqlite3_bind_int64(s, base + 3, static_cast<sqlite3_int64>(r.message));
      sqlite3_bind_int(s, base + 4, op.qos);
      sqlite3_bind_int(s, base + 5, op.retain);
      sqlite3_bind_int(s, base + 6, r.add->packet_id);
      sqlite3_bind_int(s, base + 7, r.add->state);
      if (op.detail && !op.detail->subscription_ids.empty()) {
        // Bound as a copy: the rows of one statement each have their own.
        ids = encode_ids(op.detail->subscription_ids);
        sqlite3_bind_blob(s, base + 8, ids.data(), static_cast<int>(ids.size()), SQLITE_TRANSIENT);
      } else {
        sqlite3_bind_null(s, base + 8);
      }
    };
    if (rows.size() == kRowsPerInsert) {
      for (std::size_t i = 0; i < rows.size(); ++i) bind(st->delivery_add_many, static_cast<int>(i) * 8, rows[i]);
      run(st->delivery_add_many);
    } else {
      for (const auto& r : rows) {
        bind(st->delivery_add, 0, r);
        run(st->delivery_add);
      }
    }
    rows.clear();
  };
  Overlay ov;
  run(st->begin);
  try {
    std::string scratch;
    for (auto& op : batch) {
      const Detail* d = op.detail.get();
      switch (op.kind) {
        case Op::Kind::RetainSet: {
          auto* s = st->retain_set;
          const auto& m = *op.message;
          text(s, 1, m.topic());
          blob(s, 2, m.payload());
          sqlite3_bind_int(s, 3, m.qos());
          scratch = encode_props(m.properties());
          blob(s, 4, scratch);
          text(s, 5, m.origin_client_id());
          if (m.expires_at()) sqlite3_bind_int64(s, 6, to_unix_ms(*m.expires_at()));
          run(s);
          break;
        }
        case Op::Kind::RetainErase:
          text(st->retain_erase, 1, d->key);
          run(st->retain_erase);
          break;
        case Op::Kind::SessionSave: {
          auto* s = st->session_save;
          text(s, 1, d->key);
          sqlite3_bind_int(s, 2, static_cast<int>(d->version));
          sqlite3_bind_int64(s, 3, op.number);
          bind_will(s, d->will, scratch);
          if (d->username) text(s, 10, *d->username);
          text(s, 11, d->listener);
          sqlite3_bind_int64(s, 12, static_cast<sqlite3_int64>(op.session));
          run(s);
          break;
        }
        case Op::Kind::SessionOffline: {
          auto* s = st->session_offline;
          text(s, 1, d->key);
          sqlite3_bind_int64(s, 2, op.number);
          sqlite3_bind_int64(s, 3, d->time);
          bind_will(s, d->will, scratch);
          run(s);
          break;
        }
        case Op::Kind::SessionKey:
          sqlite3_bind_int64(st->session_key, 1, static_cast<sqlite3_int64>(op.session));
          text(st->session_key, 2, d->key);
          run(st->session_key);
          break;
        case Op::Kind::WillClear:
          text(st->will_clear, 1, d->key);
          run(st->will_clear);
          break;
        case Op::Kind::SessionDelete:
          for (auto* s : st->session_delete) {
            text(s, 1, d->key);
            run(s);
          }
          break;
        case Op::Kind::SubAdd: {
          auto* s = st->sub_add;
          text(s, 1, d->key);
          text(s, 2, d->filter);
          sqlite3_bind_int(s, 3, d->options.qos);
          sqlite3_bind_int(s, 4, d->options.no_local);
          sqlite3_bind_int(s, 5, d->options.retain_as_published);
          sqlite3_bind_int(s, 6, d->options.retain_handling);
          sqlite3_bind_int64(s, 7, op.number);
          run(s);
          break;
        }
        case Op::Kind::SubRemove:
          text(st->sub_remove, 1, d->key);
          text(st->sub_remove, 2, d->filter);
          run(st->sub_remove);
          break;
        case Op::Kind::DeliveryAdd: {
          Added& a = added_[op.id - first];
          a.op = &op;
          a.cancelled = op.state == kCancelledLater;
          break;
        }
        case Op::Kind::DeliveryState:
          if (in_batch(op.id)) {  // its row is not written yet: written so
            Added& a = added_[op.id - first];
            a.packet_id = static_cast<std::uint16_t>(op.number);
            a.state = op.state;
            break;
          }
          sqlite3_bind_int(st->delivery_state, 1, static_cast<int>(op.number));
          sqlite3_bind_int(st->delivery_state, 2, op.state);
          sqlite3_bind_int64(st->delivery_state, 3, static_cast<sqlite3_int64>(op.id));
          run(st->delivery_state);
          break;
        case Op::Kind::DeliveryRemove: {
          if (op.id == 0) break;  // it cancelled an insert of an earlier batch
          if (in_batch(op.id)) {
            added_[op.id - first].cancelled = true;
            break;
          }
          // Written by an earlier batch (or read at start): its row goes,
          // and with the last stored delivery of its message, the message's.
          sqlite3_bind_int64(st->delivery_remove, 1, static_cast<sqlite3_int64>(op.id));
          run(st->delivery_remove);
          if (sqlite3_changes(db_) == 0) break;  // not on disk (cannot happen)
          // Its message is on disk as long as a stored delivery refers to
          // it (message_ids_ holds it, so its address names it): the one
          // the removal names.
          auto base = message_ids_.find(op.message.get());
          if (base == message_ids_.end()) break;  // not ours
          const std::uint64_t message = base->second;
          if (ov.erased.contains(message)) break;
          auto& change = ov.deliveries[message];
          --change;
          if (static_cast<std::int64_t>(messages_.at(message).deliveries) + change <= 0) {
            sqlite3_bind_int64(st->message_erase, 1, static_cast<sqlite3_int64>(message));
            run(st->message_erase);
            ov.erased.insert(message);
          }
          break;
        }
        case Op::Kind::Qos2Add:
          text(st->qos2_add, 1, d->key);
          sqlite3_bind_int(st->qos2_add, 2, static_cast<int>(op.number));
          run(st->qos2_add);
          break;
        case Op::Kind::Qos2Remove:
          text(st->qos2_remove, 1, d->key);
          sqlite3_bind_int(st->qos2_remove, 2, static_cast<int>(op.number));
          run(st->qos2_remove);
          break;
      }
    }
    if (std::any_of(added_.begin(), added_.end(), [](const Added& a) { return a.op && !a.cancelled; })) {
      if (before_inserts_) before_inserts_();
      // The deliveries left are mostly those in flight to online
      // subscribers when the batch was taken, whose acknowledgements are
      // on their way. Where the writer shares a core with the event loop
      // (one core, or a busy machine), the loop reads them only when the
      // writer lets it run: give it the core once, so that they cancel
      // these inserts instead of costing an insert now and a delete in the
      // next batch (bench/durable: 0.57 -> 0.41 µs of writer CPU per
      // message). Nothing else runnable: it returns at once.
      std::this_thread::yield();
      cancel_acknowledged(first, last);
      for (auto& a : added_) {
        if (a.cancelled || !a.op) continue;
        rows.push_back(Row{&a, message_id(a.op->message, ov)});
        ++*ov.last_count;
        if (rows.size() == kRowsPerInsert) insert_rows();
      }
      if (!rows.empty()) insert_rows();
    }
    run(st->commit);
  } catch (...) {
    sqlite3_step(st->rollback);
    sqlite3_reset(st->rollback);
    throw;
  }
  merge(ov);
}

}  // namespace petrel::store
