// petrel: an MQTT broker. `petrel` alone serves 127.0.0.1:1883 with defaults;
// `petrel --config FILE` runs from a TOML file; flags override the file.
// `petrel check-config FILE` validates a file without starting anything.
// `petrel pub` and `petrel sub` are the client commands (tools/cli/);
// `petrel passwd` edits password files (app/passwd_command.cpp).
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <csignal>
#include <cstdio>

#include "app/config.hpp"
#include "app/passwd_command.hpp"
#include "app/service.hpp"
#include "auth/file_error.hpp"
#include "bench/bench.hpp"
#include "cli/cli.hpp"

int main(int argc, char** argv) {
  // A peer that closes while petrel writes must cost an EPIPE on that
  // connection, not the process: OpenSSL writes TLS records with write(2),
  // which raises SIGPIPE (Asio's own sends use MSG_NOSIGNAL).
  std::signal(SIGPIPE, SIG_IGN);
  CLI::App cli{"petrel: a lightweight, multi-core MQTT broker (MQTT 3.1, 3.1.1 and 5.0)", "petrel"};
  std::string config_path;
  std::optional<std::uint16_t> port;
  std::optional<std::string> bind;
  std::optional<unsigned> threads;
  std::optional<std::string> log_level;
  cli.add_option("-c,--config", config_path, "TOML configuration file (see docs/configuration.md)");
  cli.add_option("-p,--port", port, "Serve one TCP listener on this port (replaces the file's listeners)");
  cli.add_option("-b,--bind", bind, "Address for --port (default 127.0.0.1)");
  cli.add_option("-t,--threads", threads, "Event loops (0 = one per core)");
  cli.add_option("-l,--log-level", log_level, "trace, debug, info, warn, error, critical or off")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "critical", "off"}));
  cli.set_version_flag("-V,--version", "petrel " PETREL_VERSION);
  int command_exit = 0;
  std::string check_path;
  auto* check = cli.add_subcommand("check-config", "Parse and validate a configuration file; exit 0 if it is good, "
                                                   "2 with FILE:LINE:COLUMN and what is wrong if not");
  check->add_option("file", check_path, "TOML configuration file")->required();
  check->callback([&] {
    try {
      petrel::app::load_config_file(check_path);
      std::printf("%s: configuration OK\n", check_path.c_str());
      command_exit = 0;
    } catch (const petrel::app::ConfigError& e) {
      std::fprintf(stderr, "petrel: configuration error: %s\n", e.what());
      command_exit = 2;
    }
  });
  petrel::cli::add_commands(cli, command_exit);
  petrel::bench::add_command(cli, command_exit);
  petrel::app::add_passwd_command(cli, command_exit);
  cli.require_subcommand(0, 1);
  try {
    cli.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help and --version exit 0; a bad command line exits 2, as the
    // documented exit codes of petrel and its subcommands say.
    const int code = cli.exit(e);
    return code == 0 ? 0 : 2;
  }
  if (cli.get_subcommands().size() == 1) return command_exit;

  petrel::app::Config config;
  try {
    config = config_path.empty() ? petrel::app::default_config() : petrel::app::load_config_file(config_path);
  } catch (const petrel::app::ConfigError& e) {
    std::fprintf(stderr, "petrel: configuration error: %s\n", e.what());
    return 2;
  }
  if (port || bind) {
    config.server.listeners.clear();
    config.listener_auth.clear();
    petrel::net::ListenerSpec spec;
    spec.name = "cli";
    spec.bind = bind.value_or("127.0.0.1");
    spec.port = port.value_or(1883);
    config.server.listeners.push_back(spec);
  }
  if (threads) config.server.threads = *threads;
  if (log_level) config.log_level = *log_level;
  try {
    petrel::app::resolve_auth(config);
  } catch (const petrel::app::ConfigError& e) {
    std::fprintf(stderr, "petrel: configuration error: %s\n", e.what());
    return 2;
  }

  spdlog::set_level(spdlog::level::from_str(config.log_level));
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");
  try {
    petrel::app::Service service(config);
    service.run();
  } catch (const petrel::auth::FileError& e) {
    // A password, ACL or credential file that cannot be used is a
    // configuration error like any other.
    spdlog::critical("configuration error: {}", e.what());
    return 2;
  } catch (const std::exception& e) {
    spdlog::critical("{}", e.what());
    return 1;
  }
  return 0;
}
