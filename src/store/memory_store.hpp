// In-memory implementations of the core's storage interfaces
// (broker/persistence.hpp): nothing survives a restart. The retained store is
// also the read side of the durable store, which keeps its retained messages
// in memory and writes them through to disk.
#pragma once

#include <memory>

#include "broker/persistence.hpp"

namespace petrel::store {

std::unique_ptr<broker::RetainedStore> make_memory_retained_store();
std::unique_ptr<broker::SessionStore> make_memory_session_store();

}  // namespace petrel::store
