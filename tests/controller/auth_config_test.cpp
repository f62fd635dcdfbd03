// The [vault] keys of auth methods, TLS and health: values, defaults, environment, and an
// error naming file, line and what to do for every wrong combination.

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <map>
#include <string>

#include "controller/config.hpp"

namespace pgbv::ctl {
namespace {

using namespace std::chrono_literals;

class AuthConfig : public ::testing::Test {
protected:
    void SetUp() override {
        char tmpl[] = "/tmp/pgbv-authcfg-XXXXXX";
        dir_ = mkdtemp(tmpl);
        write("jwt", "eyJ.x.y\n");
        write("role_id", "r\n");
        write("secret_id", "s\n");
        write("client.pem", "-----BEGIN CERTIFICATE-----\n");
        write("client.key", "-----BEGIN PRIVATE KEY-----\n");
    }
    void TearDown() override { std::system(("rm -rf " + dir_).c_str()); }

    std::string write(const std::string& name, const std::string& text) {
        const std::string p = dir_ + "/" + name;
        std::ofstream(p) << text;
        return p;
    }

    // A whole file: [vault] with `vault` after the address, a controller and a set.
    std::string file(const std::string& vault,
                     const std::string& address = "https://vault.example.com:8200") const {
        return "[vault]\naddress = " + address + "\n" + vault +
               "[controller]\nplugin_socket = /tmp/p.sock\n[set.app]\nrole = app\n";
    }

    ConfigResult parse(const std::string& text) {
        return parse_config(text, dir_ + "/c.ini", [this](const char* name) -> const char* {
            auto it = env_.find(name);
            return it == env_.end() ? nullptr : it->second.c_str();
        });
    }

    Config ok(const std::string& text) {
        ConfigResult r = parse(text);
        EXPECT_TRUE(r.config.has_value()) << r.error << "\nfor:\n" << text;
        return r.config ? *r.config : Config{};
    }

    std::string error(const std::string& text) {
        ConfigResult r = parse(text);
        EXPECT_FALSE(r.config.has_value()) << "expected an error for:\n" << text;
        std::string e = r.error;
        const std::string path = dir_ + "/c.ini";
        if (e.rfind(path, 0) == 0) e = "F" + e.substr(path.size());
        std::size_t at;
        while ((at = e.find(dir_)) != std::string::npos)
            e.replace(at, dir_.size(), "D");
        return e;
    }

