// Fuzz target: the password file parser. Any input either parses or throws
// FileError with a message; a file that parses still parses once a user is
// added to it (what `petrel passwd` does).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "auth/file_error.hpp"
#include "auth/password_file.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  try {
    (void)petrel::auth::PasswordFile::parse(text, "fuzz-passwd");
  } catch (const petrel::auth::FileError&) {
    return 0;
  }
  // A valid $7$ hash (of "x"), fixed so the target stays deterministic.
  static const std::string hash =
      "$7$101$t4nd/3XWuZaA4ScP$X/hBRKeHH3imkDOM890iEZnYM/tb0pYfVA4Hb85RQ5T0o2WG+wO9OF4rqgT9Dys8smegd4F69q/"
      "HFSg/4pkbeg==";
  petrel::auth::set_password_line(text, "fuzz-user", hash);
  try {
    auto f = petrel::auth::PasswordFile::parse(text, "fuzz-passwd");
    if (!f.find("fuzz-user")) std::abort();
  } catch (const petrel::auth::FileError&) {
    std::abort();  // adding a user broke a valid file
  }
  return 0;
}
