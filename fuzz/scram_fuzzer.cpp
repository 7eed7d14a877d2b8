// Fuzz target: the SCRAM-SHA-256 server's message parsers (client input
// before authentication) and the credentials file parser. The input is
// "client-first \0 client-final" (or a credentials file after a second \0);
// any input is answered with an error or a next message, nothing else, and
// only a correct proof (impossible here without the password) succeeds.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "auth/file_error.hpp"
#include "auth/scram.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const petrel::auth::ScramFile file = petrel::auth::ScramFile::parse(
      "user:SCRAM-SHA-256$1:W22ZaJ0SNY7soEsUEjb6gQ==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=:"
      "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n",
      "fuzz");
  const std::string input(reinterpret_cast<const char*>(data), size);
  const auto z1 = input.find('\0');
  const std::string first = input.substr(0, z1);
  const std::string rest = z1 == std::string::npos ? std::string() : input.substr(z1 + 1);
  const auto z2 = rest.find('\0');
  petrel::auth::ScramExchange x;
  std::string server_first, server_final;
  if (!x.start(first, &file, server_first, "fuzznonce")) {
    if (server_first.empty()) std::abort();
    if (!x.finish(rest.substr(0, z2), server_final)) std::abort();  // the stored key is all zeros: no proof matches
  }
  if (z2 != std::string::npos) {
    try {
      (void)petrel::auth::ScramFile::parse(rest.substr(z2 + 1), "fuzz-scram");
    } catch (const petrel::auth::FileError&) {
    }
  }
  return 0;
}
