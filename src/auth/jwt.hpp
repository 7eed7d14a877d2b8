// JSON Web Tokens as passwords (RFC 7519, JWS compact form, RFC 7515).
//
// A client sends a token as its MQTT password; petrel verifies its
// signature with the configured algorithm only (HS256 with a shared secret,
// RS256 or ES256 with a public key file): the token's own `alg` header must
// name that algorithm, so neither "none" nor a switch from RS256 to HS256
// (signing with the public key as an HMAC secret) can get through. Then the
// time claims: `exp` (required unless require_exp = false) must be in the
// future and `nbf`, if present, in the past, each with `leeway` seconds of
// clock skew. Optionally one claim must equal the client's user name or
// client id, tying the token to who presents it. Optionally the token's ACL
// claims (lists of topic filters it may publish to and subscribe to) are
// enforced for the connection.
//
// Signatures are checked with OpenSSL's EVP interface (HMAC and
// EVP_DigestVerify); an ES256 signature (r || s, 64 bytes) is converted to
// the DER form OpenSSL verifies. Claims are parsed with nlohmann-json.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace petrel::auth {

struct JwtSettings {
  std::string algorithm;        // "HS256", "RS256" or "ES256"
  std::string secret;           // HS256: the shared secret ...
  std::string secret_file;      // ... or a file holding it (trailing newline dropped)
  std::string public_key_file;  // RS256 / ES256: the public key, PEM
  std::string claim;            // optional: this claim must equal ...
  std::string claim_equals;     // ... "username" or "client_id"
  bool require_exp = true;
  std::int64_t leeway = 0;      // seconds of clock skew allowed on exp and nbf
  bool acl_claims = false;      // enforce the ACL claims below
  std::string publish_claim = "publish";
  std::string subscribe_claim = "subscribe";
  bool enabled() const { return !algorithm.empty(); }
};

struct JwtGrant {
  bool has_acl = false;  // the token carried ACL claims (and acl_claims is on)
  std::vector<std::string> publish;
  std::vector<std::string> subscribe;
};

class JwtVerifier {
 public:
  // Reads the key or secret file; throws FileError (the file, what is wrong).
  explicit JwtVerifier(const JwtSettings& settings);
  ~JwtVerifier();

  enum class Failure : std::uint8_t { Malformed, Signature, Expired, NotYetValid, ClaimMismatch };
  struct Result {
    std::optional<JwtGrant> grant;  // set when the token is accepted
    Failure failure = Failure::Malformed;
    std::string why;  // for the log
  };
  Result verify(std::string_view token, const std::optional<std::string>& username, std::string_view client_id,
                std::int64_t now_unix_seconds) const;

  // Three base64url parts separated by dots: worth verifying as a token.
  static bool looks_like_token(std::string_view password);

 private:
  bool signature_valid(std::string_view signed_part, std::string_view signature) const;

  JwtSettings settings_;
  std::string secret_;
  struct Key;
  std::unique_ptr<Key> key_;
};

}  // namespace petrel::auth
