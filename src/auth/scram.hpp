// SCRAM-SHA-256 (RFC 5802, RFC 7677), the server side, for MQTT 5 enhanced
// authentication (Authentication Method "SCRAM-SHA-256").
//
// The credentials file holds no password, only what RFC 5802 calls the
// salted credentials, one user per line in RFC 5803's form:
//
//   user:SCRAM-SHA-256$ITERATIONS:SALT$STOREDKEY:SERVERKEY     (base64)
//
// `petrel passwd --scram` writes them. An exchange is two round trips:
//
//   client-first  n,,n=USER,r=CNONCE             (CONNECT or AUTH 0x19)
//   server-first  r=CNONCE+SNONCE,s=SALT,i=ITER  (AUTH 0x18)
//   client-final  c=biws,r=NONCE,p=PROOF         (AUTH 0x18)
//   server-final  v=SIGNATURE                    (CONNACK, or AUTH 0x00 after a re-authentication)
//
// The proof is checked in constant time. A user who is not in the file gets
// a server-first like any other (a salt derived from the name with a secret
// key of the process, so it is stable across attempts) and fails at the
// proof: the exchange does not tell which users exist. Channel binding is
// not offered (gs2 flag 'p' is refused).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "auth/user_file.hpp"

namespace petrel::auth {

struct ScramCredential {
  std::uint32_t iterations = 0;
  std::string salt;
  std::string stored_key;
  std::string server_key;
  std::string encoded;  // the field as written in the file
  std::size_t line = 0;
};

class ScramFile {
 public:
  static constexpr std::uint32_t kDefaultIterations = 4096;  // RFC 7677's minimum
  // Throws FileError naming `source` and the line.
  static ScramFile parse(std::string_view text, const std::string& source);
  static ScramFile load(const std::string& path);
  const ScramCredential* find(std::string_view user) const;
  std::size_t size() const { return users_.size(); }
  // The credential field for `password`, with a fresh random salt (or `salt`).
  static std::string make_entry(std::string_view password, std::uint32_t iterations = kDefaultIterations,
                                std::string_view salt = {});

 private:
  UserMap<ScramCredential> users_;
};

ScramCredential decode_scram_credential(std::string_view field);  // throws std::invalid_argument

// One exchange, server side.
class ScramExchange {
 public:
  // Parses client-first; on success fills `server_first`. `find` looks the
  // user up (null: unknown, which fails later, at the proof). Returns an
  // error text, or nothing.
  // `server_nonce`: for tests (RFC 7677's example); empty: 18 random bytes.
  std::optional<std::string> start(std::string_view client_first, const ScramFile* credentials,
                                   std::string& server_first, std::string_view server_nonce = {});
  // Checks client-final; on success fills `server_final`. Returns an error
  // text, or nothing.
  std::optional<std::string> finish(std::string_view client_final, std::string& server_final);

  const std::string& user() const { return user_; }
  const std::string& credential() const { return credential_.encoded; }

 private:
  std::string user_;
  std::string gs2_header_;
  std::string client_first_bare_;
  std::string server_first_;
  std::string nonce_;
  ScramCredential credential_;
  bool known_ = false;
};

}  // namespace petrel::auth
