// sys/health polling: the query, the interval, every state in status, one log line per
// change, failures kept apart from the last answer; and the causes named for 429/5xx.

#include "controller/vault_health.hpp"

#include <gtest/gtest.h>

#include "controller/admin_protocol.hpp"
#include "controller/vault_response.hpp"
#include "fake_clock.hpp"
#include "fake_vault.hpp"
#include "log_capture.hpp"

namespace pgbv::ctl::testing {
namespace {

using namespace std::chrono_literals;

class VaultHealthTest : public ::testing::Test {
protected:
    void start(Duration interval) {
        health = std::make_unique<VaultHealth>(clock, client, interval);
        health->start();
        clock.settle();
    }

    LogCapture logs;
    FakeClock clock;
    FakeVault vault{clock};
    VaultClient client{vault, clock, VaultClient::Options{FakeVault::kAddress, "ns1", 5s}};
    std::unique_ptr<VaultHealth> health;
};

TEST_F(VaultHealthTest, PollsAtStartAndEveryInterval) {
    start(60s);
    ASSERT_EQ(vault.requests.size(), 1u);
    EXPECT_EQ(vault.requests[0].method, "GET");
    EXPECT_EQ(vault.requests[0].path, "sys/health?standbyok=true&perfstandbyok=true");
    EXPECT_TRUE(vault.requests[0].token.empty());
    const VaultHealthStatus s = health->status();
    EXPECT_TRUE(s.enabled);
    EXPECT_EQ(s.state, "active");
    EXPECT_EQ(s.code, 200);
    EXPECT_TRUE(s.initialized);
    EXPECT_FALSE(s.sealed);
    EXPECT_EQ(s.version, "1.15.0");
    EXPECT_EQ(s.cluster_name, "vault-cluster-test");
    EXPECT_EQ(s.checked_at, clock.wall_seconds());
    EXPECT_TRUE(
            logs.contains("vault: sys/health: active, version 1.15.0, cluster "
                          "vault-cluster-test"));
    clock.advance(59s);
    EXPECT_EQ(vault.requests.size(), 1u);
    clock.advance(1s);
    EXPECT_EQ(vault.requests.size(), 2u);
    clock.advance(600s);
    EXPECT_EQ(vault.requests.size(), 12u);
    EXPECT_EQ(logs.count("sys/health"), 1);  // no change, no new line
}

TEST_F(VaultHealthTest, ZeroIntervalNeverPolls) {
    start(0s);
    clock.advance(3600s);
    EXPECT_TRUE(vault.requests.empty());
    EXPECT_FALSE(health->status().enabled);
    EXPECT_EQ(health->status().state, "off");
}

TEST_F(VaultHealthTest, SealedStandbyAndBackAreEachLoggedOnce) {
    start(10s);
    vault.health_code = 503;
    vault.health_sealed = true;
    clock.advance(30s);
    EXPECT_EQ(health->status().state, "sealed");
    EXPECT_TRUE(health->status().sealed);
    EXPECT_EQ(health->status().code, 503);
    EXPECT_EQ(logs.count("vault: sys/health says Vault is sealed (HTTP 503, version 1.15.0)"), 1)
            << logs.all();
    vault.health_code = 200;  // standbyok=true: a standby answers 200 with standby true
    vault.health_sealed = false;
    vault.health_standby = true;
    clock.advance(10s);
    EXPECT_EQ(health->status().state, "standby");
    EXPECT_TRUE(health->status().standby);
    EXPECT_TRUE(
            logs.contains("is a standby (version 1.15.0); requests are forwarded or "
                          "redirected (307) to the active node"));
    vault.health_code = 429;  // without standbyok a standby says 429
    clock.advance(10s);
    EXPECT_EQ(health->status().state, "standby");
    vault.health_standby = false;
    vault.health_code = 200;
    clock.advance(10s);
    EXPECT_EQ(health->status().state, "active");
    EXPECT_EQ(logs.count("vault: sys/health: active"), 2);
}

TEST_F(VaultHealthTest, AFailedCheckKeepsTheLastAnswer) {
    start(10s);
    vault.fault = FakeVault::Fault::kRefused;
    clock.advance(10s);
    VaultHealthStatus s = health->status();
    EXPECT_EQ(s.state, "active");
    EXPECT_NE(s.error.find("health check (GET /v1/sys/health): Failed to connect"),
              std::string::npos)
            << s.error;
    vault.fault = FakeVault::Fault::kNone;
    clock.advance(10s);
    EXPECT_TRUE(health->status().error.empty());
    // The health check leaves reachability to the real requests.
    EXPECT_EQ(client.health().state, VaultClient::Health::State::kUnknown);
}

TEST_F(VaultHealthTest, TheNamespaceHeaderGoesAlong) {
    start(10s);
    ASSERT_FALSE(vault.requests.empty());
    const auto& h = vault.requests[0].headers;
    EXPECT_NE(std::find(h.begin(), h.end(), "X-Vault-Namespace: ns1"), h.end());
}

HttpResponse make(long status, const std::string& body) {
    HttpResponse r;
    r.status = status;
    r.body.assign(body);
    return r;
}

TEST(RetryCauses, AreNamedInTheError) {
    EXPECT_EQ(error_of(make(429, R"({"errors":["request path \"x\": rate limit quota exceeded"]})"),
                       "x")
                      ->message,
              "x: HTTP 429: request path \"x\": rate limit quota exceeded (rate limited by a "
              "Vault quota; retrying)");
    EXPECT_EQ(error_of(make(429, R"({"errors":[]})"), "x")->message,
              "x: HTTP 429 (no error message) (rate limited, or a standby node; retrying)");
    EXPECT_EQ(error_of(make(503, R"({"errors":["Vault is sealed"]})"), "x")->message,
              "x: HTTP 503: Vault is sealed");
    EXPECT_EQ(error_of(make(503, R"({"errors":["no active Vault instance"]})"), "x")->message,
              "x: HTTP 503: no active Vault instance (standby node without an active node; "
              "retrying)");
    EXPECT_EQ(error_of(make(502, R"({"errors":["upstream"]})"), "x")->message,
              "x: HTTP 502: upstream (upstream failure or rate limit; retrying)");
    EXPECT_EQ(error_of(make(500, R"({"errors":["boom"]})"), "x")->message,
              "x: HTTP 500: boom (Vault internal error; retrying)");
    for (long s : {429L, 500L, 502L, 503L}) {
        EXPECT_EQ(error_of(make(s, R"({"errors":["e"]})"), "x")->kind,
                  VaultError::Kind::kUnavailable);
    }
    EXPECT_EQ(error_of(make(400, R"({"errors":["invalid role name \"a\""]})"), "x")->detail,
              "HTTP 400: invalid role name \"a\"");
}

