#include "bridge/backoff.hpp"

#include <algorithm>

namespace petrel::bridge {

Backoff::ms Backoff::nominal() const {
  // Doubling from min, saturating at max (no overflow for any count).
  ms d = min_;
  for (unsigned i = 0; i < failures_ && d < max_; ++i) d = std::min<ms>(max_, d * 2);
  return std::min(d, max_);
}

Backoff::ms Backoff::jittered(ms d, double unit) const {
  unit = std::clamp(unit, 0.0, 1.0);
  const auto half = d.count() / 2;
  return ms(half + static_cast<ms::rep>(static_cast<double>(d.count() - half) * unit));
}

Backoff::ms Backoff::next_failure(double unit) {
  const ms d = nominal();
  ++failures_;
  return jittered(d, unit);
}

Backoff::ms Backoff::next_refusal(double unit) {
  ++failures_;
  return jittered(max_, unit);
}

}  // namespace petrel::bridge
