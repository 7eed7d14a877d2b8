#include "broker/recycler.hpp"

#include <array>
#include <vector>

namespace petrel::broker {
namespace {

constexpr std::size_t kClassBytes = 64;
constexpr std::size_t kClasses = 16;  // 64 .. 1024 bytes
constexpr std::size_t kBytesPerClass = 256 * 1024;

struct Lists {
  std::array<std::vector<void*>, kClasses> free;
  ~Lists() {
    for (std::size_t c = 0; c < kClasses; ++c)
      for (void* p : free[c]) ::operator delete(p);
  }
};

Lists& lists() {
  thread_local Lists l;
  return l;
}

thread_local std::uint64_t allocations = 0;

std::size_t class_of(std::size_t size) { return (size + kClassBytes - 1) / kClassBytes - 1; }

}  // namespace

std::uint64_t recycled_allocations() noexcept { return allocations; }

void* recycled_allocate(std::size_t size) {
  ++allocations;
  const std::size_t c = class_of(size);
  if (c >= kClasses) return ::operator new(size);
  auto& list = lists().free[c];
  if (!list.empty()) {
    void* p = list.back();
    list.pop_back();
    return p;
  }
  return ::operator new((c + 1) * kClassBytes);
}

void recycled_deallocate(void* p, std::size_t size) noexcept {
  const std::size_t c = class_of(size);
  if (c >= kClasses) {
    ::operator delete(p);
    return;
  }
  auto& list = lists().free[c];
  if (list.size() * (c + 1) * kClassBytes >= kBytesPerClass) {
    ::operator delete(p);
    return;
  }
  try {
    list.push_back(p);
  } catch (...) {
    ::operator delete(p);
  }
}

}  // namespace petrel::broker
