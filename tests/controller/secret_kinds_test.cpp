// Secret kinds other than dynamic roles, on a fake clock against the fake Vault: a static
// role's whole life (read, Vault rotates at ttl, read again, new generation with the same
// user, drain without revocation, a late rotation polled for a bounded time, 28P01 rereads
// rate-limited), KV version 2 (new version -> new generation, same -> nothing, missing or
// mistyped field, 404, deleted version, 28P01), status, and the [set.] configuration keys.
// The set runs alone with a fixed token, so nothing here depends on how tokens are got.

#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "controller/admin_protocol.hpp"
#include "controller/credential_set.hpp"
#include "controller/lease_policy.hpp"
#include "controller/vault_client.hpp"
#include "controller/vault_response.hpp"
#include "fake_clock.hpp"
#include "fake_vault.hpp"
#include "log_capture.hpp"

namespace pgbv::ctl::testing {
namespace {

using namespace std::chrono_literals;

// One token that never ends; `id` changes when the test "logs in again".
class FixedToken final : public TokenSource {
public:
    explicit FixedToken(const std::string& token) : token_(token) {}
    std::optional<Current> current() const override { return Current{id, &token_}; }
    Life life_of(std::uint64_t) const override { return Life{}; }
    void report_denied(std::uint64_t) override { ++denied; }

    std::uint64_t id = 1;
    int denied = 0;

private:
    Secret token_;
};

struct Push {
    Duration at;
    std::uint64_t generation;
    std::string username;
    std::string password;
    std::int64_t expires_at;
};

class SecretKinds : public ::testing::Test {
protected:
    void SetUp() override {
        vault_settings.retry_min = 1s;
        vault_settings.retry_max = 30s;
        vault.add_static_role("database/app-static", "app_user", 60s);
    }

    static SetSettings static_set() {
        SetSettings s;
        s.name = "app";
        s.kind = SecretKind::kStatic;
        s.role = "app-static";
        return s;
    }

    static SetSettings kv_set() {
        SetSettings s;
        s.name = "app";
        s.kind = SecretKind::kKv;
        s.mount = "secret";
        s.path = "apps/db";
        s.refresh_interval = 30s;
        return s;
    }

    void start(SetSettings s) {
        set = std::make_unique<CredentialSet>(
                CredentialSet::Deps{clock, jitter, client, tokens, vault_settings}, std::move(s),
                [this](const wire::Credentials& c) {
                    pushes.push_back(Push{clock.elapsed(), c.generation, c.username,
                                          std::string(c.password.view()), c.expires_at});
                    return std::vector<ClientId>{1};
                });
        set->start();
        clock.settle();
    }

    const Push& last() const { return pushes.back(); }
    int reads(const std::string& prefix) const { return vault.count("GET", prefix); }
    int lease_requests() const { return vault.count("PUT", "sys/leases/"); }
    const FakeVault::StaticRole& role() const {
        return vault.static_roles.at("database/app-static");
    }

