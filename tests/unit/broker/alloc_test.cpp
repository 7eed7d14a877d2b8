// The allocation budget of the hot path (docs/architecture.md, "Allocation
// budget"): how many heap allocations one PUBLISH costs through the core,
// from the publisher's bytes to the subscriber's write, once warm. A change
// that adds allocations to the hot path fails here, with the count, instead
// of showing up later as lost throughput.
//
// Its own executable: it replaces the global operator new to count.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <new>

#include "broker/recycler.hpp"
#include "harness.hpp"

namespace {
std::atomic<bool> counting{false};
std::atomic<long> allocations{0};
}  // namespace

void* operator new(std::size_t n) {
  if (counting.load(std::memory_order_relaxed)) allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }

namespace petrel::broker {
namespace {

using test::Harness;

// The budgets, as documented in docs/architecture.md ("Allocation budget"):
// blocks taken per message, from operator new or from the thread's recycled
// blocks (broker/recycler.hpp). The fraction is the delivery queue's blocks,
// one per several messages.
constexpr double kQoS0Budget = 1.2;
constexpr double kQoS1Budget = 2.2;
// Of those, from operator new (malloc) once warm.
constexpr double kMallocBudget = 0.2;

struct PerMessage {
  double blocks;  // operator new + recycled
  double malloc;  // operator new only
};

// Per message, publisher to one subscriber, in steady state.
PerMessage allocations_per_message(std::uint8_t qos) {
  Harness h;
  auto sub = h.client(), pub = h.client();
  sub->connect("sub");
  sub->subscribe("sensors/+/temperature", qos);
  pub->connect("pub");
  sub->received();
  pub->received();
  constexpr int kWarmup = 100, kMessages = 1000;
  mqtt::Publish p;
  p.topic = "sensors/device-0042/temperature";  // longer than the small-string buffer, like real topics
  p.payload = std::string(64, 'x');
  p.qos = qos;
  p.packet_id = qos ? 1 : 0;
  const std::string publish = mqtt::encode(p, mqtt::Version::V5);
  std::vector<std::string> acks;  // the subscriber's PUBACKs, encoded before counting
  for (int i = 1; i <= kWarmup + kMessages; ++i)
    acks.push_back(mqtt::encode(
        mqtt::PubAck{mqtt::PacketType::Puback, static_cast<std::uint16_t>(i), mqtt::ReasonCode::Success, {}},
        mqtt::Version::V5));
  auto one = [&](int i) {
    pub->client().on_bytes(publish);
    sub->client().flush();
    if (qos) sub->client().on_bytes(acks[static_cast<std::size_t>(i)]);
    pub->transport().written.clear();  // keeps its capacity
    sub->transport().written.clear();
  };
  for (int i = 0; i < kWarmup; ++i) one(i);
  allocations = 0;
  const auto recycled_before = recycled_allocations();
  counting = true;
  for (int i = kWarmup; i < kWarmup + kMessages; ++i) one(i);
  counting = false;
  const double malloc = static_cast<double>(allocations.load()) / kMessages;
  const double recycled = static_cast<double>(recycled_allocations() - recycled_before) / kMessages;
  return {malloc + recycled, malloc};
}

TEST(AllocationBudget, QoS0PublishToOneSubscriber) {
  const auto m = allocations_per_message(0);
  std::printf("QoS 0: %.2f blocks per message (budget %.1f), %.2f from malloc (budget %.1f)\n", m.blocks,
              kQoS0Budget, m.malloc, kMallocBudget);
  EXPECT_LE(m.blocks, kQoS0Budget);
  EXPECT_LE(m.malloc, kMallocBudget);
}

TEST(AllocationBudget, QoS1PublishToOneSubscriber) {
  const auto m = allocations_per_message(1);
  std::printf("QoS 1: %.2f blocks per message (budget %.1f), %.2f from malloc (budget %.1f)\n", m.blocks,
              kQoS1Budget, m.malloc, kMallocBudget);
  EXPECT_LE(m.blocks, kQoS1Budget);
  EXPECT_LE(m.malloc, kMallocBudget);
}

}  // namespace
}  // namespace petrel::broker