    std::string dir_;
    std::map<std::string, std::string> env_;
};

TEST_F(AuthConfig, Kubernetes) {
    Config c = ok(file("auth_method = kubernetes\nauth_role = app\njwt_file = jwt\n"));
    EXPECT_EQ(c.vault.auth_method, AuthMethod::kKubernetes);
    EXPECT_EQ(c.vault.auth_mount, "kubernetes");
    EXPECT_EQ(c.vault.auth_role, "app");
    EXPECT_EQ(c.vault.jwt_file, dir_ + "/jwt");
    c =
            ok(file("auth_method = kubernetes\nauth_mount = k8s/eu\nauth_role = app\n"
                    "jwt_file = jwt\n"));
    EXPECT_EQ(c.vault.auth_mount, "k8s/eu");
}

TEST_F(AuthConfig, KubernetesDefaultTokenPathMustBeReadable) {
    // This machine is not a pod: the default path is missing, and the error says so.
    if (::access("/var/run/secrets/kubernetes.io/serviceaccount/token", R_OK) == 0) {
        GTEST_SKIP() << "running in a pod: the default service-account token exists";
    }
    const std::string e = error(file("auth_method = kubernetes\nauth_role = app\n"));
    EXPECT_NE(e.find("F:3"), std::string::npos) << e;
    EXPECT_NE(e.find("/var/run/secrets/kubernetes.io/serviceaccount/token"), std::string::npos)
            << e;
    EXPECT_EQ(e.rfind("F:3: auth_method kubernetes reads the pod's service-account token from "
                      "/var/run/secrets/kubernetes.io/serviceaccount/token (the default "
                      "jwt_file), which cannot be read: ",
                      0),
              0u)
            << e;
    EXPECT_NE(e.find("or set jwt_file in [vault]"), std::string::npos) << e;
}

TEST_F(AuthConfig, JwtAndCert) {
    Config c = ok(file("auth_method = jwt\nauth_role = ci\njwt_file = jwt\nauth_mount = gitlab\n"));
    EXPECT_EQ(c.vault.auth_method, AuthMethod::kJwt);
    EXPECT_EQ(c.vault.auth_mount, "gitlab");
    c = ok(file("auth_method = cert\nclient_cert = client.pem\nclient_key = client.key\n"));
    EXPECT_EQ(c.vault.auth_method, AuthMethod::kCert);
    EXPECT_EQ(c.vault.auth_mount, "cert");
    EXPECT_TRUE(c.vault.auth_role.empty());
    EXPECT_EQ(c.vault.client_cert, dir_ + "/client.pem");
    EXPECT_EQ(c.vault.client_key, dir_ + "/client.key");
    c =
            ok(file("auth_method = cert\nauth_role = web\nclient_cert = client.pem\n"
                    "client_key = client.key\n"));
    EXPECT_EQ(c.vault.auth_role, "web");
}

TEST_F(AuthConfig, AppRoleMountAndItsOldName) {
    Config c =
            ok(file("auth_method = approle\nrole_id_file = role_id\nsecret_id_file = secret_id\n"
                    "auth_mount = team-approle\n"));
    EXPECT_EQ(c.vault.auth_mount, "team-approle");
    EXPECT_EQ(c.vault.approle_mount, "team-approle");
    c =
            ok(file("auth_method = approle\nrole_id_file = role_id\nsecret_id_file = secret_id\n"
                    "approle_mount = old-name\nsecret_id_wrapped = true\n"));
    EXPECT_EQ(c.vault.auth_mount, "old-name");
    EXPECT_TRUE(c.vault.secret_id_wrapped);
    c = ok(file("auth_method = approle\nrole_id_file = role_id\nsecret_id_file = secret_id\n"));
    EXPECT_EQ(c.vault.auth_mount, "approle");
    EXPECT_FALSE(c.vault.secret_id_wrapped);
}

TEST_F(AuthConfig, TlsAndHealthKeys) {
    Config c =
            ok(file("auth_method = jwt\nauth_role = r\njwt_file = jwt\n"
                    "client_cert = client.pem\nclient_key = client.key\n"
                    "tls_server_name = vault.internal\ntls_skip_verify = true\n"
                    "health_interval = 15s\n"));
    EXPECT_EQ(c.vault.tls_server_name, "vault.internal");
    EXPECT_TRUE(c.vault.tls_skip_verify);
    EXPECT_EQ(c.vault.health_interval, 15s);
    c = ok(file("auth_method = jwt\nauth_role = r\njwt_file = jwt\nhealth_interval = 0\n"));
    EXPECT_EQ(c.vault.health_interval, 0s);
    EXPECT_FALSE(c.vault.tls_skip_verify);
    c = ok(file("auth_method = jwt\nauth_role = r\njwt_file = jwt\n"));
    EXPECT_EQ(c.vault.health_interval, 60s);
}

TEST_F(AuthConfig, EnvironmentOverridesTls) {
    env_["VAULT_CLIENT_CERT"] = dir_ + "/client.pem";
    env_["VAULT_CLIENT_KEY"] = dir_ + "/client.key";
    env_["VAULT_TLS_SERVER_NAME"] = "vault.env";
    env_["VAULT_SKIP_VERIFY"] = "true";
    Config c = ok(file("auth_method = cert\ntls_server_name = vault.file\n"));
    EXPECT_EQ(c.vault.client_cert, dir_ + "/client.pem");
    EXPECT_EQ(c.vault.client_key, dir_ + "/client.key");
    EXPECT_EQ(c.vault.tls_server_name, "vault.env");
    EXPECT_TRUE(c.vault.tls_skip_verify);
    env_["VAULT_SKIP_VERIFY"] = "0";
    EXPECT_FALSE(ok(file("auth_method = cert\ntls_skip_verify = true\n")).vault.tls_skip_verify);
    env_["VAULT_SKIP_VERIFY"] = "maybe";
    EXPECT_EQ(error(file("auth_method = cert\n")),
              "VAULT_SKIP_VERIFY: 'maybe' must be true or false");
    env_.erase("VAULT_SKIP_VERIFY");
    env_["VAULT_CLIENT_KEY"] = dir_ + "/nope.key";
    EXPECT_EQ(error(file("auth_method = cert\n")),
              "VAULT_CLIENT_KEY: file 'D/nope.key': cannot read it: No such file or directory");
}

TEST_F(AuthConfig, EveryWrongCombinationIsExplained) {
    const std::string approle = "role_id_file = role_id\nsecret_id_file = secret_id\n";
    EXPECT_EQ(error(file("auth_method = kubernetes\njwt_file = jwt\n")),
              "F:3: auth_method kubernetes needs auth_role in [vault]: the name of the role in "
              "Vault (auth/kubernetes/role/<name>)");
    EXPECT_EQ(error(file("auth_method = jwt\nauth_role = r\n")),
              "F:3: auth_method jwt needs jwt_file in [vault]: the file holding the JWT");
    EXPECT_EQ(error(file("auth_method = approle\n" + approle + "auth_role = app\n")),
              "F:6: auth_role is not used by auth_method approle: the AppRole is chosen by "
              "role_id_file; remove it");
    env_["VAULT_TOKEN"] = "x";
    EXPECT_EQ(error(file("auth_method = token\nauth_role = app\n")),
              "F:4: auth_role is not used by auth_method token: the token is given, not "
              "obtained by a login; remove it");
    EXPECT_EQ(error(file("auth_method = token\nauth_mount = tok\n")),
              "F:4: auth_mount is not used by auth_method token: the token is given, not "
              "obtained by a login; remove it");
    env_.erase("VAULT_TOKEN");
    EXPECT_EQ(error(file("auth_method = jwt\nauth_role = r\njwt_file = jwt\napprole_mount = a\n")),
              "F:6: approle_mount is only for auth_method approle; use auth_mount for "
              "auth_method jwt");
    EXPECT_EQ(error(file("auth_method = approle\n" + approle +
                         "approle_mount = a\nauth_mount = b\n")),
              "F:7: auth_mount repeats the mount set at line 6 (approle_mount is the old name "
              "of auth_mount); keep one");
    EXPECT_EQ(error(file("auth_method = approle\n" + approle + "jwt_file = jwt\n")),
              "F:6: jwt_file is not used by auth_method approle; remove it");
    EXPECT_EQ(error(file("auth_method = jwt\nauth_role = r\njwt_file = jwt\n"
                         "secret_id_wrapped = true\n")),
              "F:1: secret_id_wrapped is only for auth_method approle");
    EXPECT_EQ(error(file("auth_method = approle\n" + approle + "secret_id_wrapped = perhaps\n")),
              "F:6: secret_id_wrapped 'perhaps' must be true or false");
    EXPECT_EQ(error(file("auth_method = cert\n")),
              "F:3: auth_method cert needs client_cert and client_key in [vault] (or "
              "VAULT_CLIENT_CERT and VAULT_CLIENT_KEY): the TLS client certificate Vault's cert "
              "auth method checks");
    EXPECT_EQ(error(file("auth_method = cert\nclient_cert = client.pem\n")),
              "F:1: client_cert is set but client_key is not: give both (or VAULT_CLIENT_CERT "
              "and VAULT_CLIENT_KEY)");
    EXPECT_EQ(error(file("auth_method = cert\nclient_key = client.key\n")),
              "F:1: client_key is set but client_cert is not: give both (or VAULT_CLIENT_CERT "
              "and VAULT_CLIENT_KEY)");
    EXPECT_EQ(error(file("auth_method = cert\nclient_cert = client.pem\nclient_key = client.key\n",
                         "http://vault:8200")),
              "F:1: auth_method cert needs an https:// Vault address: the client certificate "
              "travels in TLS");
    EXPECT_EQ(error(file("auth_method = cert\nclient_cert = missing.pem\n")),
              "F:4: client_cert 'D/missing.pem': cannot read it: No such file or directory");
    EXPECT_EQ(error(file("auth_method = jwt\nauth_role = r\njwt_file = nojwt\n")),
              "F:5: jwt_file 'D/nojwt': cannot read it: No such file or directory");
    EXPECT_EQ(error(file("auth_method = ldap\n")),
              "F:3: auth_method 'ldap' is not supported; use token, approle, kubernetes, jwt or "
              "cert");
    EXPECT_EQ(error(file("auth_method = jwt\nauth_role = a/b\njwt_file = jwt\n")),
              "F:4: auth_role 'a/b' must be characters of [A-Za-z0-9_.-]");
    EXPECT_EQ(error(file("auth_method = jwt\nauth_role = r\njwt_file = jwt\nauth_mount = /x\n")),
              "F:6: auth_mount '/x' is not a valid mount path without \"auth/\" ([A-Za-z0-9_.-] "
              "segments separated by '/')");
    EXPECT_EQ(error(file("tls_server_name = vault:8200\n")),
              "F:3: tls_server_name 'vault:8200' must be a host name (no port, scheme or path)");
    EXPECT_EQ(error(file("tls_skip_verify = sometimes\n")),
              "F:3: tls_skip_verify 'sometimes' must be true or false");
    EXPECT_EQ(error(file("health_interval = often\n")),
              "F:3: health_interval 'often' is not a duration (examples: 10, 10s, 500ms, 5m, 1h)");
}

TEST(AuthMethodName, EveryMethod) {
    EXPECT_STREQ(auth_method_name(AuthMethod::kToken), "token");
    EXPECT_STREQ(auth_method_name(AuthMethod::kAppRole), "approle");
    EXPECT_STREQ(auth_method_name(AuthMethod::kKubernetes), "kubernetes");
    EXPECT_STREQ(auth_method_name(AuthMethod::kJwt), "jwt");
    EXPECT_STREQ(auth_method_name(AuthMethod::kCert), "cert");
}

}  // namespace
}  // namespace pgbv::ctl
