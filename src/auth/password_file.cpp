#include "auth/password_file.hpp"

#include <fmt/format.h>

#include <charconv>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "auth/crypto.hpp"
#include "auth/file_error.hpp"
#include "auth/text.hpp"

namespace petrel::auth {

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw FileError(path, 0, "cannot open the file");
  std::stringstream ss;
  ss << in.rdbuf();
  if (in.bad()) throw FileError(path, 0, "cannot read the file");
  return ss.str();
}

PasswordEntry decode_password_hash(std::string_view field) {
  PasswordEntry e;
  std::vector<std::string_view> parts = split(field, '$');
  // "$7$101$salt$hash" splits into "", "7", "101", "salt", "hash".
  if (parts.size() < 2 || !parts[0].empty()) throw std::invalid_argument("the hash must start with $6$ or $7$");
  std::size_t next = 2;
  if (parts[1] == "7") {
    if (parts.size() != 5) throw std::invalid_argument("a $7$ hash has the form $7$ITERATIONS$SALT$HASH");
    e.kind = PasswordEntry::Kind::Pbkdf2Sha512;
    const auto it = parts[2];
    auto [end, ec] = std::from_chars(it.data(), it.data() + it.size(), e.iterations);
    if (ec != std::errc() || end != it.data() + it.size() || e.iterations < 1)
      throw std::invalid_argument(fmt::format("'{}' is not a valid iteration count", it));
    next = 3;
  } else if (parts[1] == "6") {
    if (parts.size() != 4) throw std::invalid_argument("a $6$ hash has the form $6$SALT$HASH");
    e.kind = PasswordEntry::Kind::Sha512;
  } else {
    throw std::invalid_argument(fmt::format("unknown hash type '${}$' (petrel reads $6$ and $7$)", parts[1]));
  }
  auto salt = crypto::base64_decode(parts[next]);
  if (!salt || salt->size() != PasswordFile::kSaltBytes)
    throw std::invalid_argument("the salt is not 12 bytes of base64");
  auto hash = crypto::base64_decode(parts[next + 1]);
  if (!hash || hash->size() != 64) throw std::invalid_argument("the hash is not 64 bytes of base64");
  e.salt = std::move(*salt);
  e.hash = std::move(*hash);
  e.encoded = std::string(field);
  return e;
}

PasswordFile PasswordFile::parse(std::string_view text, const std::string& source) {
  PasswordFile f;
  f.users_ = parse_user_file<PasswordEntry>(text, source, "expected 'user:hash'",
                                            [](std::string_view user, std::string_view field) {
                                              if (user.size() > 65535)
                                                throw LineError("the user name is longer than 65535 bytes");
                                              if (field.empty())
                                                throw LineError(fmt::format("user '{}' has no password hash", user));
                                              return decode_password_hash(field);
                                            });
  return f;
}

PasswordFile PasswordFile::load(const std::string& path) { return parse(read_file(path), path); }

const PasswordEntry* PasswordFile::find(std::string_view user) const {
  auto it = users_.find(user);
  return it == users_.end() ? nullptr : &it->second;
}

bool PasswordFile::verify(const PasswordEntry& e, std::string_view password) {
  std::string computed;
  if (e.kind == PasswordEntry::Kind::Pbkdf2Sha512) {
    computed = crypto::pbkdf2(crypto::Digest::Sha512, password, e.salt, e.iterations, e.hash.size());
  } else {
    std::string data(password);
    data += e.salt;
    computed = crypto::hash(crypto::Digest::Sha512, data);
  }
  return crypto::equal_constant_time(computed, e.hash);
}

PasswordFile::Result PasswordFile::check(std::string_view user, std::string_view password) const {
  const PasswordEntry* e = find(user);
  if (!e) {
    // The same work as for a known user: the answer's timing must not tell
    // whether the user exists.
    static const std::string salt(kSaltBytes, '\0');
    (void)crypto::pbkdf2(crypto::Digest::Sha512, password, salt, kDefaultIterations, 64);
    return Result::UnknownUser;
  }
  return verify(*e, password) ? Result::Match : Result::Mismatch;
}

std::string PasswordFile::make_hash(std::string_view password, std::uint32_t iterations) {
  const std::string salt = crypto::random_bytes(kSaltBytes);
  const std::string hash = crypto::pbkdf2(crypto::Digest::Sha512, password, salt, iterations, 64);
  return fmt::format("$7${}${}${}", iterations, crypto::base64_encode(salt), crypto::base64_encode(hash));
}

bool set_password_line(std::string& text, std::string_view user, const std::optional<std::string>& hash) {
  std::string out;
  bool found = false;
  for_each_line(text, [&](std::string_view line) {
    const std::string_view t = trim(line);
    const auto colon = t.find(':');
    if (!t.empty() && t.front() != '#' && colon != std::string_view::npos && trim(t.substr(0, colon)) == user) {
      if (hash && !found) out += fmt::format("{}:{}\n", user, *hash);
      found = true;
      return;
    }
    out += line;
    out += '\n';
  });
  if (!found && hash) out += fmt::format("{}:{}\n", user, *hash);
  text = std::move(out);
  return found;
}

}  // namespace petrel::auth
