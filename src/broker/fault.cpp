#include "broker/fault.hpp"

#ifdef PETREL_FAULT_INJECTION

#include <atomic>
#include <cstdlib>
#include <limits>
#include <memory>
#include <new>
#include <stdexcept>
#include <string>
#include <vector>

namespace petrel::fault {
namespace {

struct Armed {
  std::string point;
  std::string kind;
  std::atomic<long> left;
  Armed(std::string p, std::string k, long n) : point(std::move(p)), kind(std::move(k)), left(n) {}
};

std::vector<std::unique_ptr<Armed>> parse(const char* env) {
  std::vector<std::unique_ptr<Armed>> out;
  if (!env) return out;
  std::string_view rest(env);
  while (!rest.empty()) {
    const auto comma = rest.find(',');
    std::string_view item = rest.substr(0, comma);
    rest = comma == std::string_view::npos ? std::string_view{} : rest.substr(comma + 1);
    long times = std::numeric_limits<long>::max();
    if (const auto at = item.find('@'); at != std::string_view::npos) {
      times = std::strtol(std::string(item.substr(at + 1)).c_str(), nullptr, 10);
      item = item.substr(0, at);
    }
    std::string kind = "runtime_error";
    if (const auto eq = item.find('='); eq != std::string_view::npos) {
      kind = std::string(item.substr(eq + 1));
      item = item.substr(0, eq);
    }
    if (!item.empty()) out.push_back(std::make_unique<Armed>(std::string(item), std::move(kind), times));
  }
  return out;
}

const std::vector<std::unique_ptr<Armed>>& armed() {
  static const auto points = parse(std::getenv("PETREL_FAULT"));
  return points;
}

}  // namespace

void check(std::string_view point, std::string_view detail) {
  const auto& points = armed();
  if (points.empty()) return;
  for (const auto& a : points) {
    const std::string_view p = a->point;
    const bool match = detail.empty() ? p == point
                                      : p.size() == point.size() + 1 + detail.size() && p.starts_with(point) &&
                                            p[point.size()] == ':' && p.ends_with(detail);
    if (!match) continue;
    if (a->left.fetch_sub(1, std::memory_order_relaxed) <= 0) return;
    if (a->kind == "bad_alloc") throw std::bad_alloc();
    if (a->kind == "length_error") throw std::length_error("injected fault at " + a->point);
    throw std::runtime_error("injected fault at " + a->point);
  }
}

}  // namespace petrel::fault

#endif
