// Every way the controller logs in to Vault, on the fake clock against the fake Vault:
// the login path and body of kubernetes, jwt, cert and approle (plain and wrapped), the
// JWT re-read at every login, the wrapped secret ID unwrapped once, batch tokens never
// renewed, and the failure messages (method, mount and role named; never a secret).

#include <gtest/gtest.h>
#include <jansson.h>
#include <unistd.h>

#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "controller/controller.hpp"
#include "controller/vault_client.hpp"
#include "fake_clock.hpp"
#include "fake_vault.hpp"
#include "log_capture.hpp"

namespace pgbv::ctl::testing {
namespace {

using namespace std::chrono_literals;

std::string field(const std::string& body, const char* key) {
    json_t* o = json_loads(body.c_str(), 0, nullptr);
    std::string v;
    if (json_t* f = json_object_get(o, key); f != nullptr && json_is_string(f)) {
        v = json_string_value(f);
    }
    json_decref(o);
    return v;
}

class AuthMethods : public ::testing::Test {
protected:
    void SetUp() override {
        char tmpl[] = "/tmp/pgbv-auth-XXXXXX";
        dir_ = mkdtemp(tmpl);
        config.vault.address = FakeVault::kAddress;
        config.vault.retry_min = 1s;
        config.vault.retry_max = 30s;
        config.controller.plugin_socket = dir_ + "/plugin.sock";
        SetSettings app;
        app.name = "app";
        app.role = "app";
        app.rotation_margin = 20s;
        config.sets.push_back(app);
        vault.roles["database/app"] = FakeVault::Role{60s, 3600s, true};
    }

    void TearDown() override {
        controller.reset();
        std::system(("rm -rf " + dir_).c_str());
    }

    std::string write(const std::string& name, const std::string& text) {
        const std::string p = dir_ + "/" + name;
        std::ofstream(p) << text;
        return p;
    }

    void use(AuthMethod method, const std::string& mount, const std::string& role) {
        config.vault.auth_method = method;
        config.vault.auth_mount = mount;
        config.vault.auth_role = role;
    }

    void start() {
        jitter = std::make_unique<Jitter>(7);
        client = std::make_unique<VaultClient>(vault, clock,
                                               VaultClient::Options{FakeVault::kAddress, "", 5s});
        auth = std::make_unique<AuthSource>(config.vault, Secret());
        controller = std::make_unique<Controller>(config, clock, *jitter, *client, *auth);
        controller->set_publish([this](const wire::Credentials& c) {
            users.push_back(c.username);
            return std::vector<ClientId>{1};
        });
        controller->start();
        clock.settle();
    }

    std::vector<const FakeVault::Request*> requests_to(const std::string& method,
                                                       const std::string& path) const {
        std::vector<const FakeVault::Request*> out;
        for (const auto& r : vault.requests) {
            if (r.method == method && r.path == path) out.push_back(&r);
        }
        return out;
    }

    // True while the credentials last pushed would log in.
    bool held_work() const {
        if (users.empty()) return false;
        const FakeVault::Lease* l = vault.lease_of_user(users.back());
        return l != nullptr && vault.lease_alive(l->id);
    }