    LogCapture logs;
    FakeClock clock;
    FakeVault vault{clock};
    Jitter jitter{42};
    VaultClient client{vault, clock, VaultClient::Options{FakeVault::kAddress, "", 5s}};
    FixedToken tokens{vault.issue_token(1000h, 2000h, true)};
    VaultSettings vault_settings;
    std::unique_ptr<CredentialSet> set;
    std::vector<Push> pushes;
};

// --- static roles ----------------------------------------------------------------------

TEST_F(SecretKinds, StaticRoleWholeLife) {
    start(static_set());
    ASSERT_EQ(pushes.size(), 1u) << logs.all();
    EXPECT_EQ(last().generation, 1u);
    EXPECT_EQ(last().username, "app_user");
    EXPECT_EQ(last().password, role().password);
    // Its password stops working when Vault rotates it: that is its expiry.
    EXPECT_EQ(last().expires_at, clock.wall_seconds() + 60);
    EXPECT_TRUE(
            logs.contains("info: set app: generation 1: user app_user from "
                          "database/static-creds/app-static"))
            << logs.all();

    // Nothing until Vault's rotation: no renewal, no re-read.
    clock.advance(59s);
    EXPECT_EQ(pushes.size(), 1u);
    EXPECT_EQ(reads("database/static-creds/"), 1);

    // Vault rotates at 60 s; the set reads again right after (ttl + lag).
    clock.advance(3s);
    ASSERT_EQ(pushes.size(), 2u) << logs.all();
    EXPECT_EQ(role().rotations, 2);
    EXPECT_EQ(last().generation, 2u);
    EXPECT_EQ(last().username, "app_user");  // same user: only the password changed
    EXPECT_EQ(last().password, role().password);
    EXPECT_NE(pushes[0].password, pushes[1].password);
    EXPECT_LE(last().at, 60s + policy::kStaticRotationLag + 100ms);
    EXPECT_EQ(set->draining(), 1u);
    EXPECT_TRUE(logs.contains("because Vault has rotated the password (its ttl ended)"))
            << logs.all();

    // The old generation drains and is forgotten: nothing to revoke.
    set->on_drained(1, 1, "app_user");
    clock.settle();
    EXPECT_EQ(set->draining(), 0u);
    EXPECT_TRUE(
            logs.contains("generation 1 (user app_user) drained (no lease: nothing to "
                          "revoke)"))
            << logs.all();

    // Ten more rotations: each is followed within the lag, and the held password is the
    // current one at all other times.
    for (int i = 0; i < 600; ++i) {
        clock.advance(1s);
        const auto since_rotation = to_duration(clock.now() - role().last_rotation);
        if (since_rotation > policy::kStaticRotationLag + 1s) {
            ASSERT_EQ(last().password, role().password)
                    << "at " << clock.elapsed().count() << " ms\n"
                    << logs.all();
        }
    }
    EXPECT_EQ(static_cast<int>(last().generation), role().rotations);
    EXPECT_EQ(lease_requests(), 0) << "a static role has no lease to renew or revoke";
    // One read per rotation (plus the first): no polling when Vault is on time.
    EXPECT_EQ(reads("database/static-creds/"), role().rotations);
    EXPECT_EQ(set->status().kind, "static");
    EXPECT_EQ(set->status().state, "serving");
}

TEST_F(SecretKinds, StaticRoleLateRotationIsPolledThenFollowed) {
    vault.add_static_role("database/app-static", "app_user", 60s, 4s);  // Vault 4 s late
    start(static_set());
    ASSERT_EQ(pushes.size(), 1u);
    clock.advance(61s + 500ms);  // read at 61 s: ttl 0, old password still there
    EXPECT_EQ(pushes.size(), 1u);
    EXPECT_EQ(reads("database/static-creds/"), 2);
    clock.advance(4s);  // Vault rotates at 64 s; the 1 s poll sees it
    ASSERT_EQ(pushes.size(), 2u) << logs.all();
    EXPECT_EQ(last().password, role().password);
    EXPECT_LE(last().at, 64s + policy::kStaticRotationPoll + 100ms);
    const int polled = reads("database/static-creds/");
    EXPECT_LE(polled, 2 + 4);
    // Then the next read follows Vault's next ttl, not the poll.
    clock.advance(30s);
    EXPECT_EQ(reads("database/static-creds/"), polled);
    EXPECT_FALSE(logs.contains("warning")) << logs.all();
}

TEST_F(SecretKinds, StaticRoleStuckRotationPollIsBounded) {
    vault.add_static_role("database/app-static", "app_user", 60s, 10min);  // never in time
    start(static_set());
    clock.advance(61s);
    const int at_due = reads("database/static-creds/");
    clock.advance(5min);
    const int polled = reads("database/static-creds/") - at_due;
    // About 30 one-second polls, then one read a minute.
    EXPECT_GE(polled, 25);
    EXPECT_LE(polled, 30 + 5 + 2);
    EXPECT_EQ(logs.count("warning: set app: Vault's rotation of database/static-creds/app-static "
                         "has been due for 30s"),
              1)
            << logs.all();
    EXPECT_EQ(pushes.size(), 1u);
    // When Vault finally rotates, the set follows within the fallback interval.
    clock.advance(5min + policy::kStaticRotationFallback);
    ASSERT_EQ(pushes.size(), 2u) << logs.all();
    EXPECT_EQ(last().password, role().password);
}

TEST_F(SecretKinds, StaticLoginFailedReadsAtOnceRateLimited) {
    start(static_set());
    clock.advance(20s);
    // Someone rotates the role out of schedule (vault write -f .../rotate-role/...): the old
    // password stops working and PgBouncer reports 28P01.
    vault.rotate_static_role("database/app-static");
    const int before = reads("database/static-creds/");
    set->on_login_failed(1, 1, "app_user", "28P01");
    clock.settle();
    EXPECT_EQ(reads("database/static-creds/"), before + 1);
    ASSERT_EQ(pushes.size(), 2u) << logs.all();
    EXPECT_EQ(last().password, role().password);
    EXPECT_TRUE(logs.contains("because PostgreSQL refused the current ones")) << logs.all();

    // A report for the old generation says nothing about the current one.
    set->on_login_failed(1, 1, "app_user", "28P01");
    clock.settle();
    EXPECT_EQ(reads("database/static-creds/"), before + 1);

    // Again within 10 s: ignored; after: read again.
    vault.rotate_static_role("database/app-static");
    clock.advance(2s);
    set->on_login_failed(1, 2, "app_user", "28P01");
    clock.settle();
    EXPECT_EQ(reads("database/static-creds/"), before + 1);
    clock.advance(policy::kLoginFailedRefetchInterval);
    set->on_login_failed(1, 2, "app_user", "28P01");
    clock.settle();
    EXPECT_EQ(reads("database/static-creds/"), before + 2);
    ASSERT_EQ(pushes.size(), 3u);
    EXPECT_EQ(last().password, role().password);
    EXPECT_EQ(lease_requests(), 0);
}

TEST_F(SecretKinds, StaticLoginFailedWithUnchangedPasswordPushesNothing) {
    start(static_set());
    clock.advance(10s);
    set->on_login_failed(1, 1, "app_user", "28P01");
    clock.settle();
    EXPECT_EQ(pushes.size(), 1u);
    EXPECT_TRUE(
            logs.contains("PostgreSQL refuses user app_user but Vault still reports the "
                          "same password"))
            << logs.all();
    // The scheduled read still follows Vault's rotation.
    clock.advance(52s);
    EXPECT_EQ(pushes.size(), 2u);
}

TEST_F(SecretKinds, StaticLoginFailedWhileVaultRotatesIsPolled) {
    // Vault's rotation is due (ttl 0) but its queue has not run yet when PgBouncer reports.
    vault.add_static_role("database/app-static", "app_user", 60s, 3s);
    start(static_set());
    clock.advance(60s + 200ms);
    set->on_login_failed(1, 1, "app_user", "28P01");
    clock.advance(4s);
    ASSERT_EQ(pushes.size(), 2u) << logs.all();
    EXPECT_EQ(last().password, role().password);
}

TEST_F(SecretKinds, LoginFailedDuringAReadGetsItsOwnRead) {
    vault.latency = 1s;
    start(static_set());
    clock.advance(2s);
    ASSERT_EQ(pushes.size(), 1u);
    set->rotate_now();  // a read in flight, answered with the password of now
    clock.advance(300ms);
    vault.rotate_static_role("database/app-static");
    set->on_login_failed(1, 1, "app_user", "28P01");
    clock.advance(3s);
    EXPECT_EQ(reads("database/static-creds/"), 3);
    ASSERT_EQ(pushes.size(), 2u) << logs.all();
    EXPECT_EQ(last().password, role().password);
}

TEST_F(SecretKinds, StaticRotateNowRereads) {
    start(static_set());
    set->rotate_now();
    clock.settle();
    EXPECT_EQ(reads("database/static-creds/"), 2);
    EXPECT_EQ(pushes.size(), 1u);
    EXPECT_TRUE(logs.contains("shows the same password")) << logs.all();
    vault.rotate_static_role("database/app-static");
    set->rotate_now();
    clock.settle();
    EXPECT_EQ(pushes.size(), 2u);
}

TEST_F(SecretKinds, StaticRoleIgnoresTokenChanges) {
    start(static_set());
    tokens.id = 2;  // logged in again: the password does not depend on the token
    set->on_token_update();
    clock.settle();
    EXPECT_EQ(reads("database/static-creds/"), 1);
}

TEST_F(SecretKinds, StaticUnknownRoleRetriesWithBackoff) {
    SetSettings s = static_set();
    s.role = "nope";
    start(std::move(s));
    EXPECT_TRUE(pushes.empty());
    EXPECT_TRUE(
            logs.contains("warning: set app: static role read (GET "
                          "/v1/database/static-creds/nope): HTTP 400: unknown role: nope"))
            << logs.all();
    EXPECT_EQ(set->status().state, "fetching");
    clock.advance(10s);
    EXPECT_GE(reads("database/static-creds/nope"), 3);
}

TEST_F(SecretKinds, OldGenerationForgottenWhenItsPluginLeaves) {
    start(static_set());
    clock.advance(62s);
    ASSERT_EQ(set->draining(), 1u);
    set->on_client_closed(1);
    EXPECT_EQ(set->draining(), 0u);
}

// --- KV version 2 ----------------------------------------------------------------------

TEST_F(SecretKinds, KvNewVersionMakesNewGeneration) {
    vault.put_kv("secret/apps/db", R"({"username":"u1","password":"p1","note":1})");
    start(kv_set());
    ASSERT_EQ(pushes.size(), 1u) << logs.all();
    EXPECT_EQ(last().username, "u1");
    EXPECT_EQ(last().password, "p1");
    EXPECT_EQ(last().expires_at, 0);
    EXPECT_EQ(set->status().source, "secret/data/apps/db v1");
    EXPECT_TRUE(logs.contains("generation 1: user u1 from secret/data/apps/db v1")) << logs.all();

    // Same version: nothing.
    clock.advance(31s);
    EXPECT_EQ(reads("secret/data/apps/db"), 2);
    EXPECT_EQ(pushes.size(), 1u);

    // A new version with a new user: generation 2 at the next read.
    vault.put_kv("secret/apps/db", R"({"username":"u2","password":"p2"})");
    clock.advance(30s);
    ASSERT_EQ(pushes.size(), 2u);
    EXPECT_EQ(last().generation, 2u);
    EXPECT_EQ(last().username, "u2");
    EXPECT_EQ(set->status().source, "secret/data/apps/db v2");
    EXPECT_TRUE(logs.contains("because refresh_interval has passed")) << logs.all();

    // Same user, new password (ALTER ROLE then a new version): generation 3.
    vault.put_kv("secret/apps/db", R"({"username":"u2","password":"p3"})");
    clock.advance(30s);
    ASSERT_EQ(pushes.size(), 3u);
    EXPECT_EQ(last().username, "u2");
    EXPECT_EQ(last().password, "p3");

    set->on_drained(1, 1, "u1");
    set->on_drained(1, 2, "u2");
    EXPECT_EQ(set->draining(), 0u);
    EXPECT_EQ(lease_requests(), 0);
}

TEST_F(SecretKinds, KvNewVersionWithSameValuesPushesNothing) {
    vault.put_kv("secret/apps/db", R"({"username":"u1","password":"p1"})");
    start(kv_set());
    vault.put_kv("secret/apps/db", R"({"username":"u1","password":"p1","comment":"x"})");
    clock.advance(31s);
    EXPECT_EQ(pushes.size(), 1u);
    EXPECT_EQ(set->status().source, "secret/data/apps/db v2");
    EXPECT_TRUE(logs.contains("is now version 2 with the same user and password")) << logs.all();
}

TEST_F(SecretKinds, KvCustomFieldNames) {
    vault.put_kv("kv2/team/x", R"({"user":"u9","pass":"p9","username":"wrong"})");
    SetSettings s = kv_set();
    s.mount = "kv2";
    s.path = "team/x";
    s.username_field = "user";
    s.password_field = "pass";
    start(std::move(s));
    ASSERT_EQ(pushes.size(), 1u) << logs.all();
    EXPECT_EQ(last().username, "u9");
    EXPECT_EQ(last().password, "p9");
}

TEST_F(SecretKinds, KvMissingFieldNamesSetPathAndField) {
    vault.put_kv("secret/apps/db", R"({"user":"u1","password":"p1"})");
    start(kv_set());
    EXPECT_TRUE(pushes.empty());
    EXPECT_TRUE(logs.contains(
            "warning: set app: KV read (GET /v1/secret/data/apps/db): the secret (version 1) "
            "has no field \"username\" (username_field)"))
            << logs.all();
    EXPECT_NE(set->status().last_error.find("no field \"username\""), std::string::npos);
    // Fixed in Vault: picked up at the next retry.
    vault.put_kv("secret/apps/db", R"({"username":"u1","password":"p1"})");
    clock.advance(5s);
    ASSERT_EQ(pushes.size(), 1u) << logs.all();
    EXPECT_EQ(set->status().last_error, "");
}

TEST_F(SecretKinds, KvNonStringFieldIsAnError) {
    vault.put_kv("secret/apps/db", R"({"username":"u1","password":12345})");
    start(kv_set());
    EXPECT_TRUE(pushes.empty());
    EXPECT_TRUE(
            logs.contains("field \"password\" (password_field) of the secret (version 1) is a "
                          "number, not a string"))
            << logs.all();
    EXPECT_FALSE(logs.contains("12345"));
}

TEST_F(SecretKinds, KvMissingSecretIs404Error) {
    start(kv_set());
    EXPECT_TRUE(pushes.empty());
    EXPECT_TRUE(
            logs.contains("set app: KV read (GET /v1/secret/data/apps/db): HTTP 404: no "
                          "secret there; check mount and path"))
            << logs.all();
    vault.put_kv("secret/apps/db", R"({"username":"u1","password":"p1"})");
    clock.advance(5s);
    EXPECT_EQ(pushes.size(), 1u) << logs.all();
}

TEST_F(SecretKinds, KvDeletedVersionKeepsServingAndSaysSo) {
    vault.put_kv("secret/apps/db", R"({"username":"u1","password":"p1"})");
    start(kv_set());
    vault.kv["secret/apps/db"].deleted = true;
    clock.advance(31s);
    EXPECT_EQ(pushes.size(), 1u);
    EXPECT_TRUE(logs.contains("HTTP 404: the latest version (1) was deleted")) << logs.all();
    EXPECT_EQ(set->status().state, "degraded");
    EXPECT_TRUE(set->has_credentials());
}

TEST_F(SecretKinds, KvLoginFailedRereadsAtOnce) {
    vault.put_kv("secret/apps/db", R"({"username":"u1","password":"p1"})");
    start(kv_set());
    clock.advance(5s);
    // The same refused values: nothing to push, and a warning saying what to fix.
    set->on_login_failed(1, 1, "u1", "28P01");
    clock.settle();
    EXPECT_EQ(reads("secret/data/apps/db"), 2);
    EXPECT_EQ(pushes.size(), 1u);
    EXPECT_TRUE(logs.contains("still holds the user and password PostgreSQL refused"))
            << logs.all();
    // New values written: the next report (after the rate limit) picks them up at once.
    vault.put_kv("secret/apps/db", R"({"username":"u1","password":"p2"})");
    clock.advance(policy::kLoginFailedRefetchInterval);
    set->on_login_failed(1, 1, "u1", "28P01");
    clock.settle();
    ASSERT_EQ(pushes.size(), 2u);
    EXPECT_EQ(last().password, "p2");
    EXPECT_LT(last().at, 30s);  // before refresh_interval would have
}

TEST_F(SecretKinds, StatusThroughTheAdminProtocol) {
    vault.put_kv("secret/apps/db", R"({"username":"u1","password":"p1"})");
    start(kv_set());
    Status st;
    st.health = "ok";
    st.sets.push_back(set->status());
    std::string error;
    auto back = admin::parse_response(admin::encode_status(st), &error);
    ASSERT_TRUE(back && back->status) << error;
    ASSERT_EQ(back->status->sets.size(), 1u);
    const SetStatus& s = back->status->sets[0];
    EXPECT_EQ(s.kind, "kv");
    EXPECT_EQ(s.source, "secret/data/apps/db v1");
    EXPECT_EQ(s.lease_id, "");
    EXPECT_EQ(s.deadline, 0);
    EXPECT_EQ(s.rotate_at, clock.wall_seconds() + 30);
}

// --- parsing ---------------------------------------------------------------------------

HttpResponse ok(const std::string& body) {
    HttpResponse r;
    r.status = 200;
    r.body = Secret(body);
    return r;
}

TEST(SecretKindParsing, StaticCredentials) {
    auto r = parse_static_credentials(
            ok(R"({"lease_id":"","data":{"username":"u","password":"p","ttl":-3,)"
               R"("last_vault_rotation":"2026-11-28T01:02:03Z","rotation_period":60}})"),
            "w");
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r.value().ttl, 0s);  // overdue counts as due now
    EXPECT_EQ(r.value().last_vault_rotation, "2026-11-28T01:02:03Z");
    auto no_ttl = parse_static_credentials(ok(R"({"data":{"username":"u","password":"p"}})"), "w");
    ASSERT_FALSE(no_ttl.ok());
    EXPECT_EQ(no_ttl.error().message,
              "w: unexpected answer from Vault (HTTP 200): data.ttl missing or not a number");
}

TEST(SecretKindParsing, KvVersion1MountIsExplained) {
    auto r = parse_kv_credentials(ok(R"({"data":{"username":"u","password":"p"}})"), "w",
                                  "username", "password");
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.error().message.find("is the mount a KV version 2 engine"), std::string::npos);
}

