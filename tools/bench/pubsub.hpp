// `petrel bench pub` and `petrel bench sub`: the two halves of a load test
// as separate commands, to run against any broker from one or two processes
// (or hosts: then only throughput and loss mean something, not latency).
// pub: N publishers on a per-client topic, QoS 0/1/2, a rate per client or
// flat out within a window of unacknowledged messages, for a duration or a
// count. sub: N subscribers on a per-client filter; end-to-end latency from
// the stamp in each payload, loss and duplicates from its sequence numbers
// (bench/stamp.hpp). See docs/cli.md.
#pragma once

#include <string>
#include <string_view>

#include "bench/client.hpp"

namespace petrel::bench {

// A topic or filter for client `index` (client id `client_id`): %i is the
// index, %c the client id, %% a '%'. Throws std::invalid_argument, naming
// the culprit, for any other '%'.
std::string expand_pattern(std::string_view pattern, unsigned index, std::string_view client_id);

int run_pub(Settings s);
int run_sub(Settings s);

}  // namespace petrel::bench
