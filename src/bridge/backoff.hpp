// Reconnect delays: exponential with jitter, bounded. The n-th consecutive
// failure waits a random time in [d/2, d], with d = min(max, min * 2^n)
// ("equal jitter": never less than half the nominal delay, so a broker that
// is down is not hammered, and spread so that many edges that lost the same
// remote do not come back in step). A refusal (bad credentials, not
// authorized: the remote answered and said no) waits at the slowest rate at
// once: trying again sooner cannot help. A successful CONNACK resets it.
//
// Pure: the random number is passed in (unit-tested without a clock).
#pragma once

#include <chrono>
#include <cstdint>

namespace petrel::bridge {

class Backoff {
 public:
  using ms = std::chrono::milliseconds;
  Backoff(ms min, ms max) : min_(min), max_(max < min ? min : max) {}

  // The delay before the next attempt after a failure; `unit` is a uniform
  // random number in [0, 1).
  ms next_failure(double unit);
  // After a refusal: the slowest rate.
  ms next_refusal(double unit);
  void reset() { failures_ = 0; }
  unsigned failures() const { return failures_; }
  // The nominal delay (before jitter) of the next failure.
  ms nominal() const;

 private:
  ms jittered(ms d, double unit) const;

  ms min_, max_;
  unsigned failures_ = 0;
};

}  // namespace petrel::bridge