TEST(SecretKindParsing, KvEmptyFieldAndForbidden) {
    auto r = parse_kv_credentials(
            ok(R"({"data":{"data":{"username":"","password":"p"},"metadata":{"version":4}}})"), "w",
            "username", "password");
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().message,
              "w: field \"username\" (username_field) of the secret (version 4) is empty");
    HttpResponse denied;
    denied.status = 403;
    denied.body = Secret(std::string_view(R"({"errors":["permission denied"]})"));
    auto d = parse_kv_credentials(denied, "w", "username", "password");
    ASSERT_FALSE(d.ok());
    EXPECT_EQ(d.error().kind, VaultError::Kind::kDenied);
}

TEST(SecretKindParsing, DynamicReadOfStaticRoleSaysWhatToSet) {
    auto r = parse_credentials(
            ok(R"({"lease_id":"","lease_duration":0,"data":{"username":"u","password":"p"}})"),
            "w");
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.error().message.find("kind = static"), std::string::npos);
}

// --- configuration -----------------------------------------------------------------------

class SetConfig : public ::testing::Test {
protected:
    void SetUp() override {
        char tmpl[] = "/tmp/pgbv-setconfig-XXXXXX";
        dir_ = mkdtemp(tmpl);
        std::ofstream(dir_ + "/token") << "hvs.x\n";
    }
    void TearDown() override { std::system(("rm -rf " + dir_).c_str()); }

