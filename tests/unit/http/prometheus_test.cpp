// The Prometheus text writer: HELP/TYPE lines, label escaping, exact
// integers, histograms with cumulative buckets, +Inf, _sum and _count.
#include <gtest/gtest.h>

#include "http/prometheus.hpp"

namespace petrel::http {
namespace {

TEST(Prometheus, FamilyAndSamples) {
  PrometheusWriter w;
  w.family("petrel_x_total", "counter", "Things\nwith a \\ newline");
  w.sample({{"listener", "a\"b\\c\nd"}}, std::uint64_t{18446744073709551615ull});
  w.sample({}, 0.25);
  EXPECT_EQ(w.text(),
            "# HELP petrel_x_total Things\\nwith a \\\\ newline\n"
            "# TYPE petrel_x_total counter\n"
            "petrel_x_total{listener=\"a\\\"b\\\\c\\nd\"} 18446744073709551615\n"
            "petrel_x_total 0.25\n");
}

TEST(Prometheus, NumbersStayExactOrSpecial) {
  EXPECT_EQ(PrometheusWriter::format_number(1754000000.0), "1754000000");
  EXPECT_EQ(PrometheusWriter::format_number(0.0005), "0.0005");
  EXPECT_EQ(PrometheusWriter::format_number(-3), "-3");
  EXPECT_EQ(PrometheusWriter::format_number(1.0 / 0.0), "+Inf");
  EXPECT_EQ(PrometheusWriter::format_number(0.0 / 0.0), "NaN");
}

TEST(Prometheus, HistogramIsCumulative) {
  PrometheusWriter w;
  w.family("petrel_d_seconds", "histogram", "D");
  const double bounds[] = {0.001, 0.01};
  const std::uint64_t buckets[] = {2, 3, 1};
  w.histogram({{"k", "v"}}, bounds, buckets, 0.5);
  EXPECT_EQ(w.text(),
            "# HELP petrel_d_seconds D\n# TYPE petrel_d_seconds histogram\n"
            "petrel_d_seconds_bucket{k=\"v\",le=\"0.001\"} 2\n"
            "petrel_d_seconds_bucket{k=\"v\",le=\"0.01\"} 5\n"
            "petrel_d_seconds_bucket{k=\"v\",le=\"+Inf\"} 6\n"
            "petrel_d_seconds_sum{k=\"v\"} 0.5\n"
            "petrel_d_seconds_count{k=\"v\"} 6\n");
}

}  // namespace
}  // namespace petrel::http
