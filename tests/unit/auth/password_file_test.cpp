// The password file: Mosquitto's formats read (entries written by Debian's
// mosquitto_passwd 2.0.11 and by hand in the 1.x $6$ format), $7$ written,
// and every malformed line refused with its line number.
#include <gtest/gtest.h>

#include "auth/crypto.hpp"
#include "auth/file_error.hpp"
#include "auth/password_file.hpp"

using namespace petrel::auth;

namespace {
// Written by `mosquitto_passwd -b` (alice: "secret pw", bob: "hunter2") and a
// $6$ entry (carol: "oldpass", SHA-512 of password then salt).
constexpr const char* kFile =
    "# users\n"
    "alice:$7$101$t4nd/3XWuZaA4ScP$X/hBRKeHH3imkDOM890iEZnYM/tb0pYfVA4Hb85RQ5T0o2WG+wO9OF4rqgT9Dys8smegd4F69q/"
    "HFSg/4pkbeg==\n"
    "\n"
    "bob:$7$101$03dQ3s8p3Lrf/zy8$MUZxCD/pCK0EQfi9a5UDAW2pnBUMrJa8MWnqRnCFPBX6YtyJJiN+qndyHOtsb6PSwMuYhAMMB2BuM/"
    "yFvP7+2g==\n"
    "carol:$6$MDEyMzQ1Njc4OWFi$yENQmLDThG++6PC1+pa4teCd8OLLLZxsUU5gRmzOx2Xf41rnntsKT0ZaUPgaYw0ikEEWamHVWW/"
    "CNn6bXkDD/A==\n";

std::string error_of(std::string_view text) {
  try {
    PasswordFile::parse(text, "pw");
  } catch (const FileError& e) {
    return e.what();
  }
  return "";
}
}  // namespace

TEST(PasswordFile, ReadsMosquittoPasswdEntries) {
  auto f = PasswordFile::parse(kFile, "pw");
  EXPECT_EQ(f.size(), 3u);
  EXPECT_EQ(f.check("alice", "secret pw"), PasswordFile::Result::Match);
  EXPECT_EQ(f.check("alice", "secret pw "), PasswordFile::Result::Mismatch);
  EXPECT_EQ(f.check("bob", "hunter2"), PasswordFile::Result::Match);
  EXPECT_EQ(f.check("bob", "secret pw"), PasswordFile::Result::Mismatch);
  EXPECT_EQ(f.check("carol", "oldpass"), PasswordFile::Result::Match);
  EXPECT_EQ(f.check("carol", "OLDPASS"), PasswordFile::Result::Mismatch);
  EXPECT_EQ(f.check("dave", "hunter2"), PasswordFile::Result::UnknownUser);
  EXPECT_EQ(f.find("alice")->iterations, 101u);
  EXPECT_EQ(f.find("bob")->line, 4u);
}

TEST(PasswordFile, WritesPbkdf2EntriesItReadsBack) {
  const std::string hash = PasswordFile::make_hash("päss wörd", 1000);
  EXPECT_EQ(hash.rfind("$7$1000$", 0), 0u);
  auto f = PasswordFile::parse("eve:" + hash + "\n", "pw");
  EXPECT_EQ(f.check("eve", "päss wörd"), PasswordFile::Result::Match);
  EXPECT_EQ(f.check("eve", "pass word"), PasswordFile::Result::Mismatch);
  // A fresh salt each time.
  EXPECT_NE(PasswordFile::make_hash("x"), PasswordFile::make_hash("x"));
}

TEST(PasswordFile, Pbkdf2MatchesTheKnownVector) {
  // PBKDF2-HMAC-SHA512("password", "salt", 1 iteration, 64 bytes).
  const std::string got = crypto::pbkdf2(crypto::Digest::Sha512, "password", "salt", 1, 64);
  static const char* hex = "0123456789abcdef";
  std::string h;
  for (unsigned char c : got) {
    h += hex[c >> 4];
    h += hex[c & 15];
  }
  EXPECT_EQ(h,
            "867f70cf1ade02cff3752599a3a53dc4af34c7a669815ae5d513554e1c8cf252c02d470a285a0501bad999bfe943c08f050235d7"
            "d68b1da55e63f73b60a57fce");
}

