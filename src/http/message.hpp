// The HTTP layer's own request and response: what routing and the API
// handlers see, independent of Boost.Beast, so that they are plain functions
// from a Request to a Response and are unit-tested without sockets.
#pragma once

#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

namespace petrel::http {

struct Request {
  std::string method;  // "GET", "POST", ...
  std::string path;    // percent-encoded, without the query
  std::map<std::string, std::string> query;  // decoded
  std::string content_type;
  std::string body;
  std::map<std::string, std::string> params;  // from the route pattern, decoded
};

struct Response {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;

  static Response json(int status, const nlohmann::json& body);
  // {"error": {"status": 404, "message": "..."}}
  static Response error(int status, std::string_view message);
};

// The standard reason phrase of a status ("Not Found").
std::string_view reason_phrase(int status);

}  // namespace petrel::http
