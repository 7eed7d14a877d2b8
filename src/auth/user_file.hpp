// Files of `user:field` lines, one per user: Mosquitto's password file
// (password_file.hpp) and petrel's SCRAM credentials (scram.hpp). Both are
// read the same way: blank lines and lines starting with '#' are skipped, a
// user may appear once, and the first line that cannot be used refuses the
// whole file, naming the file and the line.
#pragma once

#include <fmt/format.h>

#include <cstddef>
#include <functional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>

#include "auth/file_error.hpp"
#include "auth/text.hpp"

namespace petrel::auth {

// Looked up by std::string_view without making a std::string.
struct UserNameHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
};
template <class Entry>
using UserMap = std::unordered_map<std::string, Entry, UserNameHash, std::equal_to<>>;

// A field decoder's complaint, used as the line's message as it is (a
// std::invalid_argument from the decoder is prefixed with "user 'NAME': ").
class LineError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Parses `text` (named `source` in errors). `decode(user, field)` makes an
// Entry (which has a `line` member) from a line's trimmed user and field;
// `expected` is the message for a line without a colon. Throws FileError.
template <class Entry, class Decode>
UserMap<Entry> parse_user_file(std::string_view text, const std::string& source, std::string_view expected,
                               Decode&& decode) {
  UserMap<Entry> users;
  std::size_t number = 0;
  for_each_line(text, [&](std::string_view line) {
    ++number;
    line = trim(line);
    if (line.empty() || line.front() == '#') return;
    const auto colon = line.find(':');
    if (colon == std::string_view::npos) throw FileError(source, number, std::string(expected));
    const std::string_view user = trim(line.substr(0, colon));
    if (user.empty()) throw FileError(source, number, "the user name is empty");
    Entry e;
    try {
      e = decode(user, trim(line.substr(colon + 1)));
    } catch (const LineError& why) {
      throw FileError(source, number, why.what());
    } catch (const std::invalid_argument& why) {
      throw FileError(source, number, fmt::format("user '{}': {}", user, why.what()));
    }
    e.line = number;
    auto [it, added] = users.emplace(std::string(user), std::move(e));
    if (!added)
      throw FileError(source, number, fmt::format("user '{}' appears twice (first on line {})", user, it->second.line));
  });
  return users;
}

}  // namespace petrel::auth
