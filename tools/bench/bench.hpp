// petrel bench: the load generator. `conn` opens connections at a target
// rate; `fanin`, `fanout` and `pairs` measure end-to-end throughput and
// latency (timestamps in the payload) with closed-loop publishers, so the
// numbers are what a broker sustains, not what it buffers; `pub` and `sub`
// are the two halves of a load test as separate commands (bench/pubsub.hpp).
// Efficient on purpose: one event loop per thread, publishes patched into a
// pre-encoded template (no allocation per message), acks and latency parsed
// in place (bench/client.hpp). See docs/benchmarks.md and docs/cli.md.
#pragma once

#include <CLI/CLI.hpp>

namespace petrel::bench {

void add_command(CLI::App& app, int& exit_code);

}  // namespace petrel::bench