    // The file: [vault] and [controller] on lines 1-5, the set from line 6.
    ConfigResult parse(const std::string& set_section) {
        const std::string text =
                "[vault]\naddress=http://v\ntoken_file=token\n[controller]\nplugin_socket=/p\n" +
                set_section;
        return parse_config(text, dir_ + "/c.ini", [](const char*) { return nullptr; });
    }
    std::string error(const std::string& set_section) {
        ConfigResult r = parse(set_section);
        EXPECT_FALSE(r.config) << set_section;
        const std::string path = dir_ + "/c.ini";
        return r.error.rfind(path, 0) == 0 ? "F" + r.error.substr(path.size()) : r.error;
    }
    std::string dir_;
};

TEST_F(SetConfig, Kinds) {
    auto r =
            parse("[set.a]\nrole=dyn\n[set.b]\nkind=static\nrole=st\n"
                  "[set.c]\npath=apps/db\nkind = KV\nusername_field=user\nrefresh_interval=15s\n"
                  "[set.d]\nkind=kv\nmount=kv/team\npath=x\n");
    ASSERT_TRUE(r.config) << r.error;
    const auto& sets = r.config->sets;
    EXPECT_EQ(sets[0].kind, SecretKind::kDynamic);
    EXPECT_EQ(sets[0].mount, "database");
    EXPECT_EQ(sets[1].kind, SecretKind::kStatic);
    EXPECT_EQ(sets[1].mount, "database");
    EXPECT_EQ(sets[1].role, "st");
    EXPECT_EQ(sets[2].kind, SecretKind::kKv);
    EXPECT_EQ(sets[2].mount, "secret");
    EXPECT_EQ(sets[2].path, "apps/db");
    EXPECT_EQ(sets[2].username_field, "user");
    EXPECT_EQ(sets[2].password_field, "password");
    EXPECT_EQ(sets[2].refresh_interval, 15s);
    EXPECT_EQ(sets[3].mount, "kv/team");
    EXPECT_EQ(sets[3].refresh_interval, 60s);
    EXPECT_STREQ(secret_kind_name(sets[2].kind), "kv");
}

