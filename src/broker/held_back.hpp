// broker::HeldBack: bytes for a peer that wait for the session store's
// commits. With a durable store an acknowledgement leaves only once the
// commit that holds what it acknowledges is done; whatever is sent after it
// waits behind it, so that the peer sees everything in order. Each held
// entry starts at a journal ticket and collects the bytes sent until the
// next one.
//
// Used by broker::Client (network clients) and the bridge's in-process
// client. One wake-up at a time: only the front entry's ticket is waited for
// (Broker::wake_when_committed); the commit that releases it releases what it
// can, and release() names the next ticket to wait for. A waiter per held
// entry cost the store's writer a wake-up (a post to the owner's loop) per
// message.
//
// Threading: the owner's loop only.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace petrel::broker {

class HeldBack {
 public:
  bool empty() const { return held_.empty(); }
  std::size_t size() const { return held_.size(); }

  // Holds what is sent from now on until `ticket` is committed. True if the
  // caller must ask to be woken when it is (nothing was held before).
  bool hold(std::uint64_t ticket) {
    held_.push_back(Held{ticket, {}});
    return held_.size() == 1;
  }
  // Bytes sent while something is held: they wait behind it.
  void append(std::string_view bytes) { held_.back().bytes.append(bytes); }

  // The front entry's bytes, taken out regardless of its ticket.
  std::string take_front() {
    std::string bytes = std::move(held_.front().bytes);
    held_.erase(held_.begin());
    return bytes;
  }

  struct Released {
    std::size_t entries = 0;     // released by this call
    std::uint64_t wait_for = 0;  // the ticket to be woken for next; 0: nothing held
  };
  // Passes the bytes of every entry committed by `committed` to out(bytes),
  // in order, and drops them.
  template <class Out>
  Released release(std::uint64_t committed, Out out) {
    std::size_t n = 0;
    for (; n < held_.size() && held_[n].ticket <= committed; ++n)
      if (!held_[n].bytes.empty()) out(held_[n].bytes);
    held_.erase(held_.begin(), held_.begin() + static_cast<std::ptrdiff_t>(n));
    // A vector, not a deque: an empty std::deque allocates ~600 bytes, and
    // most connections never hold anything back; what they held goes.
    if (held_.empty()) held_.shrink_to_fit();
    return {n, n && !held_.empty() ? held_.front().ticket : 0};
  }

  void clear() { std::vector<Held>().swap(held_); }

 private:
  struct Held {
    std::uint64_t ticket;
    std::string bytes;
  };
  std::vector<Held> held_;
};

}  // namespace petrel::broker