TEST(PasswordFile, MalformedLinesNameTheLine) {
  EXPECT_EQ(error_of("# ok\nalice\n"), "pw:2: expected 'user:hash'");
  EXPECT_EQ(error_of(":$7$101$t4nd/3XWuZaA4ScP$abc\n"), "pw:1: the user name is empty");
  EXPECT_EQ(error_of("alice:\n"), "pw:1: user 'alice' has no password hash");
  EXPECT_EQ(error_of("alice:plaintext\n"), "pw:1: user 'alice': the hash must start with $6$ or $7$");
  EXPECT_EQ(error_of("alice:$5$abc$def\n"), "pw:1: user 'alice': unknown hash type '$5$' (petrel reads $6$ and $7$)");
  EXPECT_EQ(error_of("alice:$7$x$t4nd/3XWuZaA4ScP$AAAA\n"), "pw:1: user 'alice': 'x' is not a valid iteration count");
  EXPECT_EQ(error_of("alice:$7$0$t4nd/3XWuZaA4ScP$AAAA\n"), "pw:1: user 'alice': '0' is not a valid iteration count");
  EXPECT_EQ(error_of("alice:$7$101$c2FsdA==$AAAA\n"), "pw:1: user 'alice': the salt is not 12 bytes of base64");
  EXPECT_EQ(error_of("alice:$7$101$t4nd/3XWuZaA4ScP$AAAA\n"), "pw:1: user 'alice': the hash is not 64 bytes of base64");
  EXPECT_EQ(error_of("alice:$7$101$t4nd/3XWuZaA4ScP\n"),
            "pw:1: user 'alice': a $7$ hash has the form $7$ITERATIONS$SALT$HASH");
  const std::string line = std::string("alice:") + PasswordFile::make_hash("a") + "\n";
  EXPECT_EQ(error_of(line + "\n" + line), "pw:3: user 'alice' appears twice (first on line 1)");
}

TEST(PasswordFile, EditingKeepsCommentsAndOrder) {
  std::string text = "# header\nalice:$6$old\nbob:$7$x\n";
  EXPECT_TRUE(set_password_line(text, "alice", std::string("$7$new")));
  EXPECT_EQ(text, "# header\nalice:$7$new\nbob:$7$x\n");
  EXPECT_FALSE(set_password_line(text, "carol", std::string("$7$c")));
  EXPECT_EQ(text, "# header\nalice:$7$new\nbob:$7$x\ncarol:$7$c\n");
  EXPECT_TRUE(set_password_line(text, "bob", std::nullopt));
  EXPECT_EQ(text, "# header\nalice:$7$new\ncarol:$7$c\n");
  EXPECT_FALSE(set_password_line(text, "bob", std::nullopt));
}

TEST(Crypto, Base64IsStrict) {
  EXPECT_EQ(crypto::base64_decode("aGk="), std::optional<std::string>("hi"));
  EXPECT_EQ(crypto::base64_encode("hi"), "aGk=");
  EXPECT_FALSE(crypto::base64_decode("aGk"));
  EXPECT_FALSE(crypto::base64_decode("a Gk="));
  EXPECT_FALSE(crypto::base64_decode("a=Gk"));
  EXPECT_EQ(crypto::base64url_decode("_-8"), std::optional<std::string>("\xff\xef"));
  EXPECT_EQ(crypto::base64url_encode("\xff\xef"), "_-8");
  EXPECT_FALSE(crypto::base64url_decode("a+b"));
  EXPECT_TRUE(crypto::equal_constant_time("abc", "abc"));
  EXPECT_FALSE(crypto::equal_constant_time("abc", "abd"));
  EXPECT_FALSE(crypto::equal_constant_time("abc", "ab"));
}
