// What every payload of the load generator starts with, and how a receiver
// turns the sequence numbers in it into loss, duplicate and reordering counts.
//
// The stamp (24 bytes, host byte order: sender and receiver run on one host,
// and the send time is CLOCK_MONOTONIC, which all processes there share):
//
//   offset  size  field
//        0     8  send time, ns (std::chrono::steady_clock)
//        8     4  publisher index (0..N-1 within its run)
//       12     4  sequence number of the message within its publisher, from 0 (wraps)
//       16     4  run id: random, one per generator process
//       20     4  magic 0x4C525450 ("PTRL" in little-endian memory)
//
// A publisher is (run id, publisher index), so two `petrel bench pub`
// processes publishing to the same topics are told apart.
#pragma once

#include <array>
#include <cstdint>
#include <cstring>
#include <string_view>
#include <vector>

namespace petrel::bench {

inline constexpr std::size_t kStamp = 24;
inline constexpr std::uint32_t kStampMagic = 0x4C525450;
// Publisher indices a receiver accepts (it keeps a slot per index seen).
inline constexpr std::uint32_t kMaxPublishers = 1u << 20;

struct Stamp {
  std::uint64_t sent_ns = 0;
  std::uint32_t publisher = 0;
  std::uint32_t sequence = 0;
  std::uint32_t run = 0;
};

// The fields that do not change from one message of a publisher to the next.
inline void write_stamp_constants(char* p, std::uint32_t publisher, std::uint32_t run) {
  const std::uint32_t magic = kStampMagic;
  std::memcpy(p + 8, &publisher, 4);
  std::memcpy(p + 16, &run, 4);
  std::memcpy(p + 20, &magic, 4);
}

// The fields that do.
inline void write_stamp(char* p, std::uint64_t sent_ns, std::uint32_t sequence) {
  std::memcpy(p, &sent_ns, 8);
  std::memcpy(p + 12, &sequence, 4);
}

// False when `payload` does not start with a stamp (or names an impossible publisher).
inline bool read_stamp(std::string_view payload, Stamp& s) {
  if (payload.size() < kStamp) return false;
  std::uint32_t magic;
  std::memcpy(&magic, payload.data() + 20, 4);
  if (magic != kStampMagic) return false;
  std::memcpy(&s.sent_ns, payload.data(), 8);
  std::memcpy(&s.publisher, payload.data() + 8, 4);
  std::memcpy(&s.sequence, payload.data() + 12, 4);
  std::memcpy(&s.run, payload.data() + 16, 4);
  return s.publisher < kMaxPublishers;
}

// Loss, duplicates and reordering in the messages one receiver gets from
// many publishers. Per publisher it keeps the highest sequence number seen
// and which of the 64 × Words before it arrived (a sliding window, as in
// IPsec's replay protection): a jump ahead counts the numbers skipped as
// lost; one of them arriving later is taken back from `lost` and counted out
// of order; a number seen before, or older than the window, is a duplicate.
// Counting starts at the first message seen from a publisher, so a receiver
// that joins late does not count what came before it (one of those arriving
// late is only out of order), and what never arrives after a publisher's
// last received message is not counted either (the receiver cannot know it
// was sent). Sequence numbers compare modulo 2^32. No allocation per
// message: a publisher's slot is allocated when it is first seen.
//
// One connection receives a publisher's messages in order (MQTT 5 section
// 4.6), so one word is plenty there; the members of a shared subscription
// get them over several connections, in no defined order between them.
template <unsigned Words>
class BasicSequenceTracker {
 public:
  static constexpr unsigned kWindow = 64 * Words;

  struct Counts {
    std::int64_t lost = 0;
    std::uint64_t duplicates = 0;
    std::uint64_t out_of_order = 0;
  };

  // Accounts for one message; returns what it changed (to add to totals).
  Counts record(std::uint32_t run, std::uint32_t publisher, std::uint32_t seq) {
    Counts d;
    Stream& st = stream(run, publisher);
    if (!st.seen) {
      st.seen = true;
      st.first = st.highest = seq;
      st.window = {};
      st.window[0] = 1;
      ++publishers_;
      return d;
    }
    const auto ahead = static_cast<std::int32_t>(seq - st.highest);
    if (ahead > 0) {
      d.lost = ahead - 1;
      shift(st.window, static_cast<std::uint32_t>(ahead));
      st.window[0] |= 1;
      st.highest = seq;
    } else {
      const auto back = static_cast<std::uint32_t>(-static_cast<std::int64_t>(ahead));
      if (static_cast<std::int32_t>(seq - st.first) < 0) {
        d.out_of_order = 1;  // before the first seen: never counted as lost
      } else if (back >= kWindow || test(st.window, back)) {
        d.duplicates = 1;
      } else {
        st.window[back / 64] |= std::uint64_t{1} << (back % 64);
        d.lost = -1;
        d.out_of_order = 1;
      }
    }
    totals_.lost += d.lost;
    totals_.duplicates += d.duplicates;
    totals_.out_of_order += d.out_of_order;
    return d;
  }

  const Counts& totals() const { return totals_; }
  // Publishers seen.
  std::uint64_t publishers() const { return publishers_; }
  // Calls f(run, publisher) for each of them.
  template <class F>
  void for_each_publisher(F&& f) const {
    for (const auto& r : runs_)
      for (std::size_t i = 0; i < r.streams.size(); ++i)
        if (r.streams[i].seen) f(r.id, static_cast<std::uint32_t>(i));
  }

 private:
  using Window = std::array<std::uint64_t, Words>;  // bit i: highest - i arrived
  struct Stream {
    std::uint32_t first = 0;
    std::uint32_t highest = 0;
    Window window{};
    bool seen = false;
  };
  struct Run {
    std::uint32_t id;
    std::vector<Stream> streams;  // by publisher index
  };

  static bool test(const Window& w, std::uint32_t bit) { return (w[bit / 64] >> (bit % 64)) & 1; }
  static void shift(Window& w, std::uint32_t by) {
    if (by >= kWindow) {
      w = {};
      return;
    }
    const unsigned words = by / 64, bits = by % 64;
    for (unsigned k = Words; k-- > 0;) {
      std::uint64_t v = 0;
      if (k >= words) {
        v = w[k - words] << bits;
        if (bits && k > words) v |= w[k - words - 1] >> (64 - bits);
      }
      w[k] = v;
    }
  }

  Stream& stream(std::uint32_t run, std::uint32_t publisher) {
    if (last_ >= runs_.size() || runs_[last_].id != run) {
      last_ = 0;
      while (last_ < runs_.size() && runs_[last_].id != run) ++last_;
      if (last_ == runs_.size()) runs_.push_back({run, {}});
    }
    auto& v = runs_[last_].streams;
    if (publisher >= v.size()) v.resize(publisher + 1);
    return v[publisher];
  }

  std::vector<Run> runs_;
  std::size_t last_ = 0;
  Counts totals_;
  std::uint64_t publishers_ = 0;
};

// One subscriber connection's view: 64 messages of reordering.
using SequenceTracker = BasicSequenceTracker<1>;
// A shared subscription's members together: 4096.
using GroupSequenceTracker = BasicSequenceTracker<64>;

}  // namespace petrel::bench
