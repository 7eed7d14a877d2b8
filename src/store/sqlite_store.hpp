// The durable store: retained messages and persistent sessions in an SQLite
// database (WAL mode), written by one dedicated writer thread.
//
// Event loops never touch the database. They report changes (store.hpp);
// each change is queued with a ticket, and the writer applies everything
// queued since its last commit in one transaction (group commit across all
// connections and cores), then publishes the last committed ticket and wakes
// the connections whose acknowledgements were waiting for it. A QoS 1
// delivery that is acknowledged before its insert is committed cancels out
// and never reaches the disk: within the batch, or, if the acknowledgement
// comes while the writer applies the batch, just before the batch's
// inserts, which come after its other changes (apply()).
//
// Each message is written once (schema version 3, issue 16): a `messages`
// row holds its content, and each stored delivery is a short `deliveries`
// row (its session's key, the message's id, QoS, retain flag, packet id and
// state) appended in id order, so that a fan-out to N offline sessions costs
// one message and N rows of about 20 bytes, written in one transaction. The
// writer alone knows which messages are on disk and how many stored
// deliveries refer to each (a table in memory, one entry per stored message,
// holding the message); when the last one goes, so does the message's row.
// After a restart the deliveries of a message share one Message again.
//
// Reads (retained lookups) are served from memory: the store keeps the
// in-memory retained tree and writes it through.
//
// Durability modes (docs/persistence.md):
//   sync     - acknowledgements wait for the commit, and each commit is
//              fsync'ed (SQLite synchronous=FULL): nothing acknowledged is
//              lost, not even on power loss.
//   periodic - acknowledgements do not wait; the writer commits every
//              flush_interval (synchronous=NORMAL). A crash or power loss
//              loses at most the changes of the last interval.
// The writer checkpoints the WAL itself, after publishing a commit (never
// inside one, which would delay its acknowledgements) once the WAL holds
// kCheckpointPages, and truncates it when it has been idle for a moment.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "broker/persistence.hpp"

struct sqlite3;
struct sqlite3_stmt;

namespace petrel::store {

using broker::MessagePtr;
using broker::RetainedStore;
using broker::SessionStore;
using broker::StoredSession;

struct SqliteOptions {
  std::string path = "petrel.db";
  bool sync = true;  // false: periodic
  std::chrono::milliseconds flush_interval{1000};
};

// Start-up failures (unreadable, corrupt, foreign or too new database).
class StoreError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class SqliteStore final : public RetainedStore, public SessionStore {
 public:
  // Opens or creates the database, checks it and migrates its schema, and
  // loads the retained messages. Throws StoreError.
  explicit SqliteStore(SqliteOptions options);
  // Commits everything reported so far, then closes.
  ~SqliteStore() override;

  // Every persistent session (call once, before start()). Deliveries of
  // one stored message share one Message.
  std::vector<StoredSession> load_sessions();
  // Messages load_sessions() read back (each shared by its deliveries).
  std::size_t messages_loaded() const { return messages_loaded_; }
  std::size_t retained_loaded() const { return retained_loaded_; }
  // Retained messages that had expired while petrel was down (deleted).
  std::size_t retained_expired() const { return retained_expired_; }
  // Starts the writer thread.
  void start();
  // Commits everything reported so far and stops the writer.
  void stop();

  // RetainedStore
  void set(const MessagePtr& m) override;
  bool erase(std::string_view topic) override;
  void match(std::string_view filter, std::vector<MessagePtr>& out) const override { memory_->match(filter, out); }
  std::size_t size() const override { return memory_->size(); }
  bool contains(std::string_view topic) const override { return memory_->contains(topic); }

  // SessionStore
  std::uint64_t session_saved(const std::string& client_id, std::uint64_t key, std::uint32_t expiry_interval,
                              mqtt::Version version, const broker::WillMessage* will,
                              const std::optional<std::string>& username = std::nullopt,
                              const std::string& listener = {}) override;
  void session_offline(const std::string& client_id, std::uint32_t expiry_interval,
                       const broker::WillMessage* will) override;
  void will_cleared(const std::string& client_id) override;
  void session_deleted(const std::string& client_id) override;
  void subscription_added(const std::string& client_id, const std::string& filter,
                          const broker::SubscriptionEntry& entry) override;
  void subscription_removed(const std::string& client_id, const std::string& filter) override;
  std::uint64_t delivery_added(std::uint64_t session_key, const broker::Delivery& d) override;
  void delivery_state(std::uint64_t id, std::uint16_t packet_id, broker::OutState state) override;
  void delivery_removed(std::uint64_t id, const broker::Message& message) override;
  void inbound_qos2_added(const std::string& client_id, std::uint16_t packet_id) override;
  void inbound_qos2_removed(const std::string& client_id, std::uint16_t packet_id) override;

  bool acks_wait() const override { return options_.sync; }
  std::uint64_t thread_ticket() const override;
  std::uint64_t committed() const override { return committed_.load(std::memory_order_acquire); }
  void set_commit_listener(CommitListener listener) override { commit_listener_ = std::move(listener); }
  std::uint64_t begin_group() override;
  void end_group(std::uint64_t group) override;

  // For tests: called on the writer thread while it applies a batch that
  // adds deliveries, after the batch's other changes and before the
  // removals reported meanwhile cancel its inserts (set before start()).
  void set_before_inserts(std::function<void()> hook) { before_inserts_ = std::move(hook); }

