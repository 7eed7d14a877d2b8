// Bearer tokens for the HTTP listener: read from token_file (one per line;
// blank lines and lines starting with '#' are skipped, surrounding spaces
// trimmed) and compared in constant time, so that a client cannot find a
// token byte by byte from response times.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace petrel::http {

// Shorter tokens are refused: a token is a password that cannot be rate
// limited per user.
constexpr std::size_t kMinTokenLength = 16;
constexpr std::size_t kMaxTokenFileSize = 1 << 20;

// Throws std::runtime_error saying what is wrong (unreadable, no token, a
// token too short).
std::vector<std::string> load_tokens(const std::string& path);

// Whether `given` equals one of `tokens`; each comparison takes the same
// time whatever the position of the first difference.
bool token_matches(const std::vector<std::string>& tokens, std::string_view given);

}  // namespace petrel::http
