// Fuzz target: the configuration parser. Any input either parses or throws
// ConfigError with a message; nothing else.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "app/config.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    (void)petrel::app::parse_config(text, "fuzz.toml");
  } catch (const petrel::app::ConfigError&) {
  }
  return 0;
}
