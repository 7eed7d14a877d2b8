// Fuzz target: the ACL file parser and its rule tree. Any input either
// parses or throws FileError; a parsed file answers every check (topics and
// filters taken from the input itself, clients with odd names) without
// crashing, and a topic check agrees with the equivalent filter check for a
// filter without wildcards.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "auth/acl.hpp"
#include "auth/file_error.hpp"
#include "auth/text.hpp"
#include "mqtt/topic.hpp"

using namespace petrel::auth;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  AclFile acl;
  try {
    acl = AclFile::parse(text, "fuzz-acl");
  } catch (const FileError&) {
    return 0;
  }
  static const std::string users[] = {"alice", "bob", "site/a", "u+"};
  const Subject subjects[] = {{"c1", nullptr}, {"dev/7", &users[0]}, {"c#", &users[1]}, {"x", &users[2]},
                              {"y", &users[3]}};
  std::vector<std::string> probes = {"a", "a/b", "$SYS/x", "#", "+/+", "a/#"};
  for_each_line(text, [&](std::string_view line) {
    std::string_view rest = line;
    next_word(rest);
    next_word(rest);
    if (!rest.empty() && probes.size() < 64) probes.emplace_back(rest);
  });
  for (const auto& who : subjects) {
    for (const auto& p : probes) {
      for (std::uint8_t access : {std::uint8_t(kRead), std::uint8_t(kWrite)}) {
        if (petrel::mqtt::valid_topic_name(p) && acl.check_topic(who, p, access) != acl.check_filter(who, p, access))
          std::abort();
        if (petrel::mqtt::valid_topic_filter(p)) (void)acl.check_filter(who, p, access);
      }
    }
  }
  return 0;
}
