// The dashboard: a single page (src/http/dashboard/index.html, its CSS and
// JavaScript) served at "/" by the HTTP listener. The files are compiled
// into the binary as they are (cmake/EmbedAssets.cmake); the page talks to
// the JSON API like any other client, with the bearer token the operator
// types in when the API asks for one.
#pragma once

#include <span>
#include <string_view>

namespace petrel::http {

struct Asset {
  std::string_view path;  // "/", "/dashboard.js", ...
  std::string_view content_type;
  std::string_view body;
};

std::span<const Asset> dashboard_assets();

}  // namespace petrel::http
