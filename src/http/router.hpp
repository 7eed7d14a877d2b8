// Routing: method + path pattern -> handler. A pattern is a path whose
// segments are literal or a parameter: "{name}" matches one segment,
// "{name*}" the rest of the path (one or more segments, slashes included:
// retained topics). Each segment is percent-decoded after the path is split,
// so "%2F" inside a client id stays inside its segment. A path that matches
// a pattern under another method is 405 (with the methods it allows), one
// that matches none 404.
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "http/message.hpp"

namespace petrel::http {

// Percent-decoding of a path segment or query component ('+' is a space in
// queries only). Nothing if the encoding is broken.
std::optional<std::string> percent_decode(std::string_view s, bool plus_is_space = false);
// Splits "a=1&b=x%20y" into decoded pairs; nothing if an escape is broken.
std::optional<std::map<std::string, std::string>> parse_query(std::string_view query);

class Router {
 public:
  using Handler = std::function<Response(const Request&)>;
  // `open`: served without authentication (health checks, the dashboard's
  // static files).
  void add(std::string method, std::string pattern, Handler handler, bool open = false);

  struct Match {
    const Handler* handler = nullptr;  // null: no route
    bool open = false;
    std::map<std::string, std::string> params;
    std::vector<std::string> allowed;  // methods for this path, when the method did not match (405)
    std::string bad_escape;            // the segment whose percent-encoding is broken (400)
  };
  Match match(std::string_view method, std::string_view path) const;

 private:
  struct Route {
    std::string method;
    std::vector<std::string> segments;
    Handler handler;
    bool open;
  };
  std::vector<Route> routes_;
};

}  // namespace petrel::http
