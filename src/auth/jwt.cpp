#include "auth/jwt.hpp"

#include <fmt/format.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <nlohmann/json.hpp>

#include "auth/crypto.hpp"
#include "auth/file_error.hpp"

namespace petrel::auth {

struct JwtVerifier::Key {
  EVP_PKEY* pkey = nullptr;
  ~Key() { EVP_PKEY_free(pkey); }
};

JwtVerifier::JwtVerifier(const JwtSettings& s) : settings_(s) {
  if (s.algorithm == "HS256") {
    secret_ = s.secret;
    if (!s.secret_file.empty()) {
      secret_ = read_file(s.secret_file);
      while (!secret_.empty() && (secret_.back() == '\n' || secret_.back() == '\r')) secret_.pop_back();
      if (secret_.empty()) throw FileError(s.secret_file, 0, "the JWT secret file is empty");
    }
    return;
  }
  const std::string pem = read_file(s.public_key_file);
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  EVP_PKEY* pkey = bio ? PEM_read_bio_PUBKEY(bio, nullptr, nullptr, nullptr) : nullptr;
  BIO_free(bio);
  if (!pkey) throw FileError(s.public_key_file, 0, "not a PEM public key (-----BEGIN PUBLIC KEY-----)");
  key_ = std::make_unique<Key>();
  key_->pkey = pkey;
  if (s.algorithm == "RS256") {
    if (!EVP_PKEY_is_a(pkey, "RSA")) throw FileError(s.public_key_file, 0, "RS256 needs an RSA public key");
  } else {
    char group[64] = {};
    std::size_t len = 0;
    if (!EVP_PKEY_is_a(pkey, "EC") ||
        !EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group, &len) ||
        std::string_view(group) != "prime256v1")
      throw FileError(s.public_key_file, 0, "ES256 needs an EC public key on curve P-256");
  }
}

JwtVerifier::~JwtVerifier() = default;

bool JwtVerifier::looks_like_token(std::string_view p) {
  int dots = 0;
  for (char c : p) {
    if (c == '.') {
      ++dots;
    } else if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_')) {
      return false;
    }
  }
  return dots == 2;
}

bool JwtVerifier::signature_valid(std::string_view signed_part, std::string_view signature) const {
  if (settings_.algorithm == "HS256")
    return crypto::equal_constant_time(crypto::hmac(crypto::Digest::Sha256, secret_, signed_part), signature);
  std::string der;
  if (settings_.algorithm == "ES256") {
    // JWS carries r || s (32 bytes each); OpenSSL verifies DER.
    if (signature.size() != 64) return false;
    ECDSA_SIG* sig = ECDSA_SIG_new();
    BIGNUM* r = BN_bin2bn(reinterpret_cast<const unsigned char*>(signature.data()), 32, nullptr);
    BIGNUM* s = BN_bin2bn(reinterpret_cast<const unsigned char*>(signature.data()) + 32, 32, nullptr);
    if (!sig || !r || !s || ECDSA_SIG_set0(sig, r, s) != 1) {
      BN_free(r);
      BN_free(s);
      ECDSA_SIG_free(sig);
      return false;
    }
    unsigned char* out = nullptr;
    const int n = i2d_ECDSA_SIG(sig, &out);
    ECDSA_SIG_free(sig);
    if (n <= 0) return false;
    der.assign(reinterpret_cast<char*>(out), static_cast<std::size_t>(n));
    OPENSSL_free(out);
    signature = der;
  }
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  bool ok = ctx && EVP_DigestVerifyInit(ctx, nullptr, EVP_sha256(), nullptr, key_->pkey) == 1 &&
            EVP_DigestVerify(ctx, reinterpret_cast<const unsigned char*>(signature.data()), signature.size(),
                             reinterpret_cast<const unsigned char*>(signed_part.data()), signed_part.size()) == 1;
  EVP_MD_CTX_free(ctx);
  return ok;
}

namespace {

std::optional<std::vector<std::string>> string_list(const nlohmann::json& claims, const std::string& name) {
  auto it = claims.find(name);
  if (it == claims.end()) return std::nullopt;
  std::vector<std::string> out;
  if (it->is_string()) {
    out.push_back(it->get<std::string>());
    return out;
  }
  if (!it->is_array()) return std::vector<std::string>{};
  for (const auto& e : *it)
    if (e.is_string()) out.push_back(e.get<std::string>());
  return out;
}

}  // namespace

