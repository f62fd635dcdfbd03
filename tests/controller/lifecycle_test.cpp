// The whole life of credentials, on a fake clock against a fake Vault: fetch, renew at
// two thirds, capping, rotation before the deadline, drain -> revoke, deadline -> revoke,
// token renewal, token end -> login again and move every set, Vault failures, odd bodies,
// LOGIN_FAILED, status.  Each test runs minutes or hours of controller time in
// milliseconds, deterministically.

#include <gtest/gtest.h>

#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "controller/admin_protocol.hpp"
#include "controller/controller.hpp"
#include "controller/vault_client.hpp"
#include "fake_clock.hpp"
#include "fake_vault.hpp"
#include "log_capture.hpp"

namespace pgbv::ctl::testing {
namespace {

using namespace std::chrono_literals;
using Fault = FakeVault::Fault;

struct Push {
    Duration at;
    std::string set;
    std::uint64_t generation;
    std::string username;
    std::string password;
    std::int64_t expires_at;
};

class Lifecycle : public ::testing::Test {
protected:
    void SetUp() override {
        char tmpl[] = "/tmp/pgbv-lifecycle-XXXXXX";
        dir_ = mkdtemp(tmpl);
        write("role_id", vault.role_id + "\n");
        write("secret_id", vault.secret_id + "\n");
        config.vault.address = FakeVault::kAddress;
        config.vault.auth_method = AuthMethod::kAppRole;
        config.vault.role_id_file = dir_ + "/role_id";
        config.vault.secret_id_file = dir_ + "/secret_id";
        config.vault.retry_min = 1s;
        config.vault.retry_max = 30s;
        config.controller.plugin_socket = dir_ + "/plugin.sock";
        SetSettings app;
        app.name = "app";
        app.role = "app";
        app.rotation_margin = 20s;
        config.sets.push_back(app);
        vault.roles["database/app"] = FakeVault::Role{60s, 300s, true};
    }

    void TearDown() override {
        controller.reset();
        std::system(("rm -rf " + dir_).c_str());
    }

    void write(const std::string& name, const std::string& text) {
        std::ofstream(dir_ + "/" + name) << text;
    }

    void start(std::uint64_t seed = 42) {
        jitter = std::make_unique<Jitter>(seed);
        client = std::make_unique<VaultClient>(vault, clock,
                                               VaultClient::Options{FakeVault::kAddress, "", 5s});
        auth = std::make_unique<AuthSource>(config.vault, Secret(env_token));
        controller = std::make_unique<Controller>(config, clock, *jitter, *client, *auth);
        controller->set_publish([this](const wire::Credentials& c) {
            pushes.push_back(Push{clock.elapsed(), c.set, c.generation, c.username,
                                  std::string(c.password.view()), c.expires_at});
            return holders;
        });
        controller->start();
        clock.settle();
    }

    CredentialSet& set(const std::string& name = "app") { return *controller->find(name); }

    // The last credentials pushed for `name`: what the plugin holds.
    const Push* held(const std::string& name = "app") const {
        for (auto it = pushes.rbegin(); it != pushes.rend(); ++it) {
            if (it->set == name) return &*it;
        }
        return nullptr;
    }

    const FakeVault::Lease* lease_held(const std::string& name = "app") const {
        const Push* p = held(name);
        return p ? vault.lease_of_user(p->username) : nullptr;
    }

    // True while the credentials the plugin holds for `name` would log in.
    bool held_work(const std::string& name = "app") const {
        const FakeVault::Lease* l = lease_held(name);
        return l != nullptr && vault.lease_alive(l->id);
    }

    // Advances `total` in one-second steps, checking after each that every set's held
    // credentials work.
    void run_checking(Duration total) {
        for (Duration t{0}; t < total; t += 1s) {
            clock.advance(1s);
            for (const auto& s : config.sets) {
                ASSERT_TRUE(held_work(s.name)) << "at " << clock.elapsed().count() << " ms, set "
                                               << s.name << " holds dead credentials\n"
                                               << logs.all();
            }
        }
    }

