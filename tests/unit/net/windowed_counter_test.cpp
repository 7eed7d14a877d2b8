// WindowedCounter: the total since start and the count of the last 60
// seconds, buckets reused as time goes round.
#include <gtest/gtest.h>

#include "net/listener_stats.hpp"

namespace petrel::net {
namespace {

TEST(WindowedCounter, CountsTheLastMinuteAndEverything) {
  WindowedCounter c;
  c.add_at(1, 1000);
  c.add_at(2, 1000);
  c.add_at(5, 1030);
  EXPECT_EQ(c.total(), 8u);
  EXPECT_EQ(c.last_minute_at(1030), 8u);
  EXPECT_EQ(c.last_minute_at(1059), 8u);
  EXPECT_EQ(c.last_minute_at(1060), 5u);  // second 1000 left the window
  EXPECT_EQ(c.last_minute_at(1090), 0u);
  EXPECT_EQ(c.total(), 8u);
}

TEST(WindowedCounter, ReusedBucketStartsAgain) {
  WindowedCounter c;
  c.add_at(7, 2000);
  c.add_at(1, 2060);  // the same bucket, a minute later
  EXPECT_EQ(c.last_minute_at(2060), 1u);
  EXPECT_EQ(c.total(), 8u);
}

TEST(ListenerStats, FailureKinds) {
  EXPECT_EQ(ListenerStats::failure_kind("max_connections"), "refusal");
  EXPECT_EQ(ListenerStats::failure_kind("too_many_handshakes"), "refusal");
  EXPECT_EQ(ListenerStats::failure_kind("connect_timeout"), "timeout");
  EXPECT_EQ(ListenerStats::failure_kind("certificate_expired"), "handshake");
  ListenerStats s;
  s.count_failure("certificate_expired");
  s.count_failure("certificate_expired");
  const auto counts = s.failure_counts();
  EXPECT_EQ(counts.at("certificate_expired").total, 2u);
  EXPECT_EQ(counts.at("certificate_expired").last_minute, 2u);
}

}  // namespace
}  // namespace petrel::net
