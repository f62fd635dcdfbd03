// Vault's answers, odd ones included: never a crash, never the body in an error.

#include "controller/vault_response.hpp"

#include <gtest/gtest.h>

#include <string>

namespace pgbv::ctl {
namespace {

using namespace std::chrono_literals;

HttpResponse make(long status, const std::string& body) {
    HttpResponse r;
    r.status = status;
    r.body.assign(body);
    return r;
}

const std::string kWhat = "credentials fetch (GET /v1/database/creds/app)";

TEST(VaultResponse, ParsesCredentials) {
    auto r = parse_credentials(
            make(200, R"({"request_id":"x","lease_id":"database/creds/app/abc","renewable":true,
                 "lease_duration":3600,"data":{"username":"v-a-app-xyz","password":"A1a-secret"},
                 "wrap_info":null,"warnings":null,"auth":null,"mount_type":"database"})"),
            kWhat);
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_EQ(r.value().lease_id, "database/creds/app/abc");
    EXPECT_EQ(r.value().ttl, 3600s);
    EXPECT_TRUE(r.value().renewable);
    EXPECT_EQ(r.value().username, "v-a-app-xyz");
    EXPECT_TRUE(r.value().password.equals("A1a-secret"));
}

TEST(VaultResponse, ParsesLoginAndRenewSelf) {
    auto r = parse_auth(
            make(200,
                 R"({"data":null,"warnings":["TTL of \"1h\" exceeded the effective max_ttl of \"9m50s\"; TTL value is capped accordingly"],
        "auth":{"client_token":"hvs.XYZ","accessor":"acc","policies":["p"],"lease_duration":590,"renewable":true}})"),
            "login");
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_TRUE(r.value().token.equals("hvs.XYZ"));
    EXPECT_EQ(r.value().ttl, 590s);
    EXPECT_TRUE(r.value().renewable);
    ASSERT_EQ(r.value().warnings.size(), 1u);
}

TEST(VaultResponse, ParsesLookupSelfAndLeaseRenewal) {
    auto t = parse_token_lookup(
            make(200,
                 R"({"data":{"ttl":120,"renewable":false,"creation_ttl":3600,"expire_time":null}})"),
            "lookup");
    ASSERT_TRUE(t.ok());
    EXPECT_EQ(t.value().ttl, 120s);
    EXPECT_FALSE(t.value().renewable);
    EXPECT_EQ(t.value().creation_ttl, 3600s);
    auto l = parse_lease_renewal(
            make(200,
                 R"({"lease_id":"database/creds/app/abc","renewable":true,"lease_duration":42,"warnings":null})"),
            "renew");
    ASSERT_TRUE(l.ok());
    EXPECT_EQ(l.value().ttl, 42s);
    EXPECT_TRUE(parse_no_content(make(204, ""), "revoke").ok());
}

TEST(VaultResponse, MultiLineVaultErrorsBecomeOneLine) {
    auto r = parse_credentials(
            make(403, R"({"errors":["1 error occurred:\n\t* permission denied\n\n"]})"), kWhat);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().kind, VaultError::Kind::kDenied);
    EXPECT_EQ(r.error().message, kWhat + ": HTTP 403: permission denied");

    auto two = error_of(
            make(400, R"({"errors":["2 errors occurred:\n\t* first\n\t* second\n\n","third"]})"),
            "x");
    ASSERT_TRUE(two);
    EXPECT_EQ(two->message, "x: HTTP 400: first; second; third");
    EXPECT_EQ(two->kind, VaultError::Kind::kRejected);
}

TEST(VaultResponse, StatusCodesAreClassified) {
    using K = VaultError::Kind;
    EXPECT_EQ(error_of(make(503, R"({"errors":["Vault is sealed"]})"), "x")->kind, K::kUnavailable);
    EXPECT_EQ(error_of(make(503, R"({"errors":["Vault is sealed"]})"), "x")->message,
              "x: HTTP 503: Vault is sealed");
    EXPECT_EQ(error_of(make(429, ""), "x")->kind, K::kUnavailable);
    EXPECT_EQ(error_of(make(500, "{}"), "x")->kind, K::kUnavailable);
    EXPECT_EQ(error_of(make(404, R"({"errors":[]})"), "x")->message,
              "x: HTTP 404 (no error message)");
    EXPECT_EQ(error_of(make(412, R"({"errors":["missing header"]})"), "x")->kind, K::kRejected);
    HttpResponse refused;
    refused.error = "Failed to connect to vault port 8200: Connection refused";
    auto e = error_of(refused, "x");
    EXPECT_EQ(e->kind, K::kUnavailable);
    EXPECT_EQ(e->message, "x: Failed to connect to vault port 8200: Connection refused");
    // Vault's renew-self past the max TTL is a 500 that means "no", not "down".
    EXPECT_EQ(
            error_of(
                    make(500,
                         R"({"errors":["1 error occurred:\n\t* past the max TTL, cannot renew\n\n"]})"),
                    "x")
                    ->kind,
            K::kRejected);
    EXPECT_FALSE(error_of(make(200, "{}"), "x"));
    EXPECT_FALSE(error_of(make(204, ""), "x"));
}

