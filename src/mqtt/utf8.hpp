// UTF-8 validation for MQTT strings (MQTT 3.1.1 1.5.3, MQTT 5.0 1.5.4).
#pragma once

#include <string_view>

namespace petrel::mqtt {

// True if `s` is well-formed UTF-8 (no overlong forms, no surrogates, nothing
// above U+10FFFF) and contains no U+0000: the MUSTs of both specifications.
bool valid_mqtt_utf8(std::string_view s);

// Well-formed UTF-8 (U+0000 allowed): for payloads with Payload Format
// Indicator 1.
bool valid_utf8(std::string_view s);

// True if `s` contains a control character: U+0000..U+001F, U+007F (DEL) or
// U+0080..U+009F (the C1 controls). Both specifications say these SHOULD NOT
// appear in a UTF-8 string and let the receiver treat a packet holding them
// as malformed (MQTT 5.0 1.5.4, 3.1.1 1.5.3); the codec does so for the
// strings that name things (decode options, codec.hpp). `s` is assumed to be
// valid UTF-8 (check that first): C1 controls are found by their two-byte
// encoding C2 80..C2 9F.
bool has_control_characters(std::string_view s);

}  // namespace petrel::mqtt
