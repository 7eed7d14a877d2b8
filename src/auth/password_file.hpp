// The Mosquitto password file: one `user:hash` line per user, where hash is
// `$7$ITERATIONS$SALT$HASH` (PBKDF2-HMAC-SHA512, what mosquitto_passwd 2.x
// writes) or `$6$SALT$HASH` (SHA-512 of password then salt, Mosquitto 1.x),
// SALT and HASH in standard base64 (12 and 64 bytes). Lines starting with
// '#' and blank lines are ignored.
//
// Unlike Mosquitto, which drops a line it cannot decode and carries on,
// petrel refuses the whole file and names the line: a typo must not lock a
// user out silently, nor must a reload half-apply.
//
// Lookups are a hash map; a check costs one PBKDF2 (or one SHA-512), whose
// result is compared in constant time. A user who is not in the file costs
// the same PBKDF2, so timing does not tell which users exist.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "auth/user_file.hpp"

namespace petrel::auth {

struct PasswordEntry {
  enum class Kind : std::uint8_t { Sha512, Pbkdf2Sha512 };
  Kind kind = Kind::Pbkdf2Sha512;
  std::uint32_t iterations = 0;
  std::string salt;
  std::string hash;
  std::string encoded;  // the hash field as written in the file
  std::size_t line = 0;
};

class PasswordFile {
 public:
  // mosquitto_passwd's defaults, so files written by either tool look alike.
  static constexpr std::uint32_t kDefaultIterations = 101;
  static constexpr std::size_t kSaltBytes = 12;

  // Throws FileError naming `source` and the line.
  static PasswordFile parse(std::string_view text, const std::string& source);
  static PasswordFile load(const std::string& path);

  enum class Result : std::uint8_t { Match, Mismatch, UnknownUser };
  Result check(std::string_view user, std::string_view password) const;
  const PasswordEntry* find(std::string_view user) const;
  std::size_t size() const { return users_.size(); }

  // A new `$7$` hash field for `password` with a fresh random salt.
  static std::string make_hash(std::string_view password, std::uint32_t iterations = kDefaultIterations);
  static bool verify(const PasswordEntry& e, std::string_view password);

 private:
  UserMap<PasswordEntry> users_;
};

// Decodes one hash field (`$7$...` or `$6$...`); throws std::invalid_argument saying why.
PasswordEntry decode_password_hash(std::string_view field);

// Editing a password file as text, keeping its comments and order: `user`'s
// line replaced by `user:hash`, or appended; with no hash, removed. Returns
// whether the user was there.
bool set_password_line(std::string& text, std::string_view user, const std::optional<std::string>& hash);

}  // namespace petrel::auth
