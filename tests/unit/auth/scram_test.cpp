// SCRAM-SHA-256, server side: RFC 7677's example exchange reproduced byte
// for byte, wrong passwords and unknown users failing at the proof (after a
// normal-looking server-first), malformed messages, and the credentials file.
#include <gtest/gtest.h>

#include "auth/crypto.hpp"
#include "auth/file_error.hpp"
#include "auth/scram.hpp"

using namespace petrel::auth;

namespace {
// RFC 7677 section 3: user "user", password "pencil".
constexpr const char* kClientFirst = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO";
constexpr const char* kServerNonce = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
constexpr const char* kServerFirst =
    "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
constexpr const char* kClientFinal =
    "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
constexpr const char* kServerFinal = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";

ScramFile rfc_file() {
  const auto salt = crypto::base64_decode("W22ZaJ0SNY7soEsUEjb6gQ==");
  return ScramFile::parse("user:" + ScramFile::make_entry("pencil", 4096, *salt) + "\n", "scram");
}
}  // namespace

TEST(Scram, ReproducesTheRfc7677Example) {
  const ScramFile file = rfc_file();
  ScramExchange x;
  std::string server_first, server_final;
  ASSERT_EQ(x.start(kClientFirst, &file, server_first, kServerNonce), std::nullopt);
  EXPECT_EQ(server_first, kServerFirst);
  EXPECT_EQ(x.user(), "user");
  ASSERT_EQ(x.finish(kClientFinal, server_final), std::nullopt);
  EXPECT_EQ(server_final, kServerFinal);
}

TEST(Scram, WrongPasswordAndUnknownUserFailAtTheProof) {
  const ScramFile file = ScramFile::parse("user:" + ScramFile::make_entry("other", 4096) + "\n", "scram");
  // The RFC's client proves "pencil"; this file holds another password for "user".
  ScramExchange x;
  std::string first, final_;
  ASSERT_EQ(x.start(kClientFirst, &file, first, kServerNonce), std::nullopt);
  EXPECT_EQ(x.finish(kClientFinal, final_), std::optional<std::string>("wrong password"));
  EXPECT_TRUE(final_.empty());
  // An unknown user gets a server-first (stable salt) and fails at the end.
  ScramExchange u1, u2;
  std::string f1, f2;
  ASSERT_EQ(u1.start("n,,n=nobody,r=abc", &file, f1), std::nullopt);
  ASSERT_EQ(u2.start("n,,n=nobody,r=abc", &file, f2), std::nullopt);
  EXPECT_EQ(f1.substr(f1.find(",s=")), f2.substr(f2.find(",s=")));
  const std::string nonce = f1.substr(2, f1.find(',') - 2);
  EXPECT_EQ(u1.finish("c=biws,r=" + nonce + ",p=" + crypto::base64_encode(std::string(32, 'x')), final_),
            std::optional<std::string>("unknown user"));
}

TEST(Scram, MalformedMessages) {
  const ScramFile file = rfc_file();
  std::string out;
  for (const char* bad : {"", "p=tls-unique,,n=user,r=x", "x,,n=user,r=x", "n,,r=x,n=user", "n,,n=user", "n,,n=,r=x",
                          "n,,n=us=er,r=x", "n,,n=user,r=x,m=ext", "n,b,n=user,r=x"})
    EXPECT_TRUE(ScramExchange().start(bad, &file, out)) << bad;
  ScramExchange x;
  ASSERT_EQ(x.start(kClientFirst, &file, out, kServerNonce), std::nullopt);
  for (const char* bad : {"c=biws,r=x", "p=abc", "c=eSws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=AAAA",
                          "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=AAAA"})
    EXPECT_TRUE(x.finish(bad, out)) << bad;
  // The saslname escapes.
  ScramExchange e;
  ASSERT_EQ(e.start("n,,n=a=2Cb=3Dc,r=x", &file, out), std::nullopt);
  EXPECT_EQ(e.user(), "a,b=c");
}

TEST(Scram, CredentialsFile) {
  auto error_of = [](std::string_view text) -> std::string {
    try {
      ScramFile::parse(text, "scram");
    } catch (const FileError& e) {
      return e.what();
    }
    return "";
  };
  EXPECT_EQ(error_of("alice:$7$101$x$y\n"), "scram:1: user 'alice': the entry must start with SCRAM-SHA-256$");
  EXPECT_EQ(error_of("# c\nalice:SCRAM-SHA-256$x:AAAA$AAAA:AAAA\n"),
            "scram:2: user 'alice': 'x' is not a valid iteration count");
  EXPECT_EQ(error_of("alice:SCRAM-SHA-256$4096:AAAA$AAAA:AAAA\n"),
            "scram:1: user 'alice': the keys are not 32 bytes of base64 each");
  EXPECT_EQ(error_of("alice\n"), "scram:1: expected 'user:SCRAM-SHA-256$...'");
  const std::string line = "bob:" + ScramFile::make_entry("pw", 10) + "\n";
  EXPECT_EQ(error_of(line + line), "scram:2: user 'bob' appears twice (first on line 1)");
  EXPECT_EQ(ScramFile::parse(line, "scram").find("bob")->iterations, 10u);
}
