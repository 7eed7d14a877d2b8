// auth::FileError: a password, ACL, credential or key file that cannot be
// used, with the file, the line (0: the file as a whole) and what is wrong.
// petrel refuses to start with it (exit status 2) and, on SIGHUP, keeps the
// rules it had and logs it.
#pragma once

#include <fmt/format.h>

#include <stdexcept>
#include <string>

namespace petrel::auth {

class FileError : public std::runtime_error {
 public:
  FileError(const std::string& file, std::size_t line, const std::string& what)
      : std::runtime_error(line ? fmt::format("{}:{}: {}", file, line, what) : fmt::format("{}: {}", file, what)) {}
};

// The whole file as text; throws FileError if it cannot be read.
std::string read_file(const std::string& path);

}  // namespace petrel::auth
