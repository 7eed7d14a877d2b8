#include "http/router.hpp"

namespace petrel::http {

namespace {

int hex(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::vector<std::string_view> split_path(std::string_view path) {
  std::vector<std::string_view> out;
  if (path.starts_with('/')) path.remove_prefix(1);
  if (path.empty()) return out;
  while (true) {
    const auto slash = path.find('/');
    out.push_back(path.substr(0, slash));
    if (slash == std::string_view::npos) break;
    path.remove_prefix(slash + 1);
  }
  return out;
}

}  // namespace

std::optional<std::string> percent_decode(std::string_view s, bool plus_is_space) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (c == '%') {
      if (i + 2 >= s.size()) return std::nullopt;
      const int hi = hex(s[i + 1]), lo = hex(s[i + 2]);
      if (hi < 0 || lo < 0) return std::nullopt;
      out.push_back(static_cast<char>(hi * 16 + lo));
      i += 2;
    } else if (c == '+' && plus_is_space) {
      out.push_back(' ');
    } else {
      out.push_back(c);
    }
  }
  return out;
}

std::optional<std::map<std::string, std::string>> parse_query(std::string_view query) {
  std::map<std::string, std::string> out;
  while (!query.empty()) {
    const auto amp = query.find('&');
    const std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
    if (pair.empty()) continue;
    const auto eq = pair.find('=');
    auto key = percent_decode(pair.substr(0, eq), true);
    auto value = percent_decode(eq == std::string_view::npos ? std::string_view{} : pair.substr(eq + 1), true);
    if (!key || !value) return std::nullopt;
    out[*key] = std::move(*value);
  }
  return out;
}

void Router::add(std::string method, std::string pattern, Handler handler, bool open) {
  Route r{std::move(method), {}, std::move(handler), open};
  for (auto seg : split_path(pattern)) r.segments.emplace_back(seg);
  routes_.push_back(std::move(r));
}

Router::Match Router::match(std::string_view method, std::string_view path) const {
  Match out;
  const auto segments = split_path(path);
  for (const auto& route : routes_) {
    std::map<std::string, std::string> params;
    bool ok = true;
    std::size_t i = 0;
    for (; i < route.segments.size() && ok; ++i) {
      const std::string& pat = route.segments[i];
      const bool param = pat.size() > 2 && pat.front() == '{' && pat.back() == '}';
      const bool rest = param && pat[pat.size() - 2] == '*';
      if (rest) {
        // The rest of the path, slashes included, at least one segment
        // (which may be empty: the topic "/a" is ".../{topic*}" = "/a").
        if (i >= segments.size()) {
          ok = false;
          break;
        }
        std::string joined;
        for (std::size_t j = i; j < segments.size(); ++j) {
          if (j > i) joined.push_back('/');
          joined.append(segments[j]);
        }
        auto decoded = percent_decode(joined);
        if (!decoded) {
          out.bad_escape = joined;
          return out;
        }
        params[pat.substr(1, pat.size() - 3)] = std::move(*decoded);
        i = segments.size();
        break;
      }
      if (i >= segments.size()) {
        ok = false;
        break;
      }
      if (param) {
        if (segments[i].empty()) {
          ok = false;
          break;
        }
        auto decoded = percent_decode(segments[i]);
        if (!decoded) {
          out.bad_escape = std::string(segments[i]);
          return out;
        }
        params[pat.substr(1, pat.size() - 2)] = std::move(*decoded);
      } else if (segments[i] != pat) {
        ok = false;
      }
    }
    if (!ok || i != segments.size()) continue;
    if (route.method != method) {
      out.allowed.push_back(route.method);
      continue;
    }
    out.handler = &route.handler;
    out.open = route.open;
    out.params = std::move(params);
    out.allowed.clear();
    return out;
  }
  return out;
}

}  // namespace petrel::http
