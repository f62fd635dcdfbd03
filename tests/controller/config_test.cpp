// The configuration file: every key, the environment overrides, every error with file:line.

#include "controller/config.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <map>
#include <string>

namespace pgbv::ctl {
namespace {

using namespace std::chrono_literals;

class ConfigTest : public ::testing::Test {
protected:
    void SetUp() override {
        char tmpl[] = "/tmp/pgbv-config-XXXXXX";
        dir_ = mkdtemp(tmpl);
        write("token", "hvs.abc\n");
        write("role_id", "r\n");
        write("secret_id", "s\n");
        write("ca.pem", "-----BEGIN CERTIFICATE-----\n");
    }
    void TearDown() override { std::system(("rm -rf " + dir_).c_str()); }

    std::string write(const std::string& name, const std::string& text) {
        const std::string p = dir_ + "/" + name;
        std::ofstream(p) << text;
        return p;
    }

    ConfigResult parse(const std::string& text) {
        return parse_config(text, dir_ + "/controller.ini",
                            [this](const char* name) -> const char* {
                                auto it = env_.find(name);
                                return it == env_.end() ? nullptr : it->second.c_str();
                            });
    }

    // The error for `text`, with the file's path replaced by "F".
    std::string error(const std::string& text) {
        ConfigResult r = parse(text);
        EXPECT_FALSE(r.config.has_value()) << "expected an error for:\n" << text;
        std::string e = r.error;
        const std::string path = dir_ + "/controller.ini";
        if (e.rfind(path, 0) == 0) e = "F" + e.substr(path.size());
        return e;
    }

