// The few cryptographic primitives access control needs, each a thin
// wrapper over OpenSSL's EVP interface (no hand-written crypto): base64 in
// its two alphabets, SHA-256/512, HMAC, PBKDF2, random bytes, and a
// comparison whose time does not depend on where two secrets differ.
//
// Every function is thread-safe and throws nothing but std::bad_alloc;
// decoders report bad input with an empty optional.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace petrel::auth::crypto {

enum class Digest : std::uint8_t { Sha256, Sha512 };

// Standard base64 with padding (RFC 4648 section 4), as mosquitto_passwd writes it.
std::string base64_encode(std::string_view bytes);
// Strict: the standard alphabet, padding required, no whitespace.
std::optional<std::string> base64_decode(std::string_view text);
// The URL alphabet without padding (RFC 4648 section 5), as JWTs use it.
std::string base64url_encode(std::string_view bytes);
std::optional<std::string> base64url_decode(std::string_view text);

std::string hash(Digest d, std::string_view data);
std::string hmac(Digest d, std::string_view key, std::string_view data);
std::string pbkdf2(Digest d, std::string_view password, std::string_view salt, std::uint32_t iterations,
                   std::size_t length);
std::string random_bytes(std::size_t n);

// Whether a and b are equal, in time that depends only on their lengths.
bool equal_constant_time(std::string_view a, std::string_view b);

}  // namespace petrel::auth::crypto
