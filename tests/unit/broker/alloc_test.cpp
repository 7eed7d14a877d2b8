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

// The budgets, as documented in docs/architecture.md ("Allocation budget").
// The fraction is the delivery queue's blocks, one per several messages.
constexpr double kQoS0Budget = 1.2;
constexpr double kQoS1Budget = 2.2;

// Heap allocations per message, publisher to one subscriber, in steady state.
double allocations_per_message(std::uint8_t qos) {
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
  counting = true;
  for (int i = kWarmup; i < kWarmup + kMessages; ++i) one(i);
  counting = false;
  return static_cast<double>(allocations.load()) / kMessages;
}

TEST(AllocationBudget, QoS0PublishToOneSubscriber) {
  const double per_message = allocations_per_message(0);
  std::printf("QoS 0: %.2f heap allocations per message (budget %.1f)\n", per_message, kQoS0Budget);
  EXPECT_LE(per_message, kQoS0Budget);
}

TEST(AllocationBudget, QoS1PublishToOneSubscriber) {
  const double per_message = allocations_per_message(1);
  std::printf("QoS 1: %.2f heap allocations per message (budget %.1f)\n", per_message, kQoS1Budget);
  EXPECT_LE(per_message, kQoS1Budget);
}

}  // namespace
}  // namespace petrel::broker
