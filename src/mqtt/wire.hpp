// Primitive MQTT data types on the wire (section 1.5 of both specs): big-endian
// integers, the variable byte integer, length-prefixed strings and binary
// data. Reader is a bounds-checked cursor over bytes that are already in
// memory: it never trusts a declared length beyond what is there and throws
// ProtocolError(MalformedPacket) instead of reading past the end.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "mqtt/reason_code.hpp"
#include "mqtt/utf8.hpp"

namespace petrel::mqtt {

inline constexpr std::uint32_t kMaxVarInt = 268'435'455;

class Reader {
 public:
  explicit Reader(std::string_view data) : data_(data) {}

  std::size_t remaining() const { return data_.size() - pos_; }
  bool empty() const { return remaining() == 0; }

  std::uint8_t u8() {
    need(1);
    return static_cast<std::uint8_t>(data_[pos_++]);
  }
  // The next byte, not consumed (call only when remaining() > 0).
  std::uint8_t peek() const { return static_cast<std::uint8_t>(data_[pos_]); }
  std::uint16_t u16() {
    need(2);
    auto v = static_cast<std::uint16_t>((byte(pos_) << 8) | byte(pos_ + 1));
    pos_ += 2;
    return v;
  }
  std::uint32_t u32() {
    need(4);
    std::uint32_t v = (std::uint32_t{byte(pos_)} << 24) | (std::uint32_t{byte(pos_ + 1)} << 16) |
                      (std::uint32_t{byte(pos_ + 2)} << 8) | std::uint32_t{byte(pos_ + 3)};
    pos_ += 4;
    return v;
  }
  std::uint32_t varint() {
    std::uint32_t value = 0;
    for (int i = 0; i < 4; ++i) {
      std::uint8_t b = u8();
      value |= std::uint32_t{b & 0x7Fu} << (7 * i);
      if ((b & 0x80) == 0) return value;
    }
    malformed("variable byte integer longer than 4 bytes");
  }
  std::string_view bytes(std::size_t n) {
    need(n);
    auto v = data_.substr(pos_, n);
    pos_ += n;
    return v;
  }
  std::string binary() { return std::string(bytes(u16())); }
  // A UTF-8 encoded string: well-formed, no U+0000, no surrogates.
  std::string utf8() {
    auto s = bytes(u16());
    if (!valid_mqtt_utf8(s)) malformed("invalid UTF-8 string");
    return std::string(s);
  }
  std::string_view rest() { return bytes(remaining()); }

 private:
  void need(std::size_t n) const {
    if (remaining() < n) malformed("packet shorter than its fields");
  }
  unsigned byte(std::size_t i) const { return static_cast<std::uint8_t>(data_[i]); }

  std::string_view data_;
  std::size_t pos_ = 0;
};

class Writer {
 public:
  explicit Writer(std::string& out) : out_(out) {}

  void u8(std::uint8_t v) { out_.push_back(static_cast<char>(v)); }
  void u16(std::uint16_t v) {
    u8(static_cast<std::uint8_t>(v >> 8));
    u8(static_cast<std::uint8_t>(v));
  }
  void u32(std::uint32_t v) {
    u16(static_cast<std::uint16_t>(v >> 16));
    u16(static_cast<std::uint16_t>(v));
  }
  void varint(std::uint32_t v) {
    do {
      auto b = static_cast<std::uint8_t>(v & 0x7F);
      v >>= 7;
      if (v) b |= 0x80;
      u8(b);
    } while (v);
  }
  void raw(std::string_view s) { out_.append(s); }
  void string(std::string_view s) {
    u16(static_cast<std::uint16_t>(s.size()));
    raw(s);
  }
  std::size_t size() const { return out_.size(); }
  std::string& buffer() { return out_; }

 private:
  std::string& out_;
};

inline constexpr std::size_t varint_size(std::uint32_t v) {
  return v < 128 ? 1 : v < 16384 ? 2 : v < 2'097'152 ? 3 : 4;
}

}  // namespace petrel::mqtt
