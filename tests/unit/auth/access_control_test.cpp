// auth::AccessControl in process: connect decisions, the ACL through the
// Authorizer interface, and that remembered decisions (the per-thread memo)
// never outlive what they depend on: a reload, a changed password entry.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "auth/access_control.hpp"
#include "broker/message.hpp"

using namespace petrel;

namespace {

struct Files {
  std::filesystem::path dir;
  Files() : dir(std::filesystem::temp_directory_path() / ("petrel-ac-test-" + std::to_string(::getpid()))) {
    std::filesystem::create_directories(dir);
  }
  ~Files() { std::filesystem::remove_all(dir); }
  std::string write(const std::string& name, const std::string& text) const {
    std::ofstream(dir / name) << text;
    return (dir / name).string();
  }
};

broker::ClientIdentity identity(const std::string& id, std::optional<std::string> user) {
  broker::ClientIdentity who;
  who.client_id = id;
  who.username = std::move(user);
  who.listener = "l";
  return who;
}

// Connects `who` with `password`; attaches the context like the core does.
mqtt::ReasonCode connect(auth::AccessControl& ac, broker::ClientIdentity& who, std::optional<std::string> password) {
  const mqtt::Properties props;
  auto d = ac.authenticate(broker::ConnectRequest{who, password, props}, nullptr);
  EXPECT_TRUE(d.has_value());
  who.auth = d->context;
  return d->reason;
}

}  // namespace

TEST(AccessControl, DecisionsFollowReloads) {
  Files f;
  auth::Options o;
  auth::PolicyOptions p;
  p.listener = "l";
  p.password_file = f.write("passwd", "alice:" + auth::PasswordFile::make_hash("pw") + "\n");
  p.acl_file = f.write("acl", "user alice\ntopic readwrite a/#\n");
  o.listeners.push_back(p);
  auth::AccessControl ac(o);
  EXPECT_TRUE(ac.checks_delivery());

  auto alice = identity("c1", "alice");
  ASSERT_EQ(connect(ac, alice, "pw"), mqtt::ReasonCode::Success);
  auto mallory = identity("c2", "alice");
  EXPECT_EQ(connect(ac, mallory, "nope"), mqtt::ReasonCode::BadUserNameOrPassword);
  auto anon = identity("c3", std::nullopt);
  EXPECT_EQ(connect(ac, anon, std::nullopt), mqtt::ReasonCode::NotAuthorized);

  const auto in_b_ptr = broker::Message::create("b/1", "x", 0, false, "c");
  const broker::Message& in_b = *in_b_ptr;
  for (int i = 0; i < 3; ++i) {  // asked again: the remembered answer is the same
    EXPECT_TRUE(ac.may_publish(alice, "a/1", 0, false));
    EXPECT_FALSE(ac.may_publish(alice, "b/1", 0, false));
    EXPECT_FALSE(ac.may_receive(alice, in_b));
    EXPECT_TRUE(ac.may_subscribe(alice, "a/#", 0));
    EXPECT_FALSE(ac.may_subscribe(alice, "#", 0));
  }
  // A new ACL: the same questions, new answers.
  f.write("acl", "user alice\ntopic readwrite b/#\n");
  ASSERT_EQ(ac.reload(), std::nullopt);
  EXPECT_FALSE(ac.may_publish(alice, "a/1", 0, false));
  EXPECT_TRUE(ac.may_publish(alice, "b/1", 0, false));
  EXPECT_TRUE(ac.may_receive(alice, in_b));
  // A bad file: the previous rules stay.
  f.write("acl", "user alice\ntopic readwrite b/#/x\n");
  const auto error = ac.reload();
  ASSERT_TRUE(error);
  EXPECT_NE(error->find(":2: 'b/#/x' is not a valid topic filter"), std::string::npos) << *error;
  EXPECT_TRUE(ac.may_publish(alice, "b/1", 0, false));
  // Alice's password changes: her connection is refused everything from now on.
  f.write("passwd", "alice:" + auth::PasswordFile::make_hash("new") + "\n");
  f.write("acl", "user alice\ntopic readwrite b/#\n");
  ASSERT_EQ(ac.reload(), std::nullopt);
  EXPECT_FALSE(ac.may_publish(alice, "b/1", 0, false));
  EXPECT_FALSE(ac.may_receive(alice, in_b));
  auto again = identity("c4", "alice");
  ASSERT_EQ(connect(ac, again, "new"), mqtt::ReasonCode::Success);
  EXPECT_TRUE(ac.may_publish(again, "b/1", 0, false));
  const auto metrics = ac.metrics();
  auto value = [&](const std::string& name) {
    for (const auto& [n, v] : metrics)
      if (n == name) return v;
    return std::uint64_t(-1);
  };
  EXPECT_EQ(value("auth/connect/accepted/password"), 2u);
  EXPECT_EQ(value("auth/connect/refused/bad_password"), 1u);
  EXPECT_EQ(value("auth/connect/refused/anonymous"), 1u);
  EXPECT_EQ(value("auth/reload_errors"), 1u);
  EXPECT_GE(value("auth/denied/revoked"), 2u);
}

TEST(AccessControl, RestoredSessionsAreCheckedByListenerAndUserName) {
  Files f;
  auth::Options o;
  auth::PolicyOptions p;
  p.listener = "l";
  p.acl_file = f.write("acl", "topic read public/#\nuser bob\ntopic read bob/#\n");
  p.allow_anonymous = true;
  o.listeners.push_back(p);
  auth::AccessControl ac(o);
  // No context: a session restored from the store.
  const auto bob = identity("b", "bob");
  const auto nobody = identity("n", std::nullopt);
  const auto m_ptr = broker::Message::create("bob/1", "x", 0, false, "c");
  const broker::Message& m = *m_ptr;
  EXPECT_TRUE(ac.may_receive(bob, m));
  EXPECT_FALSE(ac.may_receive(nobody, m));
  auto elsewhere = bob;
  elsewhere.listener = "gone";  // a listener no longer configured: [auth]'s rules (none: allowed)
  EXPECT_TRUE(ac.may_receive(elsewhere, m));
}