    std::size_t pushes_of(const std::string& name) const {
        std::size_t n = 0;
        for (const auto& p : pushes)
            n += p.set == name ? 1 : 0;
        return n;
    }

    LogCapture logs;
    FakeClock clock;
    FakeVault vault{clock};
    Config config;
    std::string env_token;
    std::unique_ptr<Jitter> jitter;
    std::unique_ptr<VaultClient> client;
    std::unique_ptr<AuthSource> auth;
    std::unique_ptr<Controller> controller;
    std::vector<Push> pushes;
    std::vector<ClientId> holders = {1};
    std::string dir_;
};

TEST_F(Lifecycle, FirstFetchIsPushed) {
    start();
    ASSERT_EQ(pushes.size(), 1u);
    EXPECT_EQ(pushes[0].set, "app");
    EXPECT_EQ(pushes[0].generation, 1u);
    const FakeVault::Lease* lease = vault.lease_of_user(pushes[0].username);
    ASSERT_NE(lease, nullptr);
    EXPECT_EQ(pushes[0].password, lease->password);
    EXPECT_EQ(pushes[0].expires_at, clock.wall_seconds() + 60);
    EXPECT_EQ(vault.count("POST", "auth/approle/login"), 1);
    EXPECT_EQ(vault.count("GET", "database/creds/app"), 1);
    EXPECT_TRUE(logs.contains("vault: logged in (AppRole login): token #1, ttl 3600s"));
    EXPECT_TRUE(logs.contains("set app: generation 1: user " + pushes[0].username));
    // Every request says X-Vault-Request.
    for (const auto& r : vault.requests) {
        EXPECT_NE(std::find(r.headers.begin(), r.headers.end(), "X-Vault-Request: true"),
                  r.headers.end());
    }
}

TEST_F(Lifecycle, RenewsAtAboutTwoThirdsOfTheTtl) {
    start();
    clock.advance(35s);
    EXPECT_EQ(vault.count("PUT", "sys/leases/renew"), 0);
    clock.advance(5s);  // 40 s: two thirds, less margin room and jitter, have passed
    EXPECT_EQ(vault.count("PUT", "sys/leases/renew"), 1);
    EXPECT_TRUE(logs.contains("set app: renewed generation 1 for 60s"));
    EXPECT_EQ(pushes.size(), 1u);  // a renewal pushes nothing
}

TEST_F(Lifecycle, WholeLifeCapRotateDrainRevoke) {
    start();
    const std::string first_user = pushes[0].username;
    const std::string first_lease = vault.lease_of_user(first_user)->id;
    run_checking(281s);
    // The cap (max TTL 300 s) was found by a renewal and generation 2 pushed at
    // 300 - 20 (margin) at the latest.
    ASSERT_EQ(pushes.size(), 2u) << logs.all();
    EXPECT_LE(pushes[1].at, 280s);
    EXPECT_GE(pushes[1].at, 240s);
    EXPECT_EQ(pushes[1].generation, 2u);
    EXPECT_TRUE(logs.contains("its max TTL is reached"));
    EXPECT_TRUE(logs.contains("set app: rotated to generation 2"));
    // The old generation drains, its lease alive, until PgBouncer says it is done.
    EXPECT_EQ(set().draining(), 1u);
    EXPECT_TRUE(vault.lease_alive(first_lease));
    controller->drained(1, wire::Drained{"app", 1, first_user});
    clock.settle();
    EXPECT_EQ(set().draining(), 0u);
    EXPECT_TRUE(vault.leases[first_lease].revoked_by_request);
    EXPECT_TRUE(logs.contains("set app: generation 1 (user " + first_user + ") drained"));
    EXPECT_TRUE(logs.contains("set app: revoked generation 1 (user " + first_user + "): drained"));
    // And on: every generation rotates before its end, forever.
    run_checking(900s);
    EXPECT_GE(pushes.size(), 5u);
}

TEST_F(Lifecycle, NeverDrainedIsRevokedAtItsDeadline) {
    start();
    const std::string first_lease = vault.lease_of_user(pushes[0].username)->id;
    clock.advance(285s);
    ASSERT_EQ(pushes.size(), 2u);
    EXPECT_FALSE(vault.leases[first_lease].revoked_by_request);
    clock.advance(16s);  // past 300 s, lease 1's final end
    EXPECT_TRUE(vault.leases[first_lease].revoked_by_request);
    EXPECT_EQ(set().draining(), 0u);
    EXPECT_TRUE(logs.contains("deadline reached before it was drained"));
}

TEST_F(Lifecycle, DrainedNeedsEveryPluginThatHeldIt) {
    holders = {1, 2};
    start();
    const std::string user = pushes[0].username;
    const std::string lease = vault.lease_of_user(user)->id;
    ASSERT_TRUE(controller->rotate("app").empty());
    clock.settle();
    ASSERT_EQ(pushes.size(), 2u);
    controller->drained(1, wire::Drained{"app", 1, user});
    clock.settle();
    EXPECT_FALSE(vault.leases[lease].revoked_by_request);
    controller->drained(2, wire::Drained{"app", 1, "someone-else"});  // not this generation
    clock.settle();
    EXPECT_FALSE(vault.leases[lease].revoked_by_request);
    controller->client_closed(2);  // the other PgBouncer went away
    clock.settle();
    EXPECT_TRUE(vault.leases[lease].revoked_by_request);
}

TEST_F(Lifecycle, DrainedForTheCurrentGenerationIsIgnored) {
    start();
    controller->drained(1, wire::Drained{"app", 1, pushes[0].username});
    controller->drained(1, wire::Drained{"nosuchset", 1, "u"});
    clock.settle();
    EXPECT_EQ(vault.count("PUT", "sys/leases/revoke"), 0);
    EXPECT_TRUE(held_work());
}

TEST_F(Lifecycle, NonRenewableLeaseRotatesBeforeItsEnd) {
    vault.roles["database/app"] = FakeVault::Role{60s, 60s, false};
    start();
    run_checking(200s);
    EXPECT_EQ(vault.count("PUT", "sys/leases/renew"), 0);
    ASSERT_GE(pushes.size(), 4u);
    EXPECT_EQ(pushes[1].at, 40s);  // 60 - min(20 s margin, 30 s)
}

TEST_F(Lifecycle, TokenIsRenewedAtTwoThirds) {
    vault.token_ttl = 600s;
    vault.token_max_ttl = 36000s;
    start();
    clock.advance(350s);
    EXPECT_EQ(vault.count("POST", "auth/token/renew-self"), 0);
    clock.advance(60s);
    EXPECT_EQ(vault.count("POST", "auth/token/renew-self"), 1);
    EXPECT_TRUE(logs.contains("vault: token #1 renewed for 600s"));
    EXPECT_EQ(vault.count("POST", "auth/approle/login"), 1);
}

TEST_F(Lifecycle, TokenMaxTtlLogsInAgainAndMovesCredentialsBeforeTheOldTokenDies) {
    vault.token_ttl = 120s;
    vault.token_max_ttl = 120s;
    vault.roles["database/app"] = FakeVault::Role{60s, 3600s, true};
    SetSettings second;
    second.name = "reports";
    second.role = "reports";
    second.rotation_margin = 15s;
    config.sets.push_back(second);
    vault.roles["database/reports"] = FakeVault::Role{300s, 3600s, true};
    start();
    const std::string token1 = vault.lease_of_user(pushes[0].username)->token;
    // The renewal is capped; the keeper logs in again a lead (largest margin 20 s + 10 s)
    // before the end (120 s), i.e. at 90 s, and both sets move to the new token.
    run_checking(95s);
    EXPECT_EQ(vault.count("POST", "auth/approle/login"), 2) << logs.all();
    EXPECT_TRUE(logs.contains("max TTL is reached, logging in again"));
    for (const char* name : {"app", "reports"}) {
        const FakeVault::Lease* l = lease_held(name);
        ASSERT_NE(l, nullptr);
        EXPECT_NE(l->token, token1) << name;
        EXPECT_EQ(held(name)->generation, 2u);
        // Pushed a whole margin before the old token takes the old credentials.
        EXPECT_LE(held(name)->at, 100s) << name;
    }
    EXPECT_TRUE(logs.contains("because the Vault token that fetched them was replaced"));
    // The old generations are revoked at the old token's end at the latest, and the
    // cycle repeats with every new token.
    run_checking(600s);
    EXPECT_GE(vault.count("POST", "auth/approle/login"), 6);
    EXPECT_EQ(set("app").draining(), 0u);
}

TEST_F(Lifecycle, VaultDownBrieflyKeepsServingAndRecoversWithoutANewGeneration) {
    start();
    clock.advance(30s);
    vault.fault = Fault::kRefused;
    const int before = static_cast<int>(vault.requests.size());
    clock.advance(22s);  // renewal at ~37 s fails, retried with backoff
    EXPECT_EQ(set().status().state, "degraded");
    const int during = static_cast<int>(vault.requests.size()) - before;
    EXPECT_GE(during, 3);
    EXPECT_LE(during, 8);
    vault.fault = Fault::kNone;
    run_checking(30s);
    EXPECT_EQ(pushes.size(), 1u);  // the same credentials all along
    EXPECT_EQ(set().status().state, "serving");
    EXPECT_EQ(logs.count("vault: unreachable at http://vault.test:8200"), 1);
    EXPECT_EQ(logs.count("vault: reachable again"), 1);
    // One warning for the failure, not one per retry.
    EXPECT_EQ(logs.count("warning: set app:"), 1) << logs.all();
    EXPECT_TRUE(logs.contains("set app: serving again: generation 1"));
}

TEST_F(Lifecycle, VaultDownPastTheDeadlineThenRecovers) {
    start();
    clock.advance(30s);
    vault.fault = Fault::kSealed;
    clock.advance(60s);  // the lease ends at 60 s
    EXPECT_EQ(set().status().state, "expired");
    EXPECT_EQ(logs.count("has reached its end without a replacement"), 1);
    clock.advance(120s);
    // Backoff: bounded by retry_max (30 s), so a few retries over two minutes, not hundreds.
    EXPECT_LE(vault.count("PUT", "sys/leases/renew") + vault.count("GET", "database/creds"), 25);
    vault.fault = Fault::kNone;
    EXPECT_TRUE(clock.advance_until([&] { return set().status().state == "serving"; }, 31s));
    EXPECT_EQ(set().generation(), 2u);
    EXPECT_TRUE(held_work());
    EXPECT_TRUE(controller->status().health == "ok");
}

TEST_F(Lifecycle, AnOutageThatOutlivesTokenAndLeaseIsNoticedSoonAfterItEnds) {
    vault.token_ttl = 40s;
    vault.token_max_ttl = 100s;
    vault.roles["database/app"] = FakeVault::Role{20s, 60s, true};
    start();
    clock.advance(5s);
    vault.fault = Fault::kRefused;
    clock.advance(60s);  // the lease (20 s) and the token (40 s) end during the outage
    EXPECT_EQ(controller->status().token.state, "expired");
    EXPECT_EQ(set().status().state, "expired");
    vault.fault = Fault::kNone;
    // The backoff restarted when the token and the credentials ended, so the return of
    // Vault is noticed within seconds, not after retry_max.
    ASSERT_TRUE(clock.advance_until([&] { return held_work(); }, 40s));
    EXPECT_LE(clock.elapsed(), 65s + 10s) << logs.all();
}

TEST_F(Lifecycle, EveryKindOfFailureIsRetriedAndNeverCrashes) {
    start();
    const Fault faults[] = {Fault::kRefused,     Fault::kTimeout,     Fault::kSealed,
                            Fault::kServerError, Fault::kRateLimited, Fault::kGarbage,
                            Fault::kTruncated,   Fault::kHuge};
    for (Fault f : faults) {
        vault.fault = f;
        ASSERT_TRUE(controller->rotate("app").empty());
        clock.advance(6s);
        EXPECT_EQ(set().status().state, "degraded") << static_cast<int>(f);
        EXPECT_FALSE(set().status().last_error.empty());
        EXPECT_TRUE(held_work());
        vault.fault = Fault::kNone;
        ASSERT_TRUE(clock.advance_until([&] { return set().status().state == "serving"; }, 40s))
                << static_cast<int>(f) << "\n"
                << logs.all();
    }
    EXPECT_TRUE(logs.contains("unexpected answer from Vault (HTTP 200): invalid JSON"));
    EXPECT_TRUE(logs.contains("larger than the limit of 1048576 bytes"));
    EXPECT_TRUE(logs.contains("HTTP 503: Vault is sealed"));
    EXPECT_TRUE(logs.contains("HTTP 429"));
    EXPECT_TRUE(logs.contains("(request_timeout)"));
}

TEST_F(Lifecycle, LoginFailedRefetchesAtOnceAtMostEveryTenSeconds) {
    start();
    controller->login_failed(1, wire::LoginFailed{"app", 1, pushes[0].username, "28P01"});
    clock.settle();
    ASSERT_EQ(pushes.size(), 2u);
    EXPECT_EQ(pushes[1].at, 0s);
    EXPECT_TRUE(logs.contains("SQLSTATE 28P01); fetching new credentials"));
    // Again, for the new generation, within ten seconds: ignored.
    clock.advance(5s);
    controller->login_failed(1, wire::LoginFailed{"app", 2, pushes[1].username, "28P01"});
    clock.settle();
    EXPECT_EQ(pushes.size(), 2u);
    clock.advance(6s);
    controller->login_failed(1, wire::LoginFailed{"app", 2, pushes[1].username, "28P01"});
    clock.settle();
    EXPECT_EQ(pushes.size(), 3u);
    // For an old generation, or a SQLSTATE new credentials cannot cure: ignored.
    clock.advance(11s);
    controller->login_failed(1, wire::LoginFailed{"app", 1, pushes[0].username, "28P01"});
    controller->login_failed(1, wire::LoginFailed{"app", 3, pushes[2].username, "3D000"});
    clock.settle();
    EXPECT_EQ(pushes.size(), 3u);
}

TEST_F(Lifecycle, LeaseGoneBehindOurBackIsReplacedAtTheNextRenewal) {
    start();
    const std::string lease = vault.lease_of_user(pushes[0].username)->id;
    vault.leases[lease].revoked_at = clock.now();
    clock.advance(40s);
    ASSERT_EQ(pushes.size(), 2u);
    EXPECT_TRUE(logs.contains("Vault refused to renew generation 1"));
    EXPECT_EQ(set().draining(), 0u);  // nothing to revoke
    EXPECT_TRUE(held_work());
}

TEST_F(Lifecycle, RevokedTokenIsNoticedAndReplaced) {
    start();
    const std::string token1 = vault.lease_of_user(pushes[0].username)->token;
    vault.tokens[token1].revoked = true;  // which also kills its leases
    EXPECT_TRUE(clock.advance_until([&] { return held_work(); }, 60s)) << logs.all();
    EXPECT_EQ(vault.count("POST", "auth/approle/login"), 2);
    EXPECT_NE(lease_held()->token, token1);
    EXPECT_TRUE(logs.contains("is no longer accepted"));
}

TEST_F(Lifecycle, BadAppRoleCredentialsRetryWithBackoff) {
    vault.secret_id = "another";
    start();
    clock.advance(60s);
    EXPECT_TRUE(pushes.empty());
    EXPECT_EQ(set().status().state, "waiting_for_token");
    const int attempts = vault.count("POST", "auth/approle/login");
    EXPECT_GE(attempts, 4);
    EXPECT_LE(attempts, 8);
    EXPECT_EQ(logs.count("warning: vault: approle login at auth/approle failed: Vault answered "
                         "400: invalid role or secret ID; check role_id_file and secret_id_file"),
              1)
            << logs.all();
    EXPECT_EQ(controller->status().health, "failing");
    write("secret_id", "another\n");  // a new secret ID is delivered
    EXPECT_TRUE(clock.advance_until([&] { return !pushes.empty(); }, 31s));
}

TEST_F(Lifecycle, TokenMethodFollowsTheTokenFile) {
    config.vault.auth_method = AuthMethod::kToken;
    const std::string token1 = vault.issue_token(600s, 36000s, true);
    write("token", token1 + "\n");
    config.vault.token_file = dir_ + "/token";
    start();
    ASSERT_EQ(pushes.size(), 1u);
    EXPECT_EQ(vault.count("GET", "auth/token/lookup-self"), 1);
    EXPECT_TRUE(logs.contains("vault: logged in (token): token #1, ttl 600s, renewable"));
    // A Vault Agent writes a new token; it is picked up at the next renewal.
    const std::string token2 = vault.issue_token(600s, 36000s, true);
    write("token", token2 + "\n");
    run_checking(420s);
    EXPECT_EQ(lease_held()->token, token2) << logs.all();
    EXPECT_TRUE(logs.contains("holds a new token; switching to it"));
}

TEST_F(Lifecycle, TokenMethodWithANonRenewableTokenWaitsForANewOne) {
    config.vault.auth_method = AuthMethod::kToken;
    vault.roles["database/app"] = FakeVault::Role{60s, 3600s, true};
    const std::string token1 = vault.issue_token(100s, 100s, false);
    env_token = token1;
    config.vault.token_from_env = true;
    start();
    ASSERT_EQ(pushes.size(), 1u);
    // The token cannot be replaced (it came from VAULT_TOKEN): the set serves until the
    // token's end and says why.
    clock.advance(70s);
    EXPECT_EQ(logs.count("warning: vault: VAULT_TOKEN still holds the current token"), 1)
            << logs.all();
    EXPECT_TRUE(held_work());
    clock.advance(40s);
    EXPECT_FALSE(held_work());
    EXPECT_EQ(controller->status().token.state, "expired");
}

TEST_F(Lifecycle, NoSecretEverReachesTheLogs) {
    vault.token_ttl = 120s;
    vault.token_max_ttl = 120s;
    start();
    vault.fault = Fault::kTruncated;
    controller->rotate("app");
    clock.advance(3s);
    vault.fault = Fault::kNone;
    run_checking(400s);
    ASSERT_GE(vault.leases.size(), 3u);
    const std::string all = logs.all();
    for (const auto& [id, lease] : vault.leases)
        EXPECT_EQ(all.find(lease.password), std::string::npos);
    for (const auto& [value, token] : vault.tokens)
        EXPECT_EQ(all.find(value), std::string::npos);
    EXPECT_EQ(all.find(vault.secret_id), std::string::npos);
    // Lease ids appear at debug level only.
    for (const auto& line : logs.lines) {
        if (line.rfind("debug: ", 0) == 0) continue;
        EXPECT_EQ(line.find("/lease"), std::string::npos) << line;
    }
    // Nor does the status.
    const std::string status = admin::encode_status(controller->status());
    for (const auto& [id, lease] : vault.leases)
        EXPECT_EQ(status.find(lease.password), std::string::npos);
    for (const auto& [value, token] : vault.tokens)
        EXPECT_EQ(status.find(value), std::string::npos);
}

// Runs 2000 s of controller life with a fresh clock and Vault; returns "ms method path"
// of every request.
std::vector<std::string> schedule_for(std::uint64_t seed, const Config& config) {
    FakeClock clock;
    FakeVault vault(clock);
    vault.roles["database/app"] = FakeVault::Role{60s, 300s, true};
    Jitter jitter(seed);
    VaultClient client(vault, clock, VaultClient::Options{FakeVault::kAddress, "", 5s});
    AuthSource auth(config.vault, Secret());
    Controller controller(config, clock, jitter, client, auth);
    controller.start();
    clock.advance(2000s);
    std::vector<std::string> out;
    for (const auto& r : vault.requests) {
        out.push_back(std::to_string(to_duration(r.at - MonoTime{}).count()) + " " + r.method +
                      " " + r.path);
    }
    return out;
}

TEST(VaultClientHeaders, NamespaceAndRequestHeaderOnEveryCall) {
    FakeClock clock;
    FakeVault vault(clock);
    VaultClient client(vault, clock, VaultClient::Options{FakeVault::kAddress, "team-a", 5s});
    const Secret token(vault.issue_token(60s, 60s, true));
    auto a = client.lookup_self(token, [](Result<TokenInfo>) {});
    auto b = client.read_credentials(token, "database", "app", [](Result<DbCredentials>) {});
    auto c = client.login_approle("approle", Secret("r"), Secret("s"), [](Result<AuthInfo>) {});
    clock.settle();
    ASSERT_EQ(vault.requests.size(), 3u);
    for (const auto& r : vault.requests) {
        EXPECT_NE(std::find(r.headers.begin(), r.headers.end(), "X-Vault-Namespace: team-a"),
                  r.headers.end());
        EXPECT_NE(std::find(r.headers.begin(), r.headers.end(), "X-Vault-Request: true"),
                  r.headers.end());
    }
    EXPECT_EQ(vault.requests[0].token, std::string(token.view()));
    EXPECT_TRUE(vault.requests[2].token.empty());  // a login carries no token
    EXPECT_EQ(vault.requests[2].body, R"({"role_id":"r","secret_id":"s"})");
}

TEST_F(Lifecycle, SameSeedSameSchedule) {
    const auto a = schedule_for(7, config);
    EXPECT_GT(a.size(), 50u);
    EXPECT_EQ(a, schedule_for(7, config));
    EXPECT_NE(a, schedule_for(8, config));  // the jitter does move things
}

TEST_F(Lifecycle, StatusReportsTheSetsAndTheToken) {
    start();
    clock.advance(41s);
    const Status s = controller->status();
    EXPECT_EQ(s.health, "ok");
    EXPECT_EQ(s.vault_state, "reachable");
    EXPECT_EQ(s.token.state, "valid");
    EXPECT_EQ(s.token.method, "approle");
    EXPECT_GT(s.token.ttl, 3000);
    EXPECT_EQ(s.token.logins, 1u);
    ASSERT_EQ(s.sets.size(), 1u);
    const SetStatus& a = s.sets[0];
    EXPECT_EQ(a.name, "app");
    EXPECT_EQ(a.state, "serving");
    EXPECT_EQ(a.username, pushes[0].username);
    EXPECT_EQ(a.generation, 1u);
    EXPECT_EQ(a.lease_id, vault.lease_of_user(a.username)->id);
    EXPECT_GT(a.lease_ttl, 50);
    EXPECT_TRUE(a.renewable);
    EXPECT_FALSE(a.max_ttl_reached);
    EXPECT_EQ(a.deadline, 0);  // the max TTL is not known yet
    EXPECT_EQ(a.draining, 0u);
    clock.advance(229s);  // 270 s: capped (at ~266 s), not yet rotated (280 s)
    const SetStatus b = controller->status().sets[0];
    EXPECT_TRUE(b.max_ttl_reached);
    // Vault grants whole seconds, so the end we learn may be up to a second early.
    EXPECT_NEAR(b.deadline, clock.wall_seconds() + 30, 1);   // max TTL 300 s
    EXPECT_NEAR(b.rotate_at, clock.wall_seconds() + 10, 1);  // less the 20 s margin
}

TEST_F(Lifecycle, SnapshotMakesANewPluginAHolder) {
    holders = {};
    start();
    auto snapshot = controller->snapshot(7);
    ASSERT_EQ(snapshot.size(), 1u);
    EXPECT_EQ(snapshot[0].generation, 1u);
    EXPECT_TRUE(snapshot[0].password.equals(pushes[0].password));
    controller->rotate("app");
    clock.settle();
    const std::string lease = vault.lease_of_user(pushes[0].username)->id;
    controller->drained(7, wire::Drained{"app", 1, pushes[0].username});
    clock.settle();
    EXPECT_TRUE(vault.leases[lease].revoked_by_request);
}

}  // namespace
}  // namespace pgbv::ctl::testing
