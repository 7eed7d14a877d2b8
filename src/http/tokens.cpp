#include "http/tokens.hpp"

#include <fmt/format.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace petrel::http {

std::vector<std::string> load_tokens(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  if (!file) throw std::runtime_error(fmt::format("cannot read token_file '{}': {}", path, std::strerror(errno)));
  // Bounded: a token file is small, and a path like /dev/zero must not
  // make the configuration check read forever.
  std::string text(kMaxTokenFileSize + 1, '\0');
  file.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<std::size_t>(file.gcount()));
  if (text.size() > kMaxTokenFileSize)
    throw std::runtime_error(fmt::format("token_file '{}' is larger than {} bytes", path, kMaxTokenFileSize));
  std::istringstream in(text);
  std::vector<std::string> tokens;
  std::string line;
  int number = 0;
  while (std::getline(in, line)) {
    ++number;
    const auto first = line.find_first_not_of(" \t\r");
    if (first == std::string::npos || line[first] == '#') continue;
    const auto last = line.find_last_not_of(" \t\r");
    std::string token = line.substr(first, last - first + 1);
    if (token.size() < kMinTokenLength)
      throw std::runtime_error(fmt::format("token_file '{}' line {}: a token must have at least {} characters",
                                           path, number, kMinTokenLength));
    tokens.push_back(std::move(token));
  }
  if (tokens.empty()) throw std::runtime_error(fmt::format("token_file '{}' holds no token", path));
  return tokens;
}

bool token_matches(const std::vector<std::string>& tokens, std::string_view given) {
  bool found = false;
  for (const auto& t : tokens) {
    unsigned diff = t.size() == given.size() ? 0u : 1u;
    for (std::size_t i = 0; i < t.size(); ++i)
      diff |= static_cast<unsigned char>(t[i]) ^ static_cast<unsigned char>(i < given.size() ? given[i] : 0);
    found = found || diff == 0;
  }
  return found;
}

}  // namespace petrel::http
