// JWT verification: each algorithm with keys made here (OpenSSL), expired
// and not-yet-valid tokens, algorithm confusion ("none", HS256 signed with
// the RSA public key), tampering, the claim binding and the ACL claims.
#include <gtest/gtest.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "auth/crypto.hpp"
#include "auth/file_error.hpp"
#include "auth/jwt.hpp"

using namespace petrel::auth;

namespace {

constexpr std::int64_t kNow = 1'800'000'000;

std::string b64(std::string_view s) { return crypto::base64url_encode(s); }

struct KeyPair {
  EVP_PKEY* key = nullptr;
  std::string public_pem;
  explicit KeyPair(const char* kind) {
    key = std::string_view(kind) == "RSA" ? EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", std::size_t{2048})
                                          : EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256");
    BIO* bio = BIO_new(BIO_s_mem());
    PEM_write_bio_PUBKEY(bio, key);
    char* data = nullptr;
    const long n = BIO_get_mem_data(bio, &data);
    public_pem.assign(data, static_cast<std::size_t>(n));
    BIO_free(bio);
  }
  ~KeyPair() { EVP_PKEY_free(key); }
  std::string sign(std::string_view data, bool ecdsa) const {
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    std::size_t len = 0;
    EVP_DigestSignInit(ctx, nullptr, EVP_sha256(), nullptr, key);
    EVP_DigestSign(ctx, nullptr, &len, reinterpret_cast<const unsigned char*>(data.data()), data.size());
    std::string sig(len, '\0');
    EVP_DigestSign(ctx, reinterpret_cast<unsigned char*>(sig.data()), &len,
                   reinterpret_cast<const unsigned char*>(data.data()), data.size());
    sig.resize(len);
    EVP_MD_CTX_free(ctx);
    if (!ecdsa) return sig;
    // DER -> r || s, 32 bytes each (JWS)
    const unsigned char* p = reinterpret_cast<const unsigned char*>(sig.data());
    ECDSA_SIG* es = d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(sig.size()));
    std::string raw(64, '\0');
    BN_bn2binpad(ECDSA_SIG_get0_r(es), reinterpret_cast<unsigned char*>(raw.data()), 32);
    BN_bn2binpad(ECDSA_SIG_get0_s(es), reinterpret_cast<unsigned char*>(raw.data()) + 32, 32);
    ECDSA_SIG_free(es);
    return raw;
  }
};

std::string file_with(const std::string& name, const std::string& text) {
  const auto path = std::filesystem::temp_directory_path() / ("petrel-jwt-test-" + name);
  std::ofstream(path) << text;
  return path.string();
}

std::string hs256(const std::string& claims, const std::string& secret, const std::string& alg = "HS256") {
  const std::string signed_part = b64(R"({"alg":")" + alg + R"(","typ":"JWT"})") + "." + b64(claims);
  return signed_part + "." + b64(crypto::hmac(crypto::Digest::Sha256, secret, signed_part));
}

JwtSettings hs(const std::string& secret = "s3cret") {
  JwtSettings s;
  s.algorithm = "HS256";
  s.secret = secret;
  return s;
}

}  // namespace

TEST(Jwt, Hs256AcceptsAValidTokenAndEnforcesTime) {
  JwtVerifier v(hs());
  const std::string user = "alice";
  EXPECT_TRUE(v.verify(hs256(R"({"exp":1800000100})", "s3cret"), user, "c", kNow).grant);
  auto expired = v.verify(hs256(R"({"exp":1799999999})", "s3cret"), user, "c", kNow);
  ASSERT_FALSE(expired.grant);
  EXPECT_EQ(expired.failure, JwtVerifier::Failure::Expired);
  EXPECT_EQ(expired.why, "token expired 1 s ago");
  auto early = v.verify(hs256(R"({"exp":1800000100,"nbf":1800000010})", "s3cret"), user, "c", kNow);
  EXPECT_EQ(early.failure, JwtVerifier::Failure::NotYetValid);
  EXPECT_FALSE(early.grant);
  auto no_exp = v.verify(hs256(R"({"sub":"alice"})", "s3cret"), user, "c", kNow);
  EXPECT_FALSE(no_exp.grant);
  EXPECT_EQ(no_exp.why, "token: no exp claim");
  auto settings = hs();
  settings.require_exp = false;
  settings.leeway = 30;
  JwtVerifier lenient(settings);
  EXPECT_TRUE(lenient.verify(hs256(R"({"sub":"alice"})", "s3cret"), user, "c", kNow).grant);
  EXPECT_TRUE(lenient.verify(hs256(R"({"exp":1799999990})", "s3cret"), user, "c", kNow).grant);  // within leeway
  // Huge numbers are clamped, not undefined behaviour.
  EXPECT_TRUE(v.verify(hs256(R"({"exp":1e300})", "s3cret"), user, "c", kNow).grant);
  EXPECT_FALSE(v.verify(hs256(R"({"exp":-1e300})", "s3cret"), user, "c", kNow).grant);
}