TEST(VaultResponse, ANonVaultErrorBodyIsNeverQuoted) {
    auto e = error_of(make(502, "<html>proxy says hunter2</html>"), "x");
    ASSERT_TRUE(e);
    EXPECT_EQ(e->message, "x: HTTP 502 with a non-Vault body of 31 bytes");
}

TEST(VaultResponse, GarbageAndTruncatedBodiesAreErrorsWithoutTheirContent) {
    const std::string full =
            R"({"lease_id":"l","renewable":true,"lease_duration":60,"data":{"username":"u","password":"hunter2-secret"}})";
    for (std::size_t cut = 0; cut < full.size(); ++cut) {
        auto r = parse_credentials(make(200, full.substr(0, cut)), kWhat);
        ASSERT_FALSE(r.ok()) << cut;
        EXPECT_EQ(r.error().kind, VaultError::Kind::kBadResponse);
        EXPECT_EQ(r.error().message.find("hunter2"), std::string::npos) << r.error().message;
    }
    for (const char* body : {"garbage", "[]", "null", "\"s\"", "{\"data\":[]}", "\x01\x02\xff",
                             "{\"data\":{\"username\":1,\"password\":2}}"}) {
        auto r = parse_credentials(make(200, body), kWhat);
        EXPECT_FALSE(r.ok()) << body;
    }
}

TEST(VaultResponse, MistypedOrMissingFieldsAreErrors) {
    EXPECT_FALSE(
            parse_auth(make(200, R"({"auth":{"client_token":"","lease_duration":1}})"), "x").ok());
    EXPECT_FALSE(parse_auth(make(200, R"({"auth":{"client_token":"t","lease_duration":"1"}})"), "x")
                         .ok());
    EXPECT_FALSE(parse_auth(make(200, R"({"auth":{"client_token":"t","lease_duration":-5}})"), "x")
                         .ok());
    EXPECT_FALSE(parse_auth(make(200, R"({"auth":null})"), "x").ok());
    EXPECT_FALSE(parse_token_lookup(make(200, R"({"data":{"ttl":1.5}})"), "x").ok());
    EXPECT_FALSE(parse_lease_renewal(make(200, R"({"lease_duration":null})"), "x").ok());
    auto static_role = parse_credentials(
            make(200,
                 R"({"lease_id":"","lease_duration":0,"data":{"username":"u","password":"p"}})"),
            kWhat);
    ASSERT_FALSE(static_role.ok());
    EXPECT_NE(static_role.error().message.find("dynamic database role"), std::string::npos);
}

TEST(VaultResponse, CredentialsTheWireCannotCarryAreRefused) {
    const std::string long_user(128, 'u');
    auto r = parse_credentials(
            make(200, R"({"lease_id":"l","lease_duration":60,"data":{"username":")" + long_user +
                              R"(","password":"p"}})"),
            kWhat);
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.error().message.find("username_template"), std::string::npos);
    auto nul = parse_credentials(
            make(200,
                 R"({"lease_id":"l","lease_duration":60,"data":{"username":"u","password":"a\u0000b"}})"),
            kWhat);
    EXPECT_FALSE(nul.ok());
    // Any printable password of up to 1024 bytes is fine.
    const std::string printable = R"(!#$%&'()*+,-./:;<=>?@[]^_`{|}~ \"\\)";
    auto ok = parse_credentials(
            make(200, R"({"lease_id":"l","lease_duration":60,"data":{"username":"u","password":")" +
                              printable + R"("}})"),
            kWhat);
    ASSERT_TRUE(ok.ok()) << ok.error().message;
    EXPECT_TRUE(ok.value().password.equals(R"(!#$%&'()*+,-./:;<=>?@[]^_`{|}~ "\)"));
}

TEST(VaultResponse, ErrorTextIsShortened) {
    const std::string longmsg(2000, 'e');
    auto e = error_of(make(400, R"({"errors":[")" + longmsg + R"("]})"), "x");
    ASSERT_TRUE(e);
    EXPECT_LT(e->message.size(), 400u);
}

}  // namespace
}  // namespace pgbv::ctl
