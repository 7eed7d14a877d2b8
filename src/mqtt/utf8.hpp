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

}  // namespace petrel::mqtt
