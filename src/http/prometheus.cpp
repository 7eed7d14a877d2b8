#include "http/prometheus.hpp"

#include <fmt/format.h>

#include <cmath>

namespace petrel::http {

std::string PrometheusWriter::escape_label(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out.push_back(c);
    }
  }
  return out;
}

std::string PrometheusWriter::escape_help(std::string_view v) {
  std::string out;
  for (char c : v) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out.push_back(c);
    }
  }
  return out;
}

std::string PrometheusWriter::format_number(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  // Integral values (counts, bytes, timestamps) print without exponent.
  if (v == std::floor(v) && std::fabs(v) < 9.007199254740992e15) return fmt::format("{:.0f}", v);
  return fmt::format("{}", v);
}

void PrometheusWriter::family(std::string_view name, std::string_view type, std::string_view help) {
  name_ = std::string(name);
  out_ += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, escape_help(help), name, type);
}

void PrometheusWriter::labels(const Labels& labels, std::string_view extra_name, std::string_view extra_value) {
  if (labels.empty() && extra_name.empty()) return;
  out_.push_back('{');
  bool first = true;
  for (const auto& [k, v] : labels) {
    if (!first) out_.push_back(',');
    first = false;
    out_ += fmt::format("{}=\"{}\"", k, escape_label(v));
  }
  if (!extra_name.empty()) {
    if (!first) out_.push_back(',');
    out_ += fmt::format("{}=\"{}\"", extra_name, escape_label(extra_value));
  }
  out_.push_back('}');
}

void PrometheusWriter::sample(const Labels& l, double value, std::string_view suffix) {
  out_ += name_;
  out_ += suffix;
  labels(l);
  out_.push_back(' ');
  out_ += format_number(value);
  out_.push_back('\n');
}

void PrometheusWriter::sample(const Labels& l, std::uint64_t value, std::string_view suffix) {
  out_ += name_;
  out_ += suffix;
  labels(l);
  out_ += fmt::format(" {}\n", value);
}

void PrometheusWriter::histogram(const Labels& l, std::span<const double> bounds, std::span<const std::uint64_t> buckets,
                                 double sum) {
  std::uint64_t cumulative = 0;
  for (std::size_t i = 0; i < bounds.size(); ++i) {
    cumulative += i < buckets.size() ? buckets[i] : 0;
    out_ += name_ + "_bucket";
    labels(l, "le", format_number(bounds[i]));
    out_ += fmt::format(" {}\n", cumulative);
  }
  if (buckets.size() > bounds.size()) cumulative += buckets[bounds.size()];
  out_ += name_ + "_bucket";
  labels(l, "le", "+Inf");
  out_ += fmt::format(" {}\n", cumulative);
  sample(l, sum, "_sum");
  sample(l, cumulative, "_count");
}

}  // namespace petrel::http
