// Fault injection, for tests only: it shows that an unexpected exception is
// contained where it happens (one connection closed, a loop going on, the
// store's writer retrying) instead of ending the process.
//
// Builds with PETREL_FAULT_INJECTION (the test builds; never the release
// build scripts/run makes) read the environment variable PETREL_FAULT once:
// a comma-separated list of `point[=kind][@times]`, e.g.
//
//   PETREL_FAULT=packet:SUBSCRIBE=bad_alloc        every SUBSCRIBE handled throws std::bad_alloc
//   PETREL_FAULT=sys@2,store:write@1               $SYS publishing throws twice, one store commit fails
//
// Points: `packet:<TYPE>` (broker::Client, after decoding a packet of that
// type: CONNECT, PUBLISH, SUBSCRIBE, ...), `sys` (the housekeeping loop's
// $SYS publication), `store:write` (the durable store's commit, on its writer
// thread). Kinds: runtime_error (default), bad_alloc, length_error. Without
// PETREL_FAULT a check costs one load of a flag.
#pragma once

#include <string_view>

namespace petrel::fault {

#ifdef PETREL_FAULT_INJECTION
// Throws if PETREL_FAULT arms `point` (or `point:detail`, when `detail` is
// given) and it has throws left.
void check(std::string_view point, std::string_view detail = {});
#else
inline void check(std::string_view, std::string_view = {}) {}
#endif

}  // namespace petrel::fault
