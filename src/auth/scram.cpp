#include "auth/scram.hpp"

#include <fmt/format.h>

#include <charconv>
#include <stdexcept>

#include "auth/crypto.hpp"
#include "auth/file_error.hpp"
#include "auth/text.hpp"

namespace petrel::auth {
namespace {

using crypto::Digest;

std::string xor_bytes(std::string_view a, std::string_view b) {
  std::string out(a.size(), '\0');
  for (std::size_t i = 0; i < a.size(); ++i) out[i] = static_cast<char>(a[i] ^ b[i]);
  return out;
}

// RFC 5802 5.1: saslname, where ',' and '=' are written =2C and =3D.
std::optional<std::string> decode_saslname(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '=') {
      if (s.substr(i, 3) == "=2C") {
        out += ',';
      } else if (s.substr(i, 3) == "=3D") {
        out += '=';
      } else {
        return std::nullopt;
      }
      i += 2;
    } else if (s[i] == ',') {
      return std::nullopt;
    } else {
      out += s[i];
    }
  }
  return out;
}

// A key of this process, for the salts of users who do not exist.
const std::string& process_secret() {
  static const std::string secret = crypto::random_bytes(32);
  return secret;
}

}  // namespace

ScramCredential decode_scram_credential(std::string_view field) {
  constexpr std::string_view prefix = "SCRAM-SHA-256$";
  if (field.substr(0, prefix.size()) != prefix) throw std::invalid_argument("the entry must start with SCRAM-SHA-256$");
  field.remove_prefix(prefix.size());
  const auto dollar = field.find('$');
  if (dollar == std::string_view::npos)
    throw std::invalid_argument("expected SCRAM-SHA-256$ITERATIONS:SALT$STOREDKEY:SERVERKEY");
  const std::string_view params = field.substr(0, dollar), keys = field.substr(dollar + 1);
  const auto c1 = params.find(':'), c2 = keys.find(':');
  if (c1 == std::string_view::npos || c2 == std::string_view::npos)
    throw std::invalid_argument("expected SCRAM-SHA-256$ITERATIONS:SALT$STOREDKEY:SERVERKEY");
  ScramCredential c;
  const std::string_view it = params.substr(0, c1);
  auto [end, ec] = std::from_chars(it.data(), it.data() + it.size(), c.iterations);
  if (ec != std::errc() || end != it.data() + it.size() || c.iterations < 1)
    throw std::invalid_argument(fmt::format("'{}' is not a valid iteration count", it));
  auto salt = crypto::base64_decode(params.substr(c1 + 1));
  auto stored = crypto::base64_decode(keys.substr(0, c2));
  auto server = crypto::base64_decode(keys.substr(c2 + 1));
  if (!salt || salt->empty()) throw std::invalid_argument("the salt is not base64");
  if (!stored || stored->size() != 32 || !server || server->size() != 32)
    throw std::invalid_argument("the keys are not 32 bytes of base64 each");
  c.salt = std::move(*salt);
  c.stored_key = std::move(*stored);
  c.server_key = std::move(*server);
  c.encoded = std::string(field.data() - prefix.size(), prefix.size() + field.size());
  return c;
}

ScramFile ScramFile::parse(std::string_view text, const std::string& source) {
  ScramFile f;
  f.users_ = parse_user_file<ScramCredential>(
      text, source, "expected 'user:SCRAM-SHA-256$...'",
      [](std::string_view, std::string_view field) { return decode_scram_credential(field); });
  return f;
}

ScramFile ScramFile::load(const std::string& path) { return parse(read_file(path), path); }

const ScramCredential* ScramFile::find(std::string_view user) const {
  auto it = users_.find(user);
  return it == users_.end() ? nullptr : &it->second;
}

std::string ScramFile::make_entry(std::string_view password, std::uint32_t iterations, std::string_view fixed_salt) {
  const std::string salt = fixed_salt.empty() ? crypto::random_bytes(16) : std::string(fixed_salt);
  const std::string salted = crypto::pbkdf2(Digest::Sha256, password, salt, iterations, 32);
  const std::string client_key = crypto::hmac(Digest::Sha256, salted, "Client Key");
  const std::string stored_key = crypto::hash(Digest::Sha256, client_key);
  const std::string server_key = crypto::hmac(Digest::Sha256, salted, "Server Key");
  return fmt::format("SCRAM-SHA-256${}:{}${}:{}", iterations, crypto::base64_encode(salt),
                     crypto::base64_encode(stored_key), crypto::base64_encode(server_key));
}

