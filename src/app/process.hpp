// Facts about the petrel process for /metrics (CPU time, memory, file
// descriptors), read from /proc/self. Linux only, as petrel is.
#pragma once

#include "http/operations.hpp"

namespace petrel::app {

http::ProcessStatus process_status(http::TimePoint started_at, unsigned event_loops);

}  // namespace petrel::app
