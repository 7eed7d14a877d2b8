// The petrel CLI: `petrel pub` and `petrel sub`, clients for testing a broker
// by hand and from scripts, built on petrel's own codec (client::SyncClient).
//
// Exit codes (both commands):
//   0  success
//   1  could not connect (DNS, refused, TLS), or the connection was lost
//   2  bad command line
//   3  timed out (sub: -W passed before -C messages arrived)
//   4  the broker refused the connection (CONNACK reason code, printed)
//   5  the broker refused a publish or a subscription (reason code, printed)
#pragma once

#include <CLI/CLI.hpp>

namespace petrel::cli {

// Registers the subcommands on `app`; when one runs, its exit code is
// stored in `exit_code`.
void add_commands(CLI::App& app, int& exit_code);

}  // namespace petrel::cli
