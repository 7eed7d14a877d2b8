// The bench stamp and the loss/duplicate accounting of `petrel bench sub`,
// which a real broker on loopback never exercises (it neither loses nor
// reorders QoS 1 messages there).
#include "bench/stamp.hpp"

#include <gtest/gtest.h>

#include <string>

#include "bench/pubsub.hpp"

namespace petrel::bench {
namespace {

TEST(Stamp, RoundTrip) {
  std::string payload(64, 'x');
  write_stamp_constants(payload.data(), 7, 0xDEADBEEF);
  write_stamp(payload.data(), 123456789012345ULL, 42);
  Stamp s;
  ASSERT_TRUE(read_stamp(payload, s));
  EXPECT_EQ(s.sent_ns, 123456789012345ULL);
  EXPECT_EQ(s.publisher, 7u);
  EXPECT_EQ(s.sequence, 42u);
  EXPECT_EQ(s.run, 0xDEADBEEFu);
}

TEST(Stamp, ForeignPayloadsAreNotStamps) {
  Stamp s;
  EXPECT_FALSE(read_stamp("hello", s));
  EXPECT_FALSE(read_stamp(std::string(64, 'x'), s));  // long enough, no magic
  std::string short_one(kStamp - 1, 'x');
  EXPECT_FALSE(read_stamp(short_one, s));
  std::string impossible(kStamp, 'x');
  write_stamp_constants(impossible.data(), kMaxPublishers, 1);
  EXPECT_FALSE(read_stamp(impossible, s));
}

SequenceTracker::Counts feed(SequenceTracker& t, std::initializer_list<std::uint32_t> seqs, std::uint32_t pub = 0,
                             std::uint32_t run = 1) {
  for (auto q : seqs) t.record(run, pub, q);
  return t.totals();
}

TEST(SequenceTracker, InOrderIsClean) {
  SequenceTracker t;
  auto c = feed(t, {0, 1, 2, 3, 4});
  EXPECT_EQ(c.lost, 0);
  EXPECT_EQ(c.duplicates, 0u);
  EXPECT_EQ(c.out_of_order, 0u);
  EXPECT_EQ(t.publishers(), 1u);
}

TEST(SequenceTracker, GapsAreLost) {
  SequenceTracker t;
  auto c = feed(t, {0, 1, 5, 6, 10});
  EXPECT_EQ(c.lost, 3 + 3);
}

TEST(SequenceTracker, LateArrivalIsTakenBackFromLost) {
  SequenceTracker t;
  auto c = feed(t, {0, 1, 4, 2, 3, 5});
  EXPECT_EQ(c.lost, 0);
  EXPECT_EQ(c.out_of_order, 2u);
  EXPECT_EQ(c.duplicates, 0u);
}

TEST(SequenceTracker, RepeatsAreDuplicates) {
  SequenceTracker t;
  auto c = feed(t, {0, 1, 1, 2, 0, 2});
  EXPECT_EQ(c.lost, 0);
  EXPECT_EQ(c.duplicates, 3u);
  EXPECT_EQ(c.out_of_order, 0u);
}

TEST(SequenceTracker, OlderThanTheWindowIsADuplicate) {
  SequenceTracker t;
  auto c = feed(t, {0, 100, 1});  // 1 is 99 behind the newest
  EXPECT_EQ(c.lost, 99);
  EXPECT_EQ(c.duplicates, 1u);
}

TEST(SequenceTracker, CountingStartsAtTheFirstMessageSeen) {
  SequenceTracker t;
  auto c = feed(t, {1000, 1001, 1002});  // joined late: what came before is not lost
  EXPECT_EQ(c.lost, 0);
}

TEST(SequenceTracker, SequenceNumbersWrap) {
  SequenceTracker t;
  auto c = feed(t, {0xFFFFFFFE, 0xFFFFFFFF, 0, 2});
  EXPECT_EQ(c.lost, 1);
  EXPECT_EQ(c.duplicates, 0u);
}

TEST(SequenceTracker, PublishersAndRunsAreApart) {
  SequenceTracker t;
  feed(t, {0, 1, 2}, 0, 1);
  feed(t, {0, 1, 2}, 1, 1);
  feed(t, {0, 1, 2}, 0, 2);  // another generator's publisher 0
  EXPECT_EQ(t.totals().lost, 0);
  EXPECT_EQ(t.totals().duplicates, 0u);
  EXPECT_EQ(t.publishers(), 3u);
  int seen = 0;
  t.for_each_publisher([&](std::uint32_t, std::uint32_t) { ++seen; });
  EXPECT_EQ(seen, 3);
}

TEST(SequenceTracker, EarlierThanTheFirstSeenIsOnlyOutOfOrder) {
  SequenceTracker t;
  auto c = feed(t, {1, 2, 0, 3});  // 0 overtaken by 1: never counted as lost, so not taken back
  EXPECT_EQ(c.lost, 0);
  EXPECT_EQ(c.out_of_order, 1u);
  EXPECT_EQ(c.duplicates, 0u);
}

TEST(GroupSequenceTracker, WideWindowAcrossWords) {
  GroupSequenceTracker t;
  // 0..2999 with 100..199 and 1500 held back to the end, as members of a shared subscription may deliver.
  for (std::uint32_t q = 0; q < 3000; ++q)
    if ((q < 100 || q >= 200) && q != 1500) t.record(1, 0, q);
  EXPECT_EQ(t.totals().lost, 101);
  for (std::uint32_t q = 100; q < 200; ++q) t.record(1, 0, q);  // 2800..2899 behind the newest
  t.record(1, 0, 1500);
  EXPECT_EQ(t.totals().lost, 0);
  EXPECT_EQ(t.totals().out_of_order, 101u);
  EXPECT_EQ(t.totals().duplicates, 0u);
  t.record(1, 0, 150);
  t.record(1, 0, 2999);
  EXPECT_EQ(t.totals().duplicates, 2u);
  t.record(1, 0, 9000);  // a jump past the whole window
  EXPECT_EQ(t.totals().lost, 9000 - 3000);
  t.record(1, 0, 8999);
  EXPECT_EQ(t.totals().lost, 9000 - 3000 - 1);
  EXPECT_EQ(GroupSequenceTracker::kWindow, 4096u);
}

TEST(Pattern, IndexClientIdAndPercent) {
  EXPECT_EQ(expand_pattern("sensors/%i/temp", 7, "dev-7"), "sensors/7/temp");
  EXPECT_EQ(expand_pattern("c/%c", 3, "dev-3"), "c/dev-3");
  EXPECT_EQ(expand_pattern("%i%c/100%%", 0, "x"), "0x/100%");
  EXPECT_EQ(expand_pattern("plain", 5, "x"), "plain");
}

TEST(Pattern, OtherPercentIsRefused) {
  EXPECT_THROW(expand_pattern("a/%x", 0, "id"), std::invalid_argument);
  EXPECT_THROW(expand_pattern("a/%", 0, "id"), std::invalid_argument);
}

}  // namespace
}  // namespace petrel::bench
