// The per-loop deadline wheel and batch (net/loop_batch.hpp).
#include "net/loop_batch.hpp"

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <string>
#include <vector>

namespace petrel::net {
namespace {

struct Resident final : LoopResident, std::enable_shared_from_this<Resident> {
  Resident(std::string name, std::vector<std::string>& log) : name(std::move(name)), log(log) {}
  void run_batched() override { log.push_back("batch " + name); }
  void on_deadline() override { log.push_back("deadline " + name); }
  std::shared_ptr<LoopResident> self() override { return shared_from_this(); }
  std::string name;
  std::vector<std::string>& log;
};

using Clock = DeadlineWheel::Clock;

TEST(DeadlineWheel, FiresDueEntriesInTimeOrderAndHoldsThemAlive) {
  boost::asio::io_context loop;
  std::vector<std::string> log;
  auto& wheel = DeadlineWheel::local();
  const auto now = Clock::now();
  {
    auto late = std::make_shared<Resident>("late", log);
    auto early = std::make_shared<Resident>("early", log);
    auto past = std::make_shared<Resident>("past", log);
    wheel.insert(*late, now + std::chrono::milliseconds(180), loop.get_executor());
    wheel.insert(*early, now + std::chrono::milliseconds(20), loop.get_executor());
    wheel.insert(*past, now - std::chrono::seconds(5), loop.get_executor());
  }  // only the wheel holds them now
  EXPECT_EQ(wheel.size(), 3u);
  loop.run();  // returns once every deadline has fired and the wheel stopped ticking
  EXPECT_EQ(log, (std::vector<std::string>{"deadline past", "deadline early", "deadline late"}));
  EXPECT_GE(Clock::now(), now + std::chrono::milliseconds(180));
  EXPECT_EQ(wheel.size(), 0u);
  wheel.clear();
}

TEST(DeadlineWheel, MovingOrRemovingAnEntryChangesWhenItFires) {
  boost::asio::io_context loop;
  std::vector<std::string> log;
  auto& wheel = DeadlineWheel::local();
  auto moved = std::make_shared<Resident>("moved", log);
  auto removed = std::make_shared<Resident>("removed", log);
  auto far = std::make_shared<Resident>("far", log);
  const auto now = Clock::now();
  wheel.insert(*moved, now + std::chrono::hours(1), loop.get_executor());
  wheel.insert(*moved, now + std::chrono::milliseconds(10), loop.get_executor());  // moved earlier
  wheel.insert(*removed, now + std::chrono::milliseconds(10), loop.get_executor());
  wheel.remove(*removed);
  wheel.insert(*far, now + std::chrono::seconds(100), loop.get_executor());  // beyond one revolution
  EXPECT_EQ(wheel.size(), 2u);
  loop.run_for(std::chrono::milliseconds(300));
  EXPECT_EQ(log, std::vector<std::string>{"deadline moved"});
  EXPECT_EQ(wheel.size(), 1u);
  wheel.clear();  // drops "far" and the timer while the io_context exists
  EXPECT_EQ(wheel.size(), 0u);
  EXPECT_EQ(far.use_count(), 1);
}

TEST(LoopBatch, ServesEachAddedResidentOnceAfterTheReadyHandlers) {
  boost::asio::io_context loop;
  std::vector<std::string> log;
  auto a = std::make_shared<Resident>("a", log);
  auto b = std::make_shared<Resident>("b", log);
  boost::asio::post(loop, [&] {
    LoopBatch::add(a, loop.get_executor());
    LoopBatch::add(b, loop.get_executor());
    log.push_back("handler 1");
  });
  boost::asio::post(loop, [&] { log.push_back("handler 2"); });
  loop.run();
  EXPECT_EQ(log, (std::vector<std::string>{"handler 1", "handler 2", "batch a", "batch b"}));
}

}  // namespace
}  // namespace petrel::net
