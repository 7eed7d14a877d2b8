#include "auth/crypto.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <stdexcept>

namespace petrel::auth::crypto {
namespace {

const EVP_MD* md(Digest d) { return d == Digest::Sha256 ? EVP_sha256() : EVP_sha512(); }

const unsigned char* bytes(std::string_view s) { return reinterpret_cast<const unsigned char*>(s.data()); }

[[noreturn]] void openssl_failed(const char* what) { throw std::runtime_error(std::string("OpenSSL ") + what + " failed"); }

}  // namespace

std::string base64_encode(std::string_view in) {
  std::string out(4 * ((in.size() + 2) / 3), '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), bytes(in), static_cast<int>(in.size()));
  out.resize(static_cast<std::size_t>(n));
  return out;
}

std::optional<std::string> base64_decode(std::string_view in) {
  if (in.empty()) return std::string();
  if (in.size() % 4 != 0) return std::nullopt;
  // EVP_DecodeBlock accepts whitespace and returns padded lengths: check the
  // alphabet ourselves and drop the bytes the padding stands for.
  std::size_t pad = 0;
  for (std::size_t i = 0; i < in.size(); ++i) {
    const char c = in[i];
    const bool alpha = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '/';
    if (c == '=') {
      if (i + 2 < in.size()) return std::nullopt;
      ++pad;
    } else if (!alpha || pad) {
      return std::nullopt;
    }
  }
  std::string out(in.size() / 4 * 3, '\0');
  const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()), bytes(in), static_cast<int>(in.size()));
  if (n < 0 || static_cast<std::size_t>(n) < pad) return std::nullopt;
  out.resize(static_cast<std::size_t>(n) - pad);
  return out;
}

std::string base64url_encode(std::string_view in) {
  std::string s = base64_encode(in);
  while (!s.empty() && s.back() == '=') s.pop_back();
  for (char& c : s) c = c == '+' ? '-' : c == '/' ? '_' : c;
  return s;
}

std::optional<std::string> base64url_decode(std::string_view in) {
  if (in.size() % 4 == 1) return std::nullopt;
  std::string s(in);
  for (char& c : s) {
    if (c == '+' || c == '/' || c == '=') return std::nullopt;
    c = c == '-' ? '+' : c == '_' ? '/' : c;
  }
  while (s.size() % 4) s.push_back('=');
  return base64_decode(s);
}

std::string hash(Digest d, std::string_view data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  if (EVP_Digest(data.data(), data.size(), out, &n, md(d), nullptr) != 1) openssl_failed("EVP_Digest");
  return std::string(reinterpret_cast<char*>(out), n);
}

std::string hmac(Digest d, std::string_view key, std::string_view data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  if (!HMAC(md(d), key.data(), static_cast<int>(key.size()), bytes(data), data.size(), out, &n))
    openssl_failed("HMAC");
  return std::string(reinterpret_cast<char*>(out), n);
}

std::string pbkdf2(Digest d, std::string_view password, std::string_view salt, std::uint32_t iterations,
                   std::size_t length) {
  std::string out(length, '\0');
  if (PKCS5_PBKDF2_HMAC(password.data(), static_cast<int>(password.size()), bytes(salt), static_cast<int>(salt.size()),
                        static_cast<int>(iterations), md(d), static_cast<int>(length),
                        reinterpret_cast<unsigned char*>(out.data())) != 1)
    openssl_failed("PKCS5_PBKDF2_HMAC");
  return out;
}

std::string random_bytes(std::size_t n) {
  std::string out(n, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(out.data()), static_cast<int>(n)) != 1) openssl_failed("RAND_bytes");
  return out;
}

bool equal_constant_time(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  return a.empty() || CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

}  // namespace petrel::auth::crypto