    std::string dir_;
    std::map<std::string, std::string> env_;
};

const char* kGood = R"(; a comment
# another
[vault]
address = https://vault.example.com:8200/
namespace = team-a
auth_method = approle
role_id_file = role_id
secret_id_file = secret_id
approle_mount = auth-approle
request_timeout = 2500ms
retry_min = 2
retry_max = 1m
ca_file = ca.pem

[controller]
plugin_socket = /run/pgbv/plugin.sock
plugin_socket_mode = 0600
allowed_uids = 0, 70 1000
max_plugin_clients = 4
admin_socket = admin.sock
log_level = debug

[set.app]
role = app
rotation_margin = 90s

[set.reports-ro]
mount = team/db
role = reports_ro
)";

TEST_F(ConfigTest, ParsesEveryKey) {
    ConfigResult r = parse(kGood);
    ASSERT_TRUE(r.config) << r.error;
    const Config& c = *r.config;
    EXPECT_EQ(c.vault.address, "https://vault.example.com:8200");
    EXPECT_EQ(c.vault.name_space, "team-a");
    EXPECT_EQ(c.vault.auth_method, AuthMethod::kAppRole);
    EXPECT_EQ(c.vault.role_id_file, dir_ + "/role_id");
    EXPECT_EQ(c.vault.secret_id_file, dir_ + "/secret_id");
    EXPECT_EQ(c.vault.approle_mount, "auth-approle");
    EXPECT_EQ(c.vault.request_timeout, 2500ms);
    EXPECT_EQ(c.vault.retry_min, 2s);
    EXPECT_EQ(c.vault.retry_max, 60s);
    EXPECT_EQ(c.vault.ca_file, dir_ + "/ca.pem");
    EXPECT_EQ(c.controller.plugin_socket, "/run/pgbv/plugin.sock");
    EXPECT_EQ(c.controller.plugin_socket_mode, 0600u);
    EXPECT_EQ(c.controller.allowed_uids, (std::vector<uid_t>{0, 70, 1000}));
    EXPECT_EQ(c.controller.max_plugin_clients, 4);
    EXPECT_EQ(c.controller.admin_socket, dir_ + "/admin.sock");
    EXPECT_EQ(c.controller.log_level, log::Level::kDebug);
    ASSERT_EQ(c.sets.size(), 2u);
    EXPECT_EQ(c.sets[0].name, "app");
    EXPECT_EQ(c.sets[0].mount, "database");
    EXPECT_EQ(c.sets[0].role, "app");
    EXPECT_EQ(c.sets[0].rotation_margin, 90s);
    EXPECT_EQ(c.sets[1].name, "reports-ro");
    EXPECT_EQ(c.sets[1].mount, "team/db");
    EXPECT_EQ(c.sets[1].rotation_margin, 60s);
}

TEST_F(ConfigTest, Defaults) {
    ConfigResult r =
            parse("[vault]\naddress=http://127.0.0.1:8200\ntoken_file=token\n"
                  "[controller]\nplugin_socket=/tmp/p.sock\n[set.a]\nrole=a\n");
    ASSERT_TRUE(r.config) << r.error;
    EXPECT_EQ(r.config->vault.auth_method, AuthMethod::kToken);
    EXPECT_EQ(r.config->vault.approle_mount, "approle");
    EXPECT_EQ(r.config->vault.request_timeout, 10s);
    EXPECT_EQ(r.config->controller.plugin_socket_mode, 0660u);
    EXPECT_EQ(r.config->controller.allowed_uids, std::vector<uid_t>{::geteuid()});
    EXPECT_EQ(r.config->controller.max_plugin_clients, 16);
    EXPECT_TRUE(r.config->controller.admin_socket.empty());
    EXPECT_EQ(r.config->controller.log_level, log::Level::kInfo);
}

TEST_F(ConfigTest, EnvironmentOverridesTheFile) {
    env_["VAULT_ADDR"] = "https://other:8201";
    env_["VAULT_TOKEN"] = "hvs.from-env";
    env_["VAULT_NAMESPACE"] = "ns2";
    env_["VAULT_CACERT"] = dir_ + "/ca.pem";
    ConfigResult r =
            parse("[vault]\naddress=http://127.0.0.1:8200\n"
                  "[controller]\nplugin_socket=/tmp/p.sock\n[set.a]\nrole=a\n");
    ASSERT_TRUE(r.config) << r.error;
    EXPECT_EQ(r.config->vault.address, "https://other:8201");
    EXPECT_TRUE(r.config->vault.token_from_env);
    EXPECT_EQ(r.config->vault.name_space, "ns2");
    EXPECT_EQ(r.config->vault.ca_file, dir_ + "/ca.pem");
}

TEST_F(ConfigTest, VaultAddrAloneIsEnough) {
    env_["VAULT_ADDR"] = "http://127.0.0.1:8200";
    env_["VAULT_TOKEN"] = "x";
    ConfigResult r = parse("[controller]\nplugin_socket=/tmp/p.sock\n[set.a]\nrole=a\n");
    ASSERT_TRUE(r.config) << r.error;
}

TEST_F(ConfigTest, ErrorsNameFileAndLine) {
    const std::string head =
            "[vault]\naddress=http://v:8200\ntoken_file=token\n"
            "[controller]\nplugin_socket=/tmp/p.sock\n";  // lines 1-5
    EXPECT_EQ(error(head + "[set.a]\nrole=a\nfoo = 1\n"),
              "F:8: unknown key 'foo' in [set.a] (see controller/CONFIG.md for the valid keys)");
    EXPECT_EQ(error(head + "[set.a]\nrole =\n"), "F:7: key 'role' has no value");
    EXPECT_EQ(
            error("[vault]\naddress = ftp://vault\n"),
            "F:2: address 'ftp://vault' is not a valid Vault URL; expected http(s)://host[:port]");
    EXPECT_EQ(error("[vault]\naddress = https://vault:99999\n"),
              "F:2: address 'https://vault:99999' is not a valid Vault URL; expected "
              "http(s)://host[:port]");
    EXPECT_EQ(error(head + "[set.a]\nrole=a\n[set.b]\nrole=b\n[set.a]\nrole=c\n"),
              "F:10: duplicate credential set 'a' (first defined at line 6)");
    EXPECT_EQ(error(head + "[set.a]\nrole=a\nrole=b\n"),
              "F:8: duplicate key 'role' in [set.a] (first set at line 7)");
    EXPECT_EQ(error("[vault]\ntoken_file = /nonexistent/token\n"),
              "F:2: token_file '/nonexistent/token': cannot read it: No such file or directory");
    EXPECT_EQ(error("[vault]\nca_file = missing.pem\n"),
              "F:2: ca_file '" + dir_ + "/missing.pem': cannot read it: No such file or directory");
    EXPECT_EQ(error("[vault]\nrequest_timeout = soon\n"),
              "F:2: request_timeout 'soon' is not a duration (examples: 10, 10s, 500ms, 5m, 1h)");
    EXPECT_EQ(error("[vault]\nauth_method = kerberos\n"),
              "F:2: auth_method 'kerberos' is not supported; use token, approle, kubernetes, "
              "jwt or cert");
    EXPECT_EQ(error("[databases]\n"),
              "F:1: unknown section [databases]; expected [vault], [controller] or [set.<name>]");
    EXPECT_EQ(error("address = x\n"),
              "F:1: key 'address' outside of any section; put it under [vault], [controller] or "
              "[set.<name>]");
    EXPECT_EQ(error("[vault]\njust words\n"),
              "F:2: expected 'key = value' or '[section]', got a line without '='");
    EXPECT_EQ(error("[set.bad name]\n"),
              "F:1: credential set name 'bad name' must be 1-63 characters of [A-Za-z0-9_.-]");
    EXPECT_EQ(error(head + "[set.a]\nmount=../x\nrole=a\n"),
              "F:7: mount '../x' is not a valid mount path ([A-Za-z0-9_.-] segments separated by "
              "'/')");
    EXPECT_EQ(error("[controller]\nplugin_socket_mode = 999\n"),
              "F:2: plugin_socket_mode '999' is not an octal mode like 0660");
    EXPECT_EQ(error("[controller]\nallowed_uids = nosuchuser-pgbv\n"),
              "F:2: allowed_uids: 'nosuchuser-pgbv' is neither a uid nor a known user");
    EXPECT_EQ(error("[controller]\nmax_plugin_clients = 0\n"),
              "F:2: max_plugin_clients '0' must be a number from 1 to 1024");
    EXPECT_EQ(error("[controller]\nlog_level = loud\n"),
              "F:2: log_level 'loud' must be error, warning, info or debug");
    EXPECT_EQ(error("[vault\n"), "F:1: section header lacks its closing ']'");
    EXPECT_EQ(error("[vault]\n[vault]\n"), "F:2: duplicate section [vault] (first at line 1)");
}

TEST_F(ConfigTest, ErrorsAboutTheWholeFile) {
    EXPECT_EQ(error("[controller]\nplugin_socket=/tmp/p.sock\n"),
              "F: no [vault] section, and VAULT_ADDR is not set: the controller needs Vault's "
              "address");
    EXPECT_EQ(error("[vault]\naddress=http://v\n[controller]\nplugin_socket=/tmp/p\n[set.a]\n"
                    "role=a\n"),
              "F:1: auth_method token needs a token: set token_file in [vault] or the "
              "VAULT_TOKEN environment variable");
    EXPECT_EQ(error("[vault]\naddress=http://v\nauth_method=approle\nrole_id_file=role_id\n"),
              "F:3: auth_method approle needs secret_id_file in [vault]");
    EXPECT_EQ(error("[vault]\naddress=http://v\ntoken_file=token\n[set.a]\nrole=a\n"),
              "F: [controller] plugin_socket is not set: the plugin needs a socket to connect to");
    EXPECT_EQ(
            error("[vault]\naddress=http://v\ntoken_file=token\n[controller]\nplugin_socket=/p\n"),
            "F: no credential set: add a [set.<name>] section with a role");
    EXPECT_EQ(error("[vault]\naddress=http://v\ntoken_file=token\n[controller]\nplugin_socket=/p\n"
                    "[set.a]\nmount=db\n"),
              "F:6: [set.a]: role is not set");
    EXPECT_EQ(error("[vault]\naddress=http://v\ntoken_file=token\nretry_min=10\nretry_max=5\n"),
              "F:5: retry_min must not be above retry_max");
}

TEST_F(ConfigTest, EnvironmentErrors) {
    env_["VAULT_ADDR"] = "vault:8200";
    EXPECT_EQ(error("[vault]\n"),
              "VAULT_ADDR: 'vault:8200' is not a valid Vault URL; expected http(s)://host[:port]");
    env_["VAULT_ADDR"] = "http://vault:8200";
    env_["VAULT_CACERT"] = "/nonexistent.pem";
    EXPECT_EQ(error("[vault]\n"),
              "VAULT_CACERT: file '/nonexistent.pem': cannot read it: No such file or directory");
}

TEST_F(ConfigTest, UnreadableConfigFile) {
    ConfigResult r = load_config(dir_ + "/nope.ini", [](const char*) { return nullptr; });
    EXPECT_EQ(r.error, dir_ + "/nope.ini: cannot read the configuration file: No such file or "
                              "directory");
    r = load_config(dir_, [](const char*) { return nullptr; });
    EXPECT_EQ(r.error, dir_ + ": cannot read the configuration file: Is a directory");
}

TEST_F(ConfigTest, LoadsFromDisk) {
    const std::string p = write("c.ini", kGood);
    ConfigResult r = load_config(p, [](const char*) { return nullptr; });
    ASSERT_TRUE(r.config) << r.error;
    EXPECT_EQ(r.config->sets.size(), 2u);
}

TEST(ParseDuration, Units) {
    EXPECT_EQ(parse_duration("10"), Duration(10000));
    EXPECT_EQ(parse_duration("1.5"), Duration(1500));
    EXPECT_EQ(parse_duration("250ms"), Duration(250));
    EXPECT_EQ(parse_duration("2m"), Duration(120000));
    EXPECT_EQ(parse_duration("1h"), Duration(3600000));
    EXPECT_EQ(parse_duration("0"), Duration(0));
    EXPECT_FALSE(parse_duration(""));
    EXPECT_FALSE(parse_duration("s"));
    EXPECT_FALSE(parse_duration("-1"));
    EXPECT_FALSE(parse_duration("1d"));
    EXPECT_FALSE(parse_duration("1.2.3"));
}

TEST(NormalizeVaultAddress, Forms) {
    EXPECT_EQ(normalize_vault_address("https://vault"), "https://vault");
    EXPECT_EQ(normalize_vault_address("http://127.0.0.1:8200/"), "http://127.0.0.1:8200");
    EXPECT_EQ(normalize_vault_address("https://[::1]:8200"), "https://[::1]:8200");
    EXPECT_FALSE(normalize_vault_address("vault:8200"));
    EXPECT_FALSE(normalize_vault_address("https://"));
    EXPECT_FALSE(normalize_vault_address("https://user@vault"));
    EXPECT_FALSE(normalize_vault_address("https://vault/v1"));
    EXPECT_FALSE(normalize_vault_address("https://vault:"));
    EXPECT_FALSE(normalize_vault_address("https://vault:0"));
    EXPECT_FALSE(normalize_vault_address("https://vault:abc"));
}

}  // namespace
}  // namespace pgbv::ctl