    LogCapture logs;
    FakeClock clock;
    FakeVault vault{clock};
    Config config;
    std::unique_ptr<Jitter> jitter;
    std::unique_ptr<VaultClient> client;
    std::unique_ptr<AuthSource> auth;
    std::unique_ptr<Controller> controller;
    std::vector<std::string> users;
    std::string dir_;
};

TEST_F(AuthMethods, KubernetesLogsInWithRoleAndTheServiceAccountToken) {
    vault.jwt_roles["kubernetes/app"] = {"eyJ.sa-token-1.sig"};
    config.vault.jwt_file = write("sa-token", "eyJ.sa-token-1.sig\n");
    use(AuthMethod::kKubernetes, "kubernetes", "app");
    start();
    const auto logins = requests_to("POST", "auth/kubernetes/login");
    ASSERT_EQ(logins.size(), 1u) << logs.all();
    EXPECT_EQ(field(logins[0]->body, "role"), "app");
    EXPECT_EQ(field(logins[0]->body, "jwt"), "eyJ.sa-token-1.sig");
    EXPECT_TRUE(logins[0]->token.empty());  // a login carries no token
    ASSERT_EQ(users.size(), 1u);
    EXPECT_TRUE(logs.contains("vault: logged in (kubernetes login): token #1"));
    const TokenStatus st = controller->status().token;
    EXPECT_EQ(st.method, "kubernetes");
    EXPECT_EQ(st.auth_path, "auth/kubernetes");
    EXPECT_EQ(st.role, "app");
    EXPECT_EQ(st.state, "valid");
}

TEST_F(AuthMethods, CustomMountIsUsed) {
    vault.jwt_mount_types["k8s/prod"] = "kubernetes";
    vault.jwt_roles["k8s/prod/app"] = {"jwt-a"};
    config.vault.jwt_file = write("sa-token", "jwt-a");
    use(AuthMethod::kKubernetes, "k8s/prod", "app");
    start();
    EXPECT_EQ(requests_to("POST", "auth/k8s/prod/login").size(), 1u);
    EXPECT_EQ(users.size(), 1u) << logs.all();
}

TEST_F(AuthMethods, TheJwtFileIsReadAgainAtEveryLogin) {
    // Projected tokens rotate: the second login must send what the file holds then.
    vault.jwt_roles["jwt/app"] = {"jwt-one", "jwt-two"};
    vault.token_ttl = 120s;
    vault.token_max_ttl = 120s;
    config.vault.jwt_file = write("jwt", "jwt-one\n");
    use(AuthMethod::kJwt, "jwt", "app");
    start();
    ASSERT_EQ(requests_to("POST", "auth/jwt/login").size(), 1u) << logs.all();
    write("jwt", "jwt-two\n");
    vault.jwt_roles["jwt/app"] = {"jwt-two"};  // the old one is no longer accepted
    for (int i = 0; i < 300; ++i) {
        clock.advance(1s);
        ASSERT_TRUE(held_work()) << "at " << clock.elapsed().count() << " ms\n" << logs.all();
    }
    const auto logins = requests_to("POST", "auth/jwt/login");
    ASSERT_GE(logins.size(), 3u) << logs.all();
    EXPECT_EQ(field(logins[0]->body, "jwt"), "jwt-one");
    for (std::size_t i = 1; i < logins.size(); ++i)
        EXPECT_EQ(field(logins[i]->body, "jwt"), "jwt-two");
    EXPECT_EQ(logs.count("failed"), 0) << logs.all();
}

TEST_F(AuthMethods, WrongRoleNamesMethodMountAndRole) {
    vault.jwt_roles["kubernetes/app"] = {"sa-jwt-secret"};
    config.vault.jwt_file = write("sa-token", "sa-jwt-secret");
    use(AuthMethod::kKubernetes, "kubernetes", "apq");
    start();
    clock.advance(10s);
    EXPECT_TRUE(users.empty());
    const std::string expected =
            "warning: vault: kubernetes login as role \"apq\" at auth/kubernetes failed: Vault "
            "answered 400: invalid role name \"apq\"; check auth_role in [vault] and the role "
            "in Vault";
    EXPECT_EQ(logs.count(expected), 1) << logs.all();
    const TokenStatus st = controller->status().token;
    EXPECT_EQ(st.state, "failing");
    EXPECT_NE(st.last_error.find("kubernetes login as role \"apq\" at auth/kubernetes failed"),
              std::string::npos)
            << st.last_error;
    EXPECT_EQ(logs.all().find("sa-jwt-secret"), std::string::npos);
}

TEST_F(AuthMethods, ExpiredJwtIsAClearErrorWithoutTheJwt) {
    vault.jwt_roles["jwt/app"] = {"fresh"};
    config.vault.jwt_file = write("jwt", "eyJhbGciOi.expired-payload.sig");
    use(AuthMethod::kJwt, "jwt", "app");
    start();
    EXPECT_TRUE(
            logs.contains("jwt login as role \"app\" at auth/jwt failed: Vault answered 400: "
                          "error validating token: token is expired; check auth_role"))
            << logs.all();
    EXPECT_EQ(logs.all().find("expired-payload"), std::string::npos);
    write("jwt", "fresh");  // the issuer writes a new one: the next attempt uses it
    EXPECT_TRUE(clock.advance_until([&] { return !users.empty(); }, 60s)) << logs.all();
}

TEST_F(AuthMethods, KubernetesTokenRefusedByTokenReview) {
    vault.jwt_roles["kubernetes/app"] = {"good"};
    config.vault.jwt_file = write("sa-token", "stale-sa-token");
    use(AuthMethod::kKubernetes, "kubernetes", "app");
    start();
    EXPECT_TRUE(
            logs.contains("kubernetes login as role \"app\" at auth/kubernetes failed: Vault "
                          "answered 403: permission denied; check auth_role"))
            << logs.all();
    EXPECT_EQ(logs.all().find("stale-sa-token"), std::string::npos);
}

TEST_F(AuthMethods, UnreadableJwtFileNamesTheFileAndWhatToDo) {
    vault.jwt_roles["kubernetes/app"] = {"sa"};
    config.vault.jwt_file = write("sa-token", "sa");
    use(AuthMethod::kKubernetes, "kubernetes", "app");
    ::unlink(config.vault.jwt_file.c_str());  // the projected volume went away
    start();
    EXPECT_TRUE(users.empty());
    EXPECT_TRUE(
            logs.contains("kubernetes login as role \"app\" at auth/kubernetes: jwt_file: "
                          "cannot read " +
                          config.vault.jwt_file +
                          ": No such file or directory; the pod's service-account token "
                          "must be mounted there"))
            << logs.all();
    EXPECT_EQ(vault.count("POST", "auth/kubernetes/login"), 0);
    write("sa-token", "sa\n");
    EXPECT_TRUE(clock.advance_until([&] { return !users.empty(); }, 60s)) << logs.all();
}

TEST_F(AuthMethods, CertLoginSendsTheRoleNameOrNothing) {
    vault.cert_roles["cert"] = {"web"};
    config.vault.client_cert = "/unused/by/the/fake.pem";
    use(AuthMethod::kCert, "cert", "web");
    start();
    auto logins = requests_to("POST", "auth/cert/login");
    ASSERT_EQ(logins.size(), 1u);
    EXPECT_EQ(logins[0]->body, R"({"name":"web"})");
    EXPECT_EQ(users.size(), 1u) << logs.all();
    EXPECT_EQ(controller->status().token.method, "cert");
}

TEST_F(AuthMethods, CertLoginWithoutRole) {
    vault.cert_roles["tls-certs"] = {""};
    use(AuthMethod::kCert, "tls-certs", "");
    start();
    auto logins = requests_to("POST", "auth/tls-certs/login");
    ASSERT_EQ(logins.size(), 1u);
    EXPECT_EQ(logins[0]->body, "{}");
    EXPECT_EQ(users.size(), 1u) << logs.all();
}

TEST_F(AuthMethods, CertLoginRefusedNamesTheRole) {
    vault.cert_roles["cert"] = {"web"};
    use(AuthMethod::kCert, "cert", "db");
    start();
    EXPECT_TRUE(
            logs.contains("cert login as role \"db\" at auth/cert failed: Vault answered 400: "
                          "invalid certificate role \"db\"; check auth_role in [vault], "
                          "client_cert/client_key"))
            << logs.all();
}

TEST_F(AuthMethods, AppRoleAtACustomMount) {
    vault.approle_mount = "team/approle";
    config.vault.role_id_file = write("role_id", vault.role_id);
    config.vault.secret_id_file = write("secret_id", vault.secret_id);
    use(AuthMethod::kAppRole, "team/approle", "");
    start();
    const auto logins = requests_to("POST", "auth/team/approle/login");
    ASSERT_EQ(logins.size(), 1u);
    EXPECT_EQ(field(logins[0]->body, "role_id"), vault.role_id);
    EXPECT_EQ(field(logins[0]->body, "secret_id"), vault.secret_id);
    EXPECT_EQ(users.size(), 1u);
}

class WrappedSecretId : public AuthMethods {
protected:
    void SetUp() override {
        AuthMethods::SetUp();
        config.vault.role_id_file = write("role_id", vault.role_id);
        use(AuthMethod::kAppRole, "approle", "");
        config.vault.secret_id_wrapped = true;
    }
};

TEST_F(WrappedSecretId, UnwrappedOnceAndKeptForLaterLogins) {
    const std::string wrapping =
            vault.wrap_secret_id("auth/approle/role/pgbv/secret-id", vault.secret_id);
    config.vault.secret_id_file = write("secret_id", wrapping + "\n");
    vault.token_ttl = 120s;
    vault.token_max_ttl = 120s;
    start();
    ASSERT_EQ(users.size(), 1u) << logs.all();
    EXPECT_EQ(vault.count("POST", "sys/wrapping/lookup"), 1);
    ASSERT_EQ(vault.count("POST", "sys/wrapping/unwrap"), 1);
    EXPECT_EQ(requests_to("POST", "sys/wrapping/unwrap")[0]->token, wrapping);
    auto logins = requests_to("POST", "auth/approle/login");
    ASSERT_EQ(logins.size(), 1u);
    EXPECT_EQ(field(logins[0]->body, "secret_id"), vault.secret_id);
    EXPECT_TRUE(logs.contains("vault: unwrapped the secret ID in " + config.vault.secret_id_file));
    // Token max TTL 120 s: several logins in 300 s, all with the kept secret ID.
    for (int i = 0; i < 300; ++i) {
        clock.advance(1s);
        ASSERT_TRUE(held_work()) << logs.all();
    }
    logins = requests_to("POST", "auth/approle/login");
    ASSERT_GE(logins.size(), 3u);
    for (const auto* l : logins)
        EXPECT_EQ(field(l->body, "secret_id"), vault.secret_id);
    EXPECT_EQ(vault.count("POST", "sys/wrapping/unwrap"), 1);
    EXPECT_EQ(vault.count("POST", "sys/wrapping/lookup"), 1);
    EXPECT_EQ(logs.all().find(vault.secret_id), std::string::npos);
    EXPECT_EQ(logs.all().find(wrapping), std::string::npos);

    // A new wrapped secret ID is delivered: unwrapped at the next login, once.
    vault.secret_id = "secret-id-2";
    const std::string wrapping2 =
            vault.wrap_secret_id("auth/approle/role/pgbv/secret-id", vault.secret_id);
    write("secret_id", wrapping2 + "\n");
    const int before = vault.count("POST", "auth/approle/login");
    EXPECT_TRUE(clock.advance_until(
            [&] { return vault.count("POST", "auth/approle/login") > before; }, 200s));
    EXPECT_EQ(vault.count("POST", "sys/wrapping/unwrap"), 2);
    EXPECT_EQ(field(vault.requests.back().path == "auth/approle/login"
                            ? vault.requests.back().body
                            : requests_to("POST", "auth/approle/login").back()->body,
                    "secret_id"),
              "secret-id-2");
}

TEST_F(WrappedSecretId, AlreadyUsedWrappingTokenIsAClearError) {
    const std::string wrapping =
            vault.wrap_secret_id("auth/approle/role/pgbv/secret-id", vault.secret_id);
    vault.wrapped[wrapping].used = true;  // someone (or a previous run) unwrapped it
    config.vault.secret_id_file = write("secret_id", wrapping);
    start();
    clock.advance(5s);
    EXPECT_TRUE(users.empty());
    EXPECT_EQ(vault.count("POST", "sys/wrapping/unwrap"), 0);
    EXPECT_EQ(vault.count("POST", "auth/approle/login"), 0);
    EXPECT_TRUE(logs.contains("secret_id_file " + config.vault.secret_id_file +
                              " holds a response-wrapping token that Vault no longer knows: it "
                              "was already unwrapped (a wrapping token works once) or it expired "
                              "(Vault answered 400); deliver a new wrapped secret ID there"))
            << logs.all();
    EXPECT_EQ(logs.all().find(wrapping), std::string::npos);
    EXPECT_EQ(controller->status().token.state, "failing");
}

TEST_F(WrappedSecretId, ExpiredWrappingToken) {
    const std::string wrapping =
            vault.wrap_secret_id("auth/approle/role/pgbv/secret-id", vault.secret_id, 30s);
    config.vault.secret_id_file = write("secret_id", wrapping);
    clock.advance(31s);
    start();
    EXPECT_TRUE(logs.contains("was already unwrapped (a wrapping token works once) or it expired"))
            << logs.all();
}

TEST_F(WrappedSecretId, ATokenFromAnotherPathIsNotUnwrapped) {
    const std::string wrapping = vault.wrap_secret_id("database/creds/app", "not-a-secret-id");
    config.vault.secret_id_file = write("secret_id", wrapping);
    start();
    EXPECT_EQ(vault.count("POST", "sys/wrapping/unwrap"), 0);
    EXPECT_TRUE(
            logs.contains("holds a wrapping token created by database/creds/app, not by "
                          "auth/approle/role/<role>/secret-id: refusing to unwrap it"))
            << logs.all();
}

TEST_F(AuthMethods, BatchTokensFromALoginAreNeverRenewed) {
    vault.batch_tokens = true;
    vault.token_ttl = 300s;
    vault.token_max_ttl = 300s;
    config.vault.role_id_file = write("role_id", vault.role_id);
    config.vault.secret_id_file = write("secret_id", vault.secret_id);
    use(AuthMethod::kAppRole, "approle", "");
    start();
    ASSERT_EQ(users.size(), 1u);
    EXPECT_TRUE(logs.contains("batch token (never renewed; leases end with it)")) << logs.all();
    EXPECT_TRUE(controller->status().token.batch);
    for (int i = 0; i < 1000; ++i) {
        clock.advance(1s);
        ASSERT_TRUE(held_work()) << "at " << clock.elapsed().count() << " ms\n" << logs.all();
    }
    EXPECT_EQ(vault.count("POST", "auth/token/renew-self"), 0);
    EXPECT_GE(vault.count("POST", "auth/approle/login"), 4);
}

TEST_F(AuthMethods, BatchTokenFromAFileIsNeverRenewedAndItsEndIsExplained) {
    const std::string token = vault.issue_token(100s, 100s, false, true);
    config.vault.token_file = write("token", token + "\n");
    use(AuthMethod::kToken, "", "");
    start();
    ASSERT_EQ(users.size(), 1u) << logs.all();
    EXPECT_TRUE(controller->status().token.batch);
    clock.advance(80s);
    EXPECT_EQ(vault.count("POST", "auth/token/renew-self"), 0);
    EXPECT_EQ(logs.count("warning: vault: token_file " + config.vault.token_file +
                         " still holds the current token, which ends soon and cannot be renewed "
                         "(a batch token); the token method cannot log in again by itself, so "
                         "credentials fetched with it end with it: waiting for a new token there"),
              1)
            << logs.all();
    // A new token written there (a Vault Agent sink) is taken up at once.
    const std::string token2 = vault.issue_token(3600s, 3600s, false, true);
    write("token", token2 + "\n");
    EXPECT_TRUE(clock.advance_until(
            [&] {
                const auto* l = users.empty() ? nullptr : vault.lease_of_user(users.back());
                return l != nullptr && l->token == token2;
            },
            30s))
            << logs.all();
    EXPECT_EQ(vault.count("POST", "auth/token/renew-self"), 0);
    EXPECT_EQ(logs.all().find(token), std::string::npos);
}

TEST_F(AuthMethods, UnreadableTokenFileSaysWhatToDo) {
    config.vault.token_file = dir_ + "/no-token";
    use(AuthMethod::kToken, "", "");
    start();
    EXPECT_TRUE(logs.contains("reading the Vault token: cannot read " + dir_ +
                              "/no-token: No such file or directory; token_file must hold the "
                              "Vault token, readable by the controller's user"))
            << logs.all();
}

}  // namespace
}  // namespace pgbv::ctl::testing