TEST(Jwt, RefusesForgeriesAndOtherAlgorithms) {
  JwtVerifier v(hs());
  const std::optional<std::string> user = "alice";
  EXPECT_EQ(v.verify(hs256(R"({"exp":1900000000})", "wrong"), user, "c", kNow).failure,
            JwtVerifier::Failure::Signature);
  // alg "none" with no signature
  const std::string none = b64(R"({"alg":"none"})") + "." + b64(R"({"exp":1900000000})") + ".";
  EXPECT_FALSE(v.verify(none, user, "c", kNow).grant);
  // the claims changed after signing
  std::string t = hs256(R"({"exp":1900000000,"sub":"bob"})", "s3cret");
  const auto d1 = t.find('.'), d2 = t.rfind('.');
  const std::string forged = t.substr(0, d1 + 1) + b64(R"({"exp":1900000000,"sub":"root"})") + t.substr(d2);
  EXPECT_EQ(v.verify(forged, user, "c", kNow).failure, JwtVerifier::Failure::Signature);
  for (const char* junk : {"", "a.b", "a.b.c.d", "!!.!!.!!", "e30.e30.e30", "bm90IGpzb24.e30.AA"})
    EXPECT_FALSE(v.verify(junk, user, "c", kNow).grant) << junk;
  EXPECT_TRUE(JwtVerifier::looks_like_token(hs256("{}", "x")));
  EXPECT_FALSE(JwtVerifier::looks_like_token("hunter2"));
  EXPECT_FALSE(JwtVerifier::looks_like_token("a.b.c d"));
}

TEST(Jwt, Rs256AndEs256WithPublicKeyFiles) {
  for (const char* kind : {"RSA", "EC"}) {
    const bool ec = std::string_view(kind) == "EC";
    KeyPair pair(kind);
    JwtSettings s;
    s.algorithm = ec ? "ES256" : "RS256";
    s.public_key_file = file_with(kind, pair.public_pem);
    JwtVerifier v(s);
    const std::string signed_part =
        b64(R"({"alg":")" + s.algorithm + R"("})") + "." + b64(R"({"exp":1900000000,"sub":"alice"})");
    const std::string token = signed_part + "." + b64(pair.sign(signed_part, ec));
    EXPECT_TRUE(v.verify(token, std::string("alice"), "c", kNow).grant) << kind;
    std::string tampered = token;
    tampered[tampered.size() - 3] = tampered[tampered.size() - 3] == 'A' ? 'B' : 'A';
    EXPECT_FALSE(v.verify(tampered, std::string("alice"), "c", kNow).grant) << kind;
    // HS256 with the public key as the secret (algorithm confusion): refused.
    EXPECT_EQ(v.verify(hs256(R"({"exp":1900000000})", pair.public_pem), std::string("alice"), "c", kNow).failure,
              JwtVerifier::Failure::Signature);
    std::remove(s.public_key_file.c_str());
  }
}

TEST(Jwt, KeyFilesAreCheckedAtLoad) {
  JwtSettings s;
  s.algorithm = "RS256";
  s.public_key_file = file_with("bad", "not a key\n");
  EXPECT_THROW(JwtVerifier{s}, FileError);
  KeyPair ec("EC");
  s.public_key_file = file_with("ec-for-rsa", ec.public_pem);
  try {
    JwtVerifier v(s);
    FAIL() << "an EC key accepted for RS256";
  } catch (const FileError& e) {
    EXPECT_NE(std::string(e.what()).find("RS256 needs an RSA public key"), std::string::npos) << e.what();
  }
}

TEST(Jwt, ClaimBindingAndAclClaims) {
  auto s = hs();
  s.claim = "sub";
  s.claim_equals = "username";
  s.acl_claims = true;
  JwtVerifier v(s);
  const std::string token = hs256(R"({"exp":1900000000,"sub":"alice","publish":["a/#"],"subscribe":"b/+"})", "s3cret");
  auto ok = v.verify(token, std::string("alice"), "c", kNow);
  ASSERT_TRUE(ok.grant);
  EXPECT_TRUE(ok.grant->has_acl);
  EXPECT_EQ(ok.grant->publish, std::vector<std::string>{"a/#"});
  EXPECT_EQ(ok.grant->subscribe, std::vector<std::string>{"b/+"});
  EXPECT_EQ(v.verify(token, std::string("bob"), "c", kNow).failure, JwtVerifier::Failure::ClaimMismatch);
  EXPECT_EQ(v.verify(token, std::nullopt, "c", kNow).failure, JwtVerifier::Failure::ClaimMismatch);
  s.claim_equals = "client_id";
  JwtVerifier by_id(s);
  EXPECT_TRUE(by_id.verify(hs256(R"({"exp":1900000000,"sub":"dev-7"})", "s3cret"), std::nullopt, "dev-7", kNow).grant);
  EXPECT_FALSE(by_id.verify(hs256(R"({"exp":1900000000,"sub":"dev-7"})", "s3cret"), std::nullopt, "dev-8", kNow).grant);
}