JwtVerifier::Result JwtVerifier::verify(std::string_view token, const std::optional<std::string>& username,
                                        std::string_view client_id, std::int64_t now) const {
  Result r;
  auto fail = [&](Failure f, std::string why) {
    r.failure = f;
    r.why = std::move(why);
    return r;
  };
  const auto dot1 = token.find('.');
  const auto dot2 = dot1 == std::string_view::npos ? dot1 : token.find('.', dot1 + 1);
  if (dot2 == std::string_view::npos) return fail(Failure::Malformed, "token: not three dot-separated parts");
  const auto header_text = crypto::base64url_decode(token.substr(0, dot1));
  const auto payload_text = crypto::base64url_decode(token.substr(dot1 + 1, dot2 - dot1 - 1));
  const auto signature = crypto::base64url_decode(token.substr(dot2 + 1));
  if (!header_text || !payload_text || !signature) return fail(Failure::Malformed, "token: bad base64url");
  nlohmann::json header, claims;
  try {
    header = nlohmann::json::parse(*header_text);
    claims = nlohmann::json::parse(*payload_text);
  } catch (const nlohmann::json::exception&) {
    return fail(Failure::Malformed, "token: header or claims are not JSON");
  }
  if (!header.is_object() || !claims.is_object()) return fail(Failure::Malformed, "token: not JSON objects");
  const auto alg = header.find("alg");
  if (alg == header.end() || !alg->is_string() || alg->get<std::string>() != settings_.algorithm)
    return fail(Failure::Signature, fmt::format("token: algorithm is not {}", settings_.algorithm));
  if (!signature_valid(token.substr(0, dot2), *signature)) return fail(Failure::Signature, "token: bad signature");

  auto number = [&](const char* name) -> std::optional<std::int64_t> {
    auto it = claims.find(name);
    if (it == claims.end() || !it->is_number()) return std::nullopt;
    // Clamped: a huge or non-finite number must not overflow the conversion
    // (undefined behaviour) nor the arithmetic with the leeway below.
    const double v = it->get<double>();
    constexpr double limit = 1e15;  // ~31 million years
    if (!(v > -limit)) return static_cast<std::int64_t>(-limit);
    if (!(v < limit)) return static_cast<std::int64_t>(limit);
    return static_cast<std::int64_t>(v);
  };
  if (claims.contains("exp") && !number("exp")) return fail(Failure::Malformed, "token: exp is not a number");
  if (claims.contains("nbf") && !number("nbf")) return fail(Failure::Malformed, "token: nbf is not a number");
  const auto exp = number("exp");
  if (!exp && settings_.require_exp) return fail(Failure::Malformed, "token: no exp claim");
  if (exp && now >= *exp + settings_.leeway)
    return fail(Failure::Expired, fmt::format("token expired {} s ago", now - *exp));
  if (const auto nbf = number("nbf"); nbf && now + settings_.leeway < *nbf)
    return fail(Failure::NotYetValid, fmt::format("token not valid for another {} s", *nbf - now));
  if (!settings_.claim.empty()) {
    const auto it = claims.find(settings_.claim);
    const std::string_view expected = settings_.claim_equals == "client_id" ? client_id
                                      : username                           ? std::string_view(*username)
                                                                           : std::string_view();
    if (it == claims.end() || !it->is_string() || it->get<std::string>() != expected ||
        (settings_.claim_equals != "client_id" && !username))
      return fail(Failure::ClaimMismatch,
                  fmt::format("token: claim '{}' does not equal the {}", settings_.claim,
                              settings_.claim_equals == "client_id" ? "client id" : "user name"));
  }
  JwtGrant g;
  if (settings_.acl_claims) {
    auto pub = string_list(claims, settings_.publish_claim);
    auto sub = string_list(claims, settings_.subscribe_claim);
    g.has_acl = pub || sub;
    if (pub) g.publish = std::move(*pub);
    if (sub) g.subscribe = std::move(*sub);
  }
  r.grant = std::move(g);
  return r;
}

}  // namespace petrel::auth