TEST(HealthParse, EveryHealthCodeIsAnAnswer) {
    const std::string body =
            R"({"initialized":true,"sealed":false,"standby":true,"performance_standby":true,)"
            R"("version":"1.16.1+ent","cluster_name":"c1"})";
    for (long code : {200L, 429L, 472L, 473L, 501L, 503L}) {
        auto r = parse_health(make(code, body), "h");
        ASSERT_TRUE(r.ok()) << code;
        EXPECT_EQ(r.value().status, code);
    }
    EXPECT_EQ(VaultHealth::state_of(parse_health(make(473, body), "h").value()), "perf_standby");
    EXPECT_FALSE(parse_health(make(404, R"({"errors":[]})"), "h").ok());
    EXPECT_FALSE(parse_health(make(200, "<html>"), "h").ok());
    HttpResponse failed;
    failed.error = "Connection refused";
    EXPECT_FALSE(parse_health(failed, "h").ok());
}

TEST(HealthInStatus, RoundTripsThroughTheAdminProtocol) {
    Status s;
    s.health = "ok";
    s.vault_health.enabled = true;
    s.vault_health.state = "standby";
    s.vault_health.code = 200;
    s.vault_health.initialized = true;
    s.vault_health.standby = true;
    s.vault_health.version = "1.15.0";
    s.vault_health.cluster_name = "c1";
    s.vault_health.checked_at = 1700000000;
    s.vault_health.error = "health check: timeout";
    s.token.method = "kubernetes";
    s.token.auth_path = "auth/k8s";
    s.token.role = "app";
    s.token.batch = true;
    std::string error;
    auto r = admin::parse_response(admin::encode_status(s), &error);
    ASSERT_TRUE(r && r->status) << error;
    const VaultHealthStatus& h = r->status->vault_health;
    EXPECT_TRUE(h.enabled);
    EXPECT_EQ(h.state, "standby");
    EXPECT_EQ(h.code, 200);
    EXPECT_TRUE(h.initialized);
    EXPECT_TRUE(h.standby);
    EXPECT_FALSE(h.sealed);
    EXPECT_EQ(h.version, "1.15.0");
    EXPECT_EQ(h.cluster_name, "c1");
    EXPECT_EQ(h.checked_at, 1700000000);
    EXPECT_EQ(h.error, "health check: timeout");
    EXPECT_EQ(r->status->token.auth_path, "auth/k8s");
    EXPECT_EQ(r->status->token.role, "app");
    EXPECT_TRUE(r->status->token.batch);
}

}  // namespace
}  // namespace pgbv::ctl::testing
