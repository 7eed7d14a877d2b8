#include "mqtt/topic.hpp"

namespace petrel::mqtt {

bool valid_topic_name(std::string_view topic, bool allow_empty) {
  if (topic.empty()) return allow_empty;
  if (topic.size() > 65535) return false;
  return topic.find_first_of("+#") == std::string_view::npos;
}

bool valid_topic_filter(std::string_view filter) {
  if (filter.empty() || filter.size() > 65535) return false;
  std::size_t start = 0;
  while (true) {
    const auto end = filter.find('/', start);
    const auto level = filter.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start);
    if (level.find_first_of("+#") != std::string_view::npos) {
      if (level.size() != 1) return false;
      if (level == "#" && end != std::string_view::npos) return false;
    }
    if (end == std::string_view::npos) return true;
    start = end + 1;
  }
}

std::optional<SharedFilter> parse_shared(std::string_view filter) {
  constexpr std::string_view prefix = "$share/";
  if (filter.substr(0, prefix.size()) != prefix) return std::nullopt;
  auto rest = filter.substr(prefix.size());
  auto slash = rest.find('/');
  if (slash == std::string_view::npos) return SharedFilter{};
  return SharedFilter{rest.substr(0, slash), rest.substr(slash + 1)};
}

bool valid_shared_filter(const SharedFilter& s) {
  if (s.group.empty() || s.group.find_first_of("+#/") != std::string_view::npos) return false;
  return valid_topic_filter(s.filter);
}

bool topic_matches(std::string_view filter, std::string_view topic) {
  if (!topic.empty() && topic[0] == '$' && !filter.empty() && (filter[0] == '+' || filter[0] == '#')) return false;
  std::size_t f = 0, t = 0;
  while (true) {
    const auto fe = filter.find('/', f);
    const auto flevel = filter.substr(f, fe == std::string_view::npos ? std::string_view::npos : fe - f);
    if (flevel == "#") return true;  // also matches the parent level ("a/#" matches "a")
    if (t > topic.size()) {
      return false;
    }
    const auto te = topic.find('/', t);
    const auto tlevel = topic.substr(t, te == std::string_view::npos ? std::string_view::npos : te - t);
    if (flevel != "+" && flevel != tlevel) return false;
    const bool f_last = fe == std::string_view::npos;
    const bool t_last = te == std::string_view::npos;
    if (f_last && t_last) return true;
    if (f_last) return false;
    if (t_last) {
      // Topic ended; filter may still end in "/#".
      return filter.substr(fe + 1) == "#";
    }
    f = fe + 1;
    t = te + 1;
  }
}

}  // namespace petrel::mqtt
