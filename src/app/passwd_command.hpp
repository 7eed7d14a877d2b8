// `petrel passwd`: creates and edits password files, in the format of
// Mosquitto's mosquitto_passwd (so the two tools edit each other's files),
// writing PBKDF2-SHA512 (`$7$`) entries. docs/security.md has the usage.
#pragma once

#include <CLI/CLI.hpp>

namespace petrel::app {

// Registers the subcommand on `cli`; its exit status goes to `exit_code`.
void add_passwd_command(CLI::App& cli, int& exit_code);

}  // namespace petrel::app
