// HttpTarget::parse: the URLs [auth.http] accepts and refuses. (The client
// itself is tested against a real HTTP service in tests/auth/test_http.py.)
#include <gtest/gtest.h>

#include "auth/http_client.hpp"

using petrel::auth::HttpTarget;

TEST(HttpTarget, ParsesUrls) {
  auto t = HttpTarget::parse("http://127.0.0.1:8080/mqtt/auth");
  EXPECT_FALSE(t.tls);
  EXPECT_EQ(t.host, "127.0.0.1");
  EXPECT_EQ(t.port, "8080");
  EXPECT_EQ(t.path, "/mqtt/auth");
  t = HttpTarget::parse("https://auth.example.com");
  EXPECT_TRUE(t.tls);
  EXPECT_EQ(t.port, "443");
  EXPECT_EQ(t.path, "/");
  t = HttpTarget::parse("http://[::1]:81/x?y=1");
  EXPECT_EQ(t.host, "::1");
  EXPECT_EQ(t.port, "81");
  EXPECT_EQ(t.path, "/x?y=1");
  EXPECT_EQ(HttpTarget::parse("http://h").port, "80");
  for (const char* bad : {"ftp://h/x", "http://", "http://:80/", "http://h:8x/", "http://[::1/", "h:80/x"})
    EXPECT_THROW(HttpTarget::parse(bad), std::invalid_argument) << bad;
}
