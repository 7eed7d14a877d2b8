// Thread-local recycling of the hot path's short-lived blocks (messages,
// in-flight entries). glibc keeps 7 freed blocks per size per thread; a
// broker frees messages in bursts of hundreds (a window of acks, a batch of
// writes) and then pays malloc's slower bins on every one. These free lists
// keep up to 256 KiB per size class per thread (classes of 64 bytes up to
// 1 KiB; larger blocks go straight to operator new). A block freed on another
// thread than it was allocated on simply joins that thread's list.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <new>

namespace petrel::broker {

void* recycled_allocate(std::size_t size);
void recycled_deallocate(void* p, std::size_t size) noexcept;
// Blocks this thread has asked recycled_allocate for (the allocation budget
// test counts them with the calls to operator new).
std::uint64_t recycled_allocations() noexcept;

// An allocator for node-based containers on the hot path (std::map nodes).
template <class T>
struct RecyclingAllocator {
  using value_type = T;
  RecyclingAllocator() = default;
  template <class U>
  RecyclingAllocator(const RecyclingAllocator<U>&) noexcept {}
  T* allocate(std::size_t n) { return static_cast<T*>(recycled_allocate(n * sizeof(T))); }
  void deallocate(T* p, std::size_t n) noexcept { recycled_deallocate(p, n * sizeof(T)); }
  template <class U>
  bool operator==(const RecyclingAllocator<U>&) const noexcept {
    return true;
  }
};

}  // namespace petrel::broker
