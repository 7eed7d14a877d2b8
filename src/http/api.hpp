// The routes of the HTTP listener (docs/http-api.md): /health and /ready,
// /metrics, the JSON API under /api/v1/ and the dashboard's files. Each
// handler is a function of the Request; the broker is read through its
// operator queries, everything else through Operations.
#pragma once

#include <string>

#include "broker/broker.hpp"
#include "http/operations.hpp"
#include "http/options.hpp"
#include "http/router.hpp"

namespace petrel::http {

struct ServerStats;

struct ApiContext {
  broker::Broker& broker;
  const Operations& ops;
  const ServerStats& stats;
  const Options& options;
};

// Largest page of a listing.
constexpr std::size_t kMaxPage = 1000;

void add_routes(Router& router, ApiContext ctx);

// The Prometheus text of /metrics (metrics.cpp).
std::string render_metrics(const ApiContext& ctx);

}  // namespace petrel::http