std::optional<std::string> ScramExchange::start(std::string_view msg, const ScramFile* credentials,
                                                std::string& server_first, std::string_view server_nonce) {
  // gs2-header: ("n" | "y" | "p=...") "," [authzid] ","
  if (msg.empty()) return "empty client-first message";
  if (msg[0] == 'p') return "channel binding is not offered";
  if ((msg[0] != 'n' && msg[0] != 'y') || msg.size() < 2 || msg[1] != ',') return "bad GS2 header";
  const auto second = msg.find(',', 2);
  if (second == std::string_view::npos) return "bad GS2 header";
  const std::string_view authzid = msg.substr(2, second - 2);
  if (!authzid.empty() && authzid.substr(0, 2) != "a=") return "bad GS2 header";
  gs2_header_ = std::string(msg.substr(0, second + 1));
  client_first_bare_ = std::string(msg.substr(second + 1));
  const auto fields = split(client_first_bare_, ',');
  if (fields.size() < 2 || fields[0].substr(0, 2) != "n=" || fields[1].substr(0, 2) != "r=")
    return "client-first message must be n=USER,r=NONCE";
  for (std::size_t i = 2; i < fields.size(); ++i)
    if (fields[i].substr(0, 2) == "m=") return "mandatory extension not supported";
  auto user = decode_saslname(fields[0].substr(2));
  if (!user || user->empty()) return "bad user name";
  const std::string_view cnonce = fields[1].substr(2);
  if (cnonce.empty()) return "empty nonce";
  for (char c : cnonce)
    if (c < 0x21 || c > 0x7e) return "bad nonce";
  user_ = std::move(*user);
  const ScramCredential* c = credentials ? credentials->find(user_) : nullptr;
  known_ = c != nullptr;
  if (c) {
    credential_ = *c;
  } else {
    credential_ = {};
    credential_.iterations = ScramFile::kDefaultIterations;
    credential_.salt = crypto::hmac(Digest::Sha256, process_secret(), user_).substr(0, 16);
  }
  nonce_ = std::string(cnonce) +
           (server_nonce.empty() ? crypto::base64url_encode(crypto::random_bytes(18)) : std::string(server_nonce));
  server_first_ = fmt::format("r={},s={},i={}", nonce_, crypto::base64_encode(credential_.salt), credential_.iterations);
  server_first = server_first_;
  return std::nullopt;
}

std::optional<std::string> ScramExchange::finish(std::string_view msg, std::string& server_final) {
  const auto proof_at = msg.rfind(",p=");
  if (proof_at == std::string_view::npos) return "client-final message has no proof";
  const std::string_view without_proof = msg.substr(0, proof_at);
  const auto fields = split(without_proof, ',');
  if (fields.size() < 2 || fields[0].substr(0, 2) != "c=" || fields[1].substr(0, 2) != "r=")
    return "client-final message must be c=...,r=...,p=...";
  auto binding = crypto::base64_decode(fields[0].substr(2));
  if (!binding || *binding != gs2_header_) return "channel binding data does not match";
  if (fields[1].substr(2) != nonce_) return "nonce does not match";
  auto proof = crypto::base64_decode(msg.substr(proof_at + 3));
  if (!proof || proof->size() != 32) return "bad proof";
  const std::string auth_message = client_first_bare_ + "," + server_first_ + "," + std::string(without_proof);
  if (!known_) return "unknown user";
  const std::string client_signature = crypto::hmac(Digest::Sha256, credential_.stored_key, auth_message);
  const std::string client_key = xor_bytes(*proof, client_signature);
  if (!crypto::equal_constant_time(crypto::hash(Digest::Sha256, client_key), credential_.stored_key))
    return "wrong password";
  server_final = "v=" + crypto::base64_encode(crypto::hmac(Digest::Sha256, credential_.server_key, auth_message));
  return std::nullopt;
}

}  // namespace petrel::auth
