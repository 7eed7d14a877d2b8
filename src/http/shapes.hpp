// The JSON shapes of the operator API (docs/http-api.md): how a session, a
// subscription, a retained message, a listener and a store status look on
// the wire, plus the encodings they need (ISO 8601 times, base64). Pure
// functions, unit-tested in tests/unit/http/.
#pragma once

#include <chrono>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "broker/message.hpp"
#include "broker/queries.hpp"
#include "http/operations.hpp"

namespace petrel::http {

// "2026-12-06T22:07:18Z"; null for the epoch (a time never set).
nlohmann::json iso_time(std::chrono::system_clock::time_point t);

std::string base64_encode(std::string_view bytes);
// Nothing if `text` is not base64 (standard alphabet, padding optional).
std::optional<std::string> base64_decode(std::string_view text);

nlohmann::json session_json(const broker::SessionInfo& s);
nlohmann::json subscription_json(const broker::SubscriptionInfo& s, bool with_client_id);
// Text payloads (valid UTF-8) as "payload"; every payload as "payload_base64".
nlohmann::json message_json(const broker::Message& m);
// `now` decides days_until_expiry.
nlohmann::json certificate_json(const CertificateStatus& c, std::chrono::system_clock::time_point now);
nlohmann::json listener_json(const ListenerStatus& l, std::chrono::system_clock::time_point now);
nlohmann::json store_json(const StoreStatus& s);

}  // namespace petrel::http