TEST_F(SetConfig, Errors) {
    EXPECT_EQ(error("[set.a]\nkind=dynamc\nrole=x\n"),
              "F:7: kind 'dynamc' must be dynamic (database dynamic role), static (database "
              "static role) or kv (KV version 2 secret)");
    EXPECT_EQ(error("[set.a]\nkind=kv\nrole=x\npath=p\n"),
              "F:8: [set.a]: role is not used by kind kv: a KV secret is named by path (read as "
              "<mount>/data/<path>)");
    EXPECT_EQ(error("[set.a]\nkind=kv\n"),
              "F:6: [set.a]: kind kv needs path, the secret's path under the mount (e.g. path = "
              "apps/db for secret/data/apps/db)");
    EXPECT_EQ(error("[set.a]\nrole=x\npath=apps/db\n"),
              "F:8: [set.a]: path is not used by kind dynamic: it names a KV secret (kind = "
              "kv); a database role is named by role");
    EXPECT_EQ(error("[set.a]\nkind=static\nrole=x\nusername_field=u\n"),
              "F:9: [set.a]: username_field is not used by kind static: only a KV secret (kind "
              "= kv) has field names");
    EXPECT_EQ(error("[set.a]\nrole=x\npassword_field=u\n"),
              "F:8: [set.a]: password_field is not used by kind dynamic: only a KV secret (kind "
              "= kv) has field names");
    EXPECT_EQ(error("[set.a]\nkind=static\n"),
              "F:6: [set.a]: role is not set (kind static reads <mount>/static-creds/<role>)");
    EXPECT_EQ(error("[set.a]\nkind=static\nrole=x\nrotation_margin=10s\n"),
              "F:9: [set.a]: rotation_margin is not used by kind static: Vault rotates a static "
              "role's password itself; it is read again right after each rotation");
    EXPECT_EQ(error("[set.a]\nrole=x\nrefresh_interval=10s\n"),
              "F:8: [set.a]: refresh_interval is not used by kind dynamic: a dynamic role's "
              "lease is renewed and rotated instead");
    EXPECT_EQ(error("[set.a]\nkind=kv\npath=p\nrotation_margin=1m\n"),
              "F:9: [set.a]: rotation_margin is not used by kind kv: a KV secret has no lease; "
              "refresh_interval says how often it is re-read");
    EXPECT_EQ(error("[set.a]\nkind=kv\npath=p\nrefresh_interval=0\n"),
              "F:9: refresh_interval must be above zero");
    EXPECT_EQ(error("[set.a]\nkind=kv\npath=/p\n"),
              "F:8: path '/p' is not a valid secret path ([A-Za-z0-9_.-] segments separated by "
              "'/', without the mount or 'data/')");
    EXPECT_EQ(error("[set.a]\nkind=kv\npath=p\nusername_field=f\npassword_field=f\n"),
              "F:10: [set.a]: username_field and password_field are both 'f'");
}

}  // namespace
}  // namespace pgbv::ctl::testing
