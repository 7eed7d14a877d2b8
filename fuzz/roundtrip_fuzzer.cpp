// Fuzz target: the encoder round trip. Whatever decodes must encode to bytes
// that decode to the same packet (decode, encode, decode gives the same).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "mqtt/codec.hpp"

using namespace petrel::mqtt;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  const Version v = (data[0] & 1) ? Version::V5 : Version::V311;
  std::string_view bytes(reinterpret_cast<const char*>(data + 1), size - 1);
  FrameReader reader(268'435'460);
  reader.feed(bytes);
  try {
    auto f = reader.next();
    if (!f) return 0;
    Packet p = f->type() == PacketType::Connect ? Packet(decode_connect(*f)) : decode(*f, v);
    // CONNECT carries its own version.
    const Version ev = std::holds_alternative<Connect>(p) ? std::get<Connect>(p).version : v;
    const std::string encoded = encode(p, ev);
    if (encoded_size(p, ev) != encoded.size()) std::abort();
    FrameReader again(268'435'460);
    again.feed(encoded);
    auto g = again.next();
    if (!g || again.buffered() != 0) std::abort();
    Packet q = g->type() == PacketType::Connect ? Packet(decode_connect(*g)) : decode(*g, ev);
    if (!(p == q)) std::abort();
  } catch (const ProtocolError&) {
  }
  return 0;
}
