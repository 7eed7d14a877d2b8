// Reconnect delays: doubling from the minimum to the maximum, each one drawn
// from [d/2, d]; a refusal waits at the slowest rate; success resets.
#include "bridge/backoff.hpp"

#include <gtest/gtest.h>

namespace petrel::bridge {
namespace {

using ms = std::chrono::milliseconds;

TEST(Backoff, DoublesUpToTheMaximum) {
  Backoff b(ms(100), ms(1000));
  // unit = 1 (just below): the nominal delay itself; unit = 0: half of it.
  std::vector<ms> top, bottom;
  for (int i = 0; i < 6; ++i) top.push_back(b.next_failure(0.999999));
  EXPECT_EQ(top[0], ms(99));
  EXPECT_EQ(top[1], ms(199));
  EXPECT_EQ(top[2], ms(399));
  EXPECT_EQ(top[3], ms(799));
  EXPECT_EQ(top[4], ms(999));  // capped
  EXPECT_EQ(top[5], ms(999));
  b.reset();
  for (int i = 0; i < 6; ++i) bottom.push_back(b.next_failure(0.0));
  EXPECT_EQ(bottom[0], ms(50));
  EXPECT_EQ(bottom[3], ms(400));
  EXPECT_EQ(bottom[5], ms(500));
}

TEST(Backoff, JitterStaysWithinHalfAndWhole) {
  Backoff b(ms(1000), ms(60000));
  for (int i = 0; i < 40; ++i) {
    const ms nominal = b.nominal();
    const ms d = b.next_failure(static_cast<double>(i % 10) / 10.0);
    EXPECT_GE(d, nominal / 2);
    EXPECT_LE(d, nominal);
    EXPECT_LE(d, ms(60000));
  }
}

TEST(Backoff, RefusalWaitsAtTheSlowestRate) {
  Backoff b(ms(100), ms(30000));
  EXPECT_GE(b.next_refusal(0.0), ms(15000));
  EXPECT_LE(b.next_refusal(0.999), ms(30000));
  EXPECT_EQ(b.failures(), 2u);
}

TEST(Backoff, SuccessResets) {
  Backoff b(ms(100), ms(1000));
  for (int i = 0; i < 5; ++i) b.next_failure(0.5);
  EXPECT_EQ(b.nominal(), ms(1000));
  b.reset();
  EXPECT_EQ(b.nominal(), ms(100));
}

TEST(Backoff, ManyFailuresDoNotOverflow) {
  Backoff b(ms(1), ms(3'600'000));
  for (int i = 0; i < 10000; ++i) b.next_failure(0.5);
  EXPECT_EQ(b.nominal(), ms(3'600'000));
}

TEST(Backoff, MaximumBelowMinimumIsTheMinimum) {
  Backoff b(ms(500), ms(100));
  EXPECT_EQ(b.next_failure(0.999999), ms(499));
}

}  // namespace
}  // namespace petrel::bridge