  // For tests and $SYS: transactions committed and changes written.
  std::uint64_t commits() const { return commits_.load(std::memory_order_relaxed); }
  // Failed commits (each retried) and other errors of the writer thread.
  std::uint64_t errors() const { return errors_.load(std::memory_order_relaxed); }
  // Changes reported and not committed yet (the writer's backlog).
  std::uint64_t backlog();
  // Messages on disk (each once, however many stored deliveries refer to
  // it), as of the last commit.
  std::uint64_t stored_messages() const { return stored_messages_.load(std::memory_order_relaxed); }

  // How long commits take (the writer thread's transactions, fsync
  // included), as a histogram: counts per bucket whose upper bounds are
  // kCommitBounds seconds, plus one bucket above the last bound.
  static constexpr std::array<double, 12> kCommitBounds{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                                         0.05,   0.1,   0.25,   0.5,   1.0,  2.5};
  struct CommitLatency {
    std::array<std::uint64_t, kCommitBounds.size() + 1> buckets{};
    double sum_seconds = 0;
    std::uint64_t count = 0;
  };
  CommitLatency commit_latency() const;
  // Whether the last commit failed (the writer retries it), and why.
  struct Health {
    bool failing = false;
    std::string last_error;
    std::chrono::system_clock::time_point last_error_at{};
  };
  Health health() const;

  struct Op;
  struct Detail;

  // The WAL is checkpointed after a commit once it holds this many pages
  // (4 KiB each), and truncated after kIdleCheckpoint without changes.
  static constexpr int kCheckpointPages = 1000;
  static constexpr std::chrono::milliseconds kIdleCheckpoint{200};
  // A batch's vector of changes keeps its capacity up to this many.
  static constexpr std::size_t kKeepOps = 4096;
  // Stored deliveries per INSERT statement (apply()).
  static constexpr std::size_t kRowsPerInsert = 64;

 private:
  struct Statements;
  struct Overlay;
  // A message on disk: the writer keeps it (so that its address names it
  // while it is there) and counts the stored deliveries that refer to it.
  struct Written {
    MessagePtr message;
    std::uint64_t deliveries = 0;
  };
  void push(Op op);
  // Whether a change just queued must wake the writer (with mutex_ held).
  bool must_wake_writer();
  void run();
  // Commits the ready prefix of the journal (or retries `batch`); false
  // once the store is stopping and everything is written.
  bool write_batch(std::vector<Op>& batch, std::chrono::milliseconds& retry_delay);
  void apply(std::vector<Op>& batch);
  // Cancels the inserts of deliveries first..last of the batch being
  // applied whose removal is already in the journal (apply()).
  void cancel_acknowledged(std::uint64_t first, std::uint64_t last);
  // The id of `m` on disk, writing it if it is not there (writer thread).
  std::uint64_t message_id(const MessagePtr& m, Overlay& overlay);
  void merge(Overlay& overlay);
  void checkpoint(int mode);
  // Copies the database (schema `version`) aside; returns the copy's path.
  std::string backup_before_migration(int version);
  void exec(const char* sql);
  void record_commit(std::chrono::steady_clock::duration took);
  void record_failure(const std::string& what);
  sqlite3_stmt* prepare(const char* sql);
  void open_and_check();
  void load_retained();

  SqliteOptions options_;
  sqlite3* db_ = nullptr;
  std::unique_ptr<RetainedStore> memory_;
  std::size_t retained_loaded_ = 0;
  std::size_t retained_expired_ = 0;
  std::mutex retained_mutex_;  // keeps memory and journal in the same order
  std::atomic<std::uint64_t> next_session_key_{1};
  std::size_t messages_loaded_ = 0;

  // A delivery the batch being applied adds (apply()): its journal entry,
  // what its row is written with, and whether a removal cancelled it.
  struct Added {
    Op* op = nullptr;
    std::uint16_t packet_id = 0;
    std::uint8_t state = 0;
    bool cancelled = false;
  };
  // Op::state of a DeliveryAdd whose removal came in a later batch, before
  // its insert was committed (cancel_acknowledged()).
  static constexpr std::uint8_t kCancelledLater = 0xFF;

  // Writer thread only (and start-up, before it runs):
  std::vector<Added> added_;
  std::unordered_map<std::uint64_t, Written> messages_;                // by id
  std::unordered_map<const broker::Message*, std::uint64_t> message_ids_;  // the same, by object
  std::uint64_t next_message_id_ = 1;
  int wal_pages_ = 0;  // frames in the WAL, as of the last commit
  std::atomic<std::uint64_t> stored_messages_{0};

  std::mutex mutex_;
  std::condition_variable wake_writer_;
  std::vector<Op> pending_;
  std::uint64_t enqueued_ = 0;
  std::uint64_t next_delivery_id_ = 1;  // given under mutex_: ids increase in journal order
  bool writer_waiting_ = false;
  bool stopping_ = false;
  CommitListener commit_listener_;  // set before start()
  std::function<void()> before_inserts_;  // tests only
  // First tickets of the groups in progress: the writer commits only what
  // comes before the earliest (guarded by mutex_).
  std::multiset<std::uint64_t> open_groups_;
  std::atomic<std::uint64_t> committed_{0};
  std::atomic<std::uint64_t> commits_{0};
  std::atomic<std::uint64_t> errors_{0};
  std::array<std::atomic<std::uint64_t>, kCommitBounds.size() + 1> commit_buckets_{};
  std::atomic<std::uint64_t> commit_nanos_{0};
  std::atomic<bool> failing_{false};
  mutable std::mutex health_mutex_;
  Health last_failure_;  // guarded by health_mutex_
  std::thread writer_;
  std::vector<sqlite3_stmt*> statements_;
  std::unique_ptr<Statements> statements_for_writes_;
};

}  // namespace petrel::store
