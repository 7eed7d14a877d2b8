// A writer of the Prometheus text exposition format, version 0.0.4: one
// "# HELP" and "# TYPE" line per metric family, then its samples, label
// values escaped (backslash, double quote, newline), numbers printed so that
// integers stay exact. Histograms take per-bucket counts and write the
// cumulative _bucket{le=...} series with +Inf, _sum and _count. It checks
// nothing about names beyond what it is given: the metric catalogue is in
// metrics.cpp and docs/operations.md. Pure; unit-tested, and the /metrics
// output is parsed by the official Python parser in tests/http.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace petrel::http {

class PrometheusWriter {
 public:
  using Labels = std::vector<std::pair<std::string_view, std::string_view>>;

  // Starts a family: type is "counter", "gauge" or "histogram".
  void family(std::string_view name, std::string_view type, std::string_view help);
  // A sample of the current family (`suffix` appended to its name: "_bucket").
  void sample(const Labels& labels, double value, std::string_view suffix = {});
  void sample(const Labels& labels, std::uint64_t value, std::string_view suffix = {});
  // The whole histogram of the current family: per-bucket (not cumulative)
  // counts for `bounds`, then one for above the last bound.
  void histogram(const Labels& labels, std::span<const double> bounds, std::span<const std::uint64_t> buckets,
                 double sum);

  const std::string& text() const { return out_; }
  std::string take() { return std::move(out_); }

  static std::string escape_label(std::string_view v);
  static std::string escape_help(std::string_view v);
  static std::string format_number(double v);

 private:
  void labels(const Labels& labels, std::string_view extra_name = {}, std::string_view extra_value = {});
  std::string out_;
  std::string name_;
};

}  // namespace petrel::http
