// Fuzz target: the JWT verifier on arbitrary tokens (HS256, with the claim
// binding and ACL claims on). Any input is accepted or refused with a
// reason; nothing else. An accepted token must really carry a valid HMAC,
// which random input almost never does, so the interesting paths are the
// decoders and the JSON handling before the signature check.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "auth/jwt.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const petrel::auth::JwtVerifier verifier = [] {
    petrel::auth::JwtSettings s;
    s.algorithm = "HS256";
    s.secret = "fuzz";
    s.claim = "sub";
    s.claim_equals = "username";
    s.acl_claims = true;
    return petrel::auth::JwtVerifier(s);
  }();
  const std::string token(reinterpret_cast<const char*>(data), size);
  auto r = verifier.verify(token, std::string("alice"), "client", 1'800'000'000);
  if (!r.grant && r.why.empty()) std::abort();
  (void)petrel::auth::JwtVerifier::looks_like_token(token);
  return 0;
}
