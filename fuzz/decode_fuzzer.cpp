// Fuzz target: the packet decoder of each protocol version. The first input
// byte picks the version and the maximum packet size; the rest is a byte
// stream from a "client". Any ProtocolError is a correct answer; anything
// else (a crash, a sanitizer report, another exception) is a bug.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "mqtt/codec.hpp"

using namespace petrel::mqtt;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  static constexpr Version versions[] = {Version::V31, Version::V311, Version::V5};
  const Version v = versions[data[0] % 3];
  const std::uint32_t max = (data[0] & 0x80) ? 64 : 268'435'460;
  std::string_view bytes(reinterpret_cast<const char*>(data + 1), size - 1);
  FrameReader reader(max);
  // Feed in two pieces to exercise reassembly.
  const std::size_t cut = bytes.empty() ? 0 : (data[0] >> 2) % (bytes.size() + 1);
  try {
    reader.feed(bytes.substr(0, cut));
    bool first = true;
    auto drain = [&] {
      while (auto f = reader.next()) {
        if (first) {
          first = false;
          (void)decode_connect(*f);
        } else {
          (void)decode(*f, v);
        }
      }
    };
    drain();
    reader.feed(bytes.substr(cut));
    drain();
  } catch (const ProtocolError&) {
  }
  return 0;
}
