// A log-linear latency histogram (in the spirit of HdrHistogram): exact
// below 1024 µs, then 64 sub-buckets per power of two (about 1.6 % error),
// up to about 70 minutes. Recording is one increment; histograms of the
// load generator's threads are merged at the end.
#pragma once

#include <array>
#include <bit>
#include <cstdint>

namespace petrel::bench {

class Histogram {
 public:
  void record(std::uint64_t us) {
    ++counts_[index(us)];
    ++total_;
    if (us > max_) max_ = us;
  }
  void merge(const Histogram& o) {
    for (std::size_t i = 0; i < counts_.size(); ++i) counts_[i] += o.counts_[i];
    total_ += o.total_;
    if (o.max_ > max_) max_ = o.max_;
  }
  std::uint64_t count() const { return total_; }
  std::uint64_t max() const { return max_; }
  // The value below which `q` (0..1) of the recorded values fall.
  std::uint64_t percentile(double q) const {
    if (total_ == 0) return 0;
    const auto rank = static_cast<std::uint64_t>(q * static_cast<double>(total_ - 1)) + 1;
    std::uint64_t seen = 0;
    for (std::size_t i = 0; i < counts_.size(); ++i) {
      seen += counts_[i];
      if (seen >= rank) return value(i);
    }
    return max_;
  }

 private:
  static constexpr unsigned kLinear = 1024;  // exact below this
  static constexpr unsigned kSub = 64;       // sub-buckets per power of two above it
  static constexpr unsigned kPowers = 23;    // 2^10 .. 2^32 µs
  static std::size_t index(std::uint64_t v) {
    if (v < kLinear) return static_cast<std::size_t>(v);
    if (v >= (std::uint64_t{1} << 32)) v = (std::uint64_t{1} << 32) - 1;
    const unsigned p = static_cast<unsigned>(std::bit_width(v)) - 1;  // 10..31
    const auto sub = static_cast<unsigned>((v >> (p - 6)) & (kSub - 1));
    return kLinear + (p - 10) * kSub + sub;
  }
  static std::uint64_t value(std::size_t i) {
    if (i < kLinear) return i;
    const unsigned p = static_cast<unsigned>((i - kLinear) / kSub) + 10;
    const unsigned sub = static_cast<unsigned>((i - kLinear) % kSub);
    return (std::uint64_t{1} << p) + (std::uint64_t{sub} << (p - 6));
  }
  std::array<std::uint64_t, kLinear + kPowers * kSub> counts_{};
  std::uint64_t total_ = 0;
  std::uint64_t max_ = 0;
};

}  // namespace petrel::bench
