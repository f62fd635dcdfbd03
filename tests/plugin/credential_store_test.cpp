// Tests of the credential store's generation semantics.
#include "plugin/credential_store.hpp"

#include <gtest/gtest.h>

#include "test_support.hpp"

namespace pgbv::plugin {
namespace {

using Applied = CredentialStore::Applied;
using test::credentials;

TEST(CredentialStore, FirstCredentialsAreGenerationOne) {
    CredentialStore store;
    EXPECT_EQ(store.find("app"), nullptr);
    EXPECT_EQ(store.apply(credentials("app", 40, "u1", "p1", 999), 1234), Applied::kNewGeneration);
    const CurrentCredentials* c = store.find("app");
    ASSERT_NE(c, nullptr);
    EXPECT_EQ(c->generation, 1u);
    EXPECT_EQ(c->controller_generation, 40u);
    EXPECT_EQ(c->username, "u1");
    EXPECT_EQ(c->password.view(), "p1");
    EXPECT_EQ(c->expires_at, 999);
    EXPECT_EQ(c->received_at_us, 1234);
    EXPECT_EQ(store.size(), 1u);
}

TEST(CredentialStore, SameUserAndPasswordIsNoNewGeneration) {
    CredentialStore store;
    store.apply(credentials("app", 1, "u1", "p1", 100), 10);
    // A restarted controller (generation restarts) or a reconnect's snapshot.
    EXPECT_EQ(store.apply(credentials("app", 1, "u1", "p1", 100), 20), Applied::kUnchanged);
    EXPECT_EQ(store.apply(credentials("app", 7, "u1", "p1", 200), 30), Applied::kUnchanged);
    const CurrentCredentials* c = store.find("app");
    EXPECT_EQ(c->generation, 1u);
    EXPECT_EQ(c->controller_generation, 7u) << "reports must name the controller's latest number";
    EXPECT_EQ(c->expires_at, 200);
    EXPECT_EQ(c->received_at_us, 10) << "received_at belongs to the local generation";
}

TEST(CredentialStore, NewPasswordOrNewUserIsANewGeneration) {
    CredentialStore store;
    store.apply(credentials("app", 1, "u1", "p1"), 10);
    EXPECT_EQ(store.apply(credentials("app", 2, "u1", "p2"), 20), Applied::kNewGeneration);
    EXPECT_EQ(store.find("app")->generation, 2u);
    EXPECT_EQ(store.apply(credentials("app", 3, "u2", "p2"), 30), Applied::kNewGeneration);
    EXPECT_EQ(store.find("app")->generation, 3u);
    EXPECT_EQ(store.find("app")->received_at_us, 30);
    // Going back to an earlier pair is still a change from the current one.
    EXPECT_EQ(store.apply(credentials("app", 4, "u1", "p1"), 40), Applied::kNewGeneration);
    EXPECT_EQ(store.find("app")->generation, 4u);
    EXPECT_EQ(store.find("app")->password.view(), "p1");
}

TEST(CredentialStore, GenerationsArePerSet) {
    CredentialStore store;
    store.apply(credentials("a", 5, "u", "p"), 0);
    store.apply(credentials("a", 6, "u", "q"), 0);
    store.apply(credentials("b", 1, "u", "p"), 0);
    EXPECT_EQ(store.find("a")->generation, 2u);
    EXPECT_EQ(store.find("b")->generation, 1u);
    EXPECT_EQ(store.size(), 2u);
}

TEST(CredentialStore, OriginsOfCurrentAndOldGenerations) {
    CredentialStore store;
    store.apply(credentials("app", 11, "u1", "p1"), 0);
    store.apply(credentials("app", 12, "u2", "p2"), 0);
    store.apply(credentials("app", 13, "u2", "p2"), 0);  // unchanged, newer controller number

    auto old = store.origin("app", 1);
    ASSERT_TRUE(old.has_value());
    EXPECT_EQ(old->controller_generation, 11u);
    EXPECT_EQ(old->username, "u1");
    EXPECT_FALSE(old->current);

    auto cur = store.origin("app", 2);
    ASSERT_TRUE(cur.has_value());
    EXPECT_EQ(cur->controller_generation, 13u);
    EXPECT_EQ(cur->username, "u2");
    EXPECT_TRUE(cur->current);

    EXPECT_FALSE(store.origin("app", 3).has_value());
    EXPECT_FALSE(store.origin("other", 1).has_value());

    store.forget("app", 1);
    EXPECT_FALSE(store.origin("app", 1).has_value());
    store.forget("app", 2);  // the current generation is never forgotten
    EXPECT_TRUE(store.origin("app", 2).has_value());
}

TEST(CredentialStore, HistoryIsBounded) {
    CredentialStore store(3);
    for (int i = 1; i <= 10; ++i) {
        store.apply(credentials("app", static_cast<std::uint64_t>(i), "u", "p" + std::to_string(i)),
                    0);
    }
    EXPECT_EQ(store.find("app")->generation, 10u);
    for (std::uint64_t g = 1; g <= 6; ++g)
        EXPECT_FALSE(store.origin("app", g).has_value()) << g;
    for (std::uint64_t g = 7; g <= 10; ++g)
        EXPECT_TRUE(store.origin("app", g).has_value()) << g;
}

TEST(CredentialStore, ClearForgetsEverything) {
    CredentialStore store;
    store.apply(credentials("app", 1, "u", "p"), 0);
    store.clear();
    EXPECT_EQ(store.size(), 0u);
    EXPECT_EQ(store.find("app"), nullptr);
    EXPECT_EQ(store.apply(credentials("app", 2, "u", "p"), 0), Applied::kNewGeneration);
}

}  // namespace
}  // namespace pgbv::plugin
