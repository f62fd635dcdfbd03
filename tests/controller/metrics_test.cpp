// The Prometheus exposition (format 0.0.4: HELP/TYPE, label escaping, histogram buckets)
// and the counters after a whole credential life on a fake clock against the fake Vault:
// rotations by reason, renewals, revocations, logins, an induced Vault failure, readiness.

#include "controller/metrics.hpp"

#include <gtest/gtest.h>

#include <cctype>
#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <sstream>
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
using Fault = FakeVault::Fault;

bool is_name(std::string_view s, bool colon) {
    if (s.empty() || std::isdigit(static_cast<unsigned char>(s[0]))) return false;
    for (char c : s) {
        if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && !(colon && c == ':'))
            return false;
    }
    return true;
}

// A sample line: name, optional {labels} with well-escaped values, one space, a value.
// Returns the part before the value ("name{labels}"), or "" if malformed.  (Hand-written:
// GCC 12 warns inside <regex> under the sanitizers, and warnings are errors.)
std::string sample_key(const std::string& line) {
    std::size_t i = 0;
    while (i < line.size() && line[i] != '{' && line[i] != ' ')
        ++i;
    if (!is_name(std::string_view(line).substr(0, i), true)) return {};
    if (i < line.size() && line[i] == '{') {
        ++i;
        for (bool first = true; i < line.size() && line[i] != '}'; first = false) {
            if (!first) {
                if (line[i] != ',') return {};
                ++i;
            }
            const std::size_t eq = line.find('=', i);
            if (eq == std::string::npos || !is_name(line.substr(i, eq - i), false)) return {};
            i = eq + 1;
            if (i >= line.size() || line[i] != '"') return {};
            for (++i; i < line.size() && line[i] != '"'; ++i) {
                if (line[i] == '\\') {
                    if (++i >= line.size() ||
                        std::string("\\\"n").find(line[i]) == std::string::npos)
                        return {};
                } else if (line[i] == '\n') {
                    return {};
                }
            }
            if (i >= line.size()) return {};
            ++i;  // the closing quote
        }
        if (i >= line.size()) return {};
        ++i;  // }
    }
    if (i >= line.size() || line[i] != ' ') return {};
    const std::string value = line.substr(i + 1);
    if (value != "+Inf" && value != "-Inf" && value != "NaN") {
        char* end = nullptr;
        std::strtod(value.c_str(), &end);
        if (value.empty() || std::isspace(static_cast<unsigned char>(value[0])) ||
            end != value.c_str() + value.size())
            return {};
    }
    return line.substr(0, i);
}

// Checks `text` line by line against the text format and returns its samples,
// "name{labels}" -> value (labels as written).  Fails the test on a malformed line, a
// sample before its family's TYPE and HELP, or a repeated HELP/TYPE/sample.
std::map<std::string, std::string> parse_exposition(const std::string& text) {
    static const std::set<std::string> kTypes = {"counter", "gauge", "histogram", "summary",
                                                 "untyped"};
    std::map<std::string, std::string> samples;
    std::map<std::string, std::string> types;
    std::set<std::string> helps;
    EXPECT_FALSE(text.empty());
    EXPECT_EQ(text.back(), '\n');
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line)) {
        if (line.rfind("# HELP ", 0) == 0) {
            const std::string rest = line.substr(7);
            const std::string name = rest.substr(0, rest.find(' '));
            EXPECT_TRUE(is_name(name, true) && rest.size() > name.size()) << line;
            EXPECT_TRUE(helps.insert(name).second) << "HELP twice: " << line;
        } else if (line.rfind("# TYPE ", 0) == 0) {
            const std::string rest = line.substr(7);
            const auto space = rest.find(' ');
            const std::string name = rest.substr(0, space);
            const std::string type = space == std::string::npos ? "" : rest.substr(space + 1);
            EXPECT_TRUE(is_name(name, true) && kTypes.count(type) == 1) << line;
            EXPECT_TRUE(types.emplace(name, type).second) << "TYPE twice: " << line;
        } else if (const std::string key = sample_key(line); !key.empty()) {
            std::string family = key.substr(0, key.find('{'));
            for (const std::string suffix : {"_bucket", "_sum", "_count"}) {
                if (family.size() > suffix.size() &&
                    family.compare(family.size() - suffix.size(), suffix.size(), suffix) == 0 &&
                    types.count(family.substr(0, family.size() - suffix.size())) != 0) {
                    family = family.substr(0, family.size() - suffix.size());
                }
            }
            EXPECT_EQ(types.count(family), 1u) << "no TYPE before " << line;
            EXPECT_EQ(helps.count(family), 1u) << "no HELP before " << line;
            EXPECT_TRUE(samples.emplace(key, line.substr(key.size() + 1)).second)
                    << "sample twice: " << line;
        } else {
            ADD_FAILURE() << "not a line of the text format: '" << line << "'";
        }
    }
    return samples;
}

TEST(Exposition, TheCheckerRefusesMalformedLines) {
    EXPECT_EQ(sample_key("a_b:c{x=\"1\",y=\"q\\\"\\n\"} 2.5"), "a_b:c{x=\"1\",y=\"q\\\"\\n\"}");
    EXPECT_EQ(sample_key("up 1"), "up");
    for (const char* bad : {"1up 1", "up", "up  1", "up{x=1} 1", "up{x=\"a\\q\"} 1", "up{x=\"a\"",
                            "up{x=\"a\"} one", "up{x=\"a\",} 1"}) {
        EXPECT_EQ(sample_key(bad), "") << bad;
    }
}

TEST(Exposition, EscapesLabelValuesAndHelp) {
    EXPECT_EQ(escape_label_value(R"(a\b"c)"
                                 "\n"
                                 "d"),
              R"(a\\b\"c\nd)");
    EXPECT_EQ(escape_help("back\\slash \"quoted\"\nnext"), "back\\\\slash \"quoted\"\\nnext");
    Exposition e;
    e.family("pgbv_x", "gauge", "Line one\nline two \\ done.");
    e.sample("pgbv_x", {{"set", "we\"ird\\set\nname"}, {"kind", "kv"}}, 3);
    EXPECT_EQ(e.text(),
              "# HELP pgbv_x Line one\\nline two \\\\ done.\n"
              "# TYPE pgbv_x gauge\n"
              "pgbv_x{set=\"we\\\"ird\\\\set\\nname\",kind=\"kv\"} 3\n");
    const auto samples = parse_exposition(e.text());
    EXPECT_EQ(samples.size(), 1u);
}

TEST(Exposition, SampleValues) {
    EXPECT_EQ(format_sample_value(0), "0");
    EXPECT_EQ(format_sample_value(42), "42");
    EXPECT_EQ(format_sample_value(-7), "-7");
    EXPECT_EQ(format_sample_value(1e15), "1000000000000000");
    EXPECT_EQ(format_sample_value(0.005), "0.005");
    EXPECT_EQ(format_sample_value(2.5), "2.5");
    EXPECT_EQ(format_sample_value(1.0 / 0.0), "+Inf");
    EXPECT_EQ(format_sample_value(-1.0 / 0.0), "-Inf");
    EXPECT_EQ(format_sample_value(std::nan("")), "NaN");
}

TEST(Exposition, HistogramBucketsAreCumulativeWithSumAndCount) {
    Histogram h({0.1, 1, 0.5});  // sorted on construction
    for (double v : {0.05, 0.1, 0.3, 0.7, 2.0, 40.0})
        h.observe(v);
    Exposition e;
    e.family("pgbv_h", "histogram", "A histogram.");
    e.histogram("pgbv_h", {{"path_class", "creds"}}, h);
    EXPECT_EQ(e.text(),
              "# HELP pgbv_h A histogram.\n"
              "# TYPE pgbv_h histogram\n"
              "pgbv_h_bucket{path_class=\"creds\",le=\"0.1\"} 2\n"  // le is inclusive
              "pgbv_h_bucket{path_class=\"creds\",le=\"0.5\"} 3\n"
              "pgbv_h_bucket{path_class=\"creds\",le=\"1\"} 4\n"
              "pgbv_h_bucket{path_class=\"creds\",le=\"+Inf\"} 6\n"
              "pgbv_h_sum{path_class=\"creds\"} 43.15\n"
              "pgbv_h_count{path_class=\"creds\"} 6\n");
    parse_exposition(e.text());
}

TEST(VaultPathClass, EveryCallTheControllerMakes) {
    EXPECT_EQ(vault_path_class("auth/approle/login"), "login");
    EXPECT_EQ(vault_path_class("auth/team/kubernetes/login"), "login");
    EXPECT_EQ(vault_path_class("auth/token/lookup-self"), "token_lookup");
    EXPECT_EQ(vault_path_class("auth/token/renew-self"), "token_renew");
    EXPECT_EQ(vault_path_class("sys/wrapping/unwrap"), "wrapping");
    EXPECT_EQ(vault_path_class("sys/wrapping/lookup"), "wrapping");
    EXPECT_EQ(vault_path_class("sys/health?standbyok=true&perfstandbyok=true"), "health");
    EXPECT_EQ(vault_path_class("sys/leases/renew"), "lease_renew");
    EXPECT_EQ(vault_path_class("sys/leases/revoke"), "lease_revoke");
    EXPECT_EQ(vault_path_class("database/creds/app"), "creds");
    EXPECT_EQ(vault_path_class("team/db/creds/app"), "creds");
    EXPECT_EQ(vault_path_class("database/static-creds/app"), "static_creds");
    EXPECT_EQ(vault_path_class("secret/data/apps/db"), "kv");
    EXPECT_EQ(vault_path_class("sys/mounts"), "other");
    EXPECT_EQ(vault_path_class("something/else"), "other");
}

SetStatus serving_set(const std::string& name, std::uint32_t holders) {
    SetStatus s;
    s.name = name;
    s.kind = "dynamic";
    s.state = "serving";
    s.generation = 3;
    s.lease_ttl = 40;
    s.deadline = 1000 + 250;
    GenerationStatus g;
    g.number = 3;
    g.state = "current";
    g.holders = holders;
    s.generations.push_back(g);
    return s;
}

TEST(Readiness, EverySetNeedsCredentialsBeforeTheirDeadlineDeliveredToAPlugin) {
    Status st;
    st.now = 1000;
    EXPECT_TRUE(readiness(st).ready);  // no set: nothing to wait for
    st.sets.push_back(serving_set("app", 1));
    EXPECT_TRUE(readiness(st).ready);
    SetStatus none;
    none.name = "reports";
    none.state = "fetching";
    st.sets.push_back(none);
    st.sets.push_back(serving_set("undelivered", 0));
    SetStatus expired = serving_set("old", 2);
    expired.deadline = 999;
    st.sets.push_back(expired);
    const Readiness r = readiness(st);
    EXPECT_FALSE(r.ready);
    ASSERT_EQ(r.reasons.size(), 3u);
    EXPECT_EQ(r.reasons[0], "set reports: no credentials yet (fetching)");
    EXPECT_EQ(r.reasons[1],
              "set undelivered: generation 3 has not reached any plugin connection (is "
              "PgBouncer connected?)");
    EXPECT_EQ(r.reasons[2],
              "set old: generation 3 has reached its deadline without a replacement (serving)");
}

TEST(MetricsRender, GaugesFromStatusAndEveryFamilyDeclared) {
    Metrics m;
    m.vault_request("creds", 200, 30ms);
    m.vault_request("creds", 0, 5000ms);
    m.rotation("app", "manual");
    m.rotation("app", "no such reason");
    m.renewal("app", true);
    m.renewal("app", false);
    m.login(true);
    m.plugin_connection(true);
    Status st;
    st.version = "9.9";
    st.now = 1000;
    st.uptime = 10;
    st.vault_state = "reachable";
    st.token.state = "valid";
    st.token.ttl = 77;
    st.plugin_clients = 2;
    st.sets.push_back(serving_set("app", 1));
    SetStatus kv;
    kv.name = "cfg\"x";  // escaped, whatever a name may hold
    kv.kind = "kv";
    kv.state = "fetching";
    st.sets.push_back(kv);
    const auto s = parse_exposition(m.render(st));
    EXPECT_EQ(s.at("pgbv_ready"), "0");  // cfg"x has nothing yet
    EXPECT_EQ(s.at("pgbv_vault_up"), "1");
    EXPECT_EQ(s.at("pgbv_token_seconds_left"), "77");
    EXPECT_EQ(s.at("pgbv_start_time_seconds"), "990");
    EXPECT_EQ(s.at("pgbv_build_info{version=\"9.9\"}"), "1");
    EXPECT_EQ(s.at("pgbv_plugin_connections"), "2");
    EXPECT_EQ(s.at("pgbv_plugin_connections_total{result=\"accepted\"}"), "1");
    EXPECT_EQ(s.at("pgbv_logins_total"), "1");
    EXPECT_EQ(s.at("pgbv_vault_requests_total{path_class=\"creds\",code=\"200\"}"), "1");
    EXPECT_EQ(s.at("pgbv_vault_requests_total{path_class=\"creds\",code=\"error\"}"), "1");
    EXPECT_EQ(s.at("pgbv_vault_request_duration_seconds_bucket{path_class=\"creds\",le=\"0.05\"}"),
              "1");
    EXPECT_EQ(s.at("pgbv_vault_request_duration_seconds_bucket{path_class=\"creds\",le=\"5\"}"),
              "2");
    EXPECT_EQ(s.at("pgbv_vault_request_duration_seconds_sum{path_class=\"creds\"}"), "5.03");
    EXPECT_EQ(s.at("pgbv_generation{set=\"app\",kind=\"dynamic\"}"), "3");
    EXPECT_EQ(s.at("pgbv_generation{set=\"cfg\\\"x\",kind=\"kv\"}"), "0");
    EXPECT_EQ(s.at("pgbv_lease_seconds_left{set=\"app\",kind=\"dynamic\"}"), "40");
    EXPECT_EQ(s.count("pgbv_lease_seconds_left{set=\"cfg\\\"x\",kind=\"kv\"}"), 0u);
    EXPECT_EQ(s.at("pgbv_deadline_seconds{set=\"app\",kind=\"dynamic\"}"), "250");
    EXPECT_EQ(s.at("pgbv_current_generation_plugins{set=\"app\",kind=\"dynamic\"}"), "1");
    EXPECT_EQ(s.at("pgbv_set_ready{set=\"app\",kind=\"dynamic\"}"), "1");
    EXPECT_EQ(s.at("pgbv_set_state{set=\"app\",kind=\"dynamic\",state=\"serving\"}"), "1");
    EXPECT_EQ(s.at("pgbv_set_state{set=\"app\",kind=\"dynamic\",state=\"expired\"}"), "0");
    EXPECT_EQ(s.at("pgbv_rotations_total{set=\"app\",kind=\"dynamic\",reason=\"manual\"}"), "1");
    EXPECT_EQ(s.at("pgbv_rotations_total{set=\"app\",kind=\"dynamic\",reason=\"other\"}"), "1");
    EXPECT_EQ(s.at("pgbv_rotations_total{set=\"app\",kind=\"dynamic\",reason=\"scheduled\"}"), "0");
    EXPECT_EQ(s.at("pgbv_renewals_total{set=\"app\",kind=\"dynamic\"}"), "1");
    EXPECT_EQ(s.at("pgbv_renewal_failures_total{set=\"app\",kind=\"dynamic\"}"), "1");
    EXPECT_EQ(s.at("pgbv_revocations_total{set=\"cfg\\\"x\",kind=\"kv\"}"), "0");
    // A set no longer in the status (removed by a reload) has no series.
    st.sets.pop_back();
    EXPECT_EQ(parse_exposition(m.render(st)).count("pgbv_generation{set=\"cfg\\\"x\",kind=\"kv\"}"),
              0u);
}

// The counters after a whole credential life with the controller wired as in main().
class MetricsLifecycle : public ::testing::Test {
protected:
    void SetUp() override {
        char tmpl[] = "/tmp/pgbv-metrics-XXXXXX";
        dir_ = mkdtemp(tmpl);
        std::ofstream(dir_ + "/role_id") << vault.role_id << "\n";
        std::ofstream(dir_ + "/secret_id") << vault.secret_id << "\n";
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

    void start() {
        client = std::make_unique<VaultClient>(vault, clock,
                                               VaultClient::Options{FakeVault::kAddress, "", 5s});
        client->set_metrics(metrics);
        auth = std::make_unique<AuthSource>(config.vault, Secret());
        controller = std::make_unique<Controller>(config, clock, jitter, *client, *auth);
        controller->set_publish([this](const wire::Credentials& c) {
            users[c.generation] = c.username;
            return std::vector<ClientId>{1};
        });
        controller->start();
        clock.settle();
    }

    std::uint64_t requests(const std::string& path_class, const std::string& code) const {
        return metrics.vault_requests(path_class, code);
    }

    LogCapture logs;
    FakeClock clock;
    FakeVault vault{clock};
    Jitter jitter{42};
    Metrics metrics;
    Config config;
    std::unique_ptr<VaultClient> client;
    std::unique_ptr<AuthSource> auth;
    std::unique_ptr<Controller> controller;
    std::map<std::uint64_t, std::string> users;
    std::string dir_;
};

TEST_F(MetricsLifecycle, RotationReasonsRenewalsRevocationsAndLogins) {
    start();
    EXPECT_EQ(metrics.logins(), 1u);
    EXPECT_EQ(metrics.login_failures(), 0u);
    EXPECT_EQ(requests("login", "200"), 1u);
    EXPECT_EQ(requests("creds", "200"), 1u);
    EXPECT_EQ(metrics.rotations("app", "scheduled"), 0u);  // the first fetch is no rotation

    // Renewed at about two thirds of 60 s, then again; capped at 300 s; rotated before.
    clock.advance(100s);
    EXPECT_EQ(metrics.renewals("app"), 2u) << logs.all();
    EXPECT_EQ(requests("lease_renew", "200"), 2u);
    clock.advance(185s);
    EXPECT_EQ(metrics.rotations("app", "scheduled"), 1u) << logs.all();
    EXPECT_GE(metrics.renewals("app"), 4u);
    // Generation 1 drains: its lease is revoked.
    controller->drained(1, wire::Drained{"app", 1, users.at(1)});
    clock.settle();
    EXPECT_EQ(metrics.revocations("app"), 1u);
    EXPECT_EQ(requests("lease_revoke", "204"), 1u);

    // By hand, and after PostgreSQL refused the current ones.
    ASSERT_TRUE(controller->rotate("app").empty());
    clock.settle();
    EXPECT_EQ(metrics.rotations("app", "manual"), 1u);
    controller->login_failed(1, wire::LoginFailed{"app", 3, users.at(3), "28P01"});
    clock.settle();
    EXPECT_EQ(metrics.rotations("app", "login_failed"), 1u);
    std::uint64_t rotations = 0;
    for (auto reason : kRotationReasons)
        rotations += metrics.rotations("app", reason);
    EXPECT_EQ(rotations, 3u);
    EXPECT_EQ(requests("creds", "200"), 4u);

    // Every request was timed: the histogram counts them all.
    const Histogram* creds = metrics.latency("creds");
    ASSERT_NE(creds, nullptr);
    EXPECT_EQ(creds->count(), 4u);
    const auto s = parse_exposition(metrics.render(controller->status()));
    EXPECT_EQ(s.at("pgbv_rotations_total{set=\"app\",kind=\"dynamic\",reason=\"manual\"}"), "1");
    EXPECT_EQ(s.at("pgbv_generation{set=\"app\",kind=\"dynamic\"}"), "4");
    EXPECT_EQ(s.at("pgbv_vault_request_duration_seconds_count{path_class=\"creds\"}"), "4");
}

TEST_F(MetricsLifecycle, TokenEndRotatesEverySetWithReasonTokenEnd) {
    vault.token_ttl = 120s;
    vault.token_max_ttl = 120s;
    vault.roles["database/app"] = FakeVault::Role{60s, 3600s, true};
    start();
    clock.advance(95s);  // logged in again 30 s before the token's end
    EXPECT_EQ(metrics.logins(), 2u) << logs.all();
    EXPECT_EQ(metrics.rotations("app", "token_end"), 1u);
    EXPECT_EQ(requests("token_renew", "200"), 1u);  // the renewal that found the cap
}

TEST_F(MetricsLifecycle, VaultFailureIsCountedAndTheVaultDownGaugeFollows) {
    start();
    clock.advance(30s);
    vault.fault = Fault::kRefused;
    clock.advance(12s);  // the renewal at ~37 s fails, retried with backoff
    EXPECT_GE(metrics.renewal_failures("app"), 2u);
    EXPECT_EQ(metrics.renewals("app"), 0u);
    EXPECT_GE(requests("lease_renew", "error"), 2u);
    auto s = parse_exposition(metrics.render(controller->status()));
    EXPECT_EQ(s.at("pgbv_vault_up"), "0");
    EXPECT_EQ(s.at("pgbv_set_state{set=\"app\",kind=\"dynamic\",state=\"degraded\"}"), "1");
    EXPECT_EQ(s.at("pgbv_set_ready{set=\"app\",kind=\"dynamic\"}"), "1");  // still serving
    vault.fault = Fault::kServerError;
    clock.advance(6s);
    EXPECT_GE(requests("lease_renew", "500"), 1u);
    vault.fault = Fault::kNone;
    ASSERT_TRUE(clock.advance_until([&] { return metrics.renewals("app") >= 1; }, 40s));
    s = parse_exposition(metrics.render(controller->status()));
    EXPECT_EQ(s.at("pgbv_vault_up"), "1");
    EXPECT_EQ(s.at("pgbv_renewal_failures_total{set=\"app\",kind=\"dynamic\"}"),
              std::to_string(metrics.renewal_failures("app")));
    EXPECT_EQ(s.at("pgbv_generation{set=\"app\",kind=\"dynamic\"}"), "1");  // no new generation
}

TEST_F(MetricsLifecycle, LoginFailuresCountEveryAttempt) {
    vault.secret_id = "another";
    start();
    clock.advance(60s);
    EXPECT_EQ(metrics.logins(), 0u);
    EXPECT_GE(metrics.login_failures(), 4u);
    EXPECT_EQ(metrics.login_failures(),
              static_cast<std::uint64_t>(vault.count("POST", "auth/approle/login")));
    EXPECT_GE(requests("login", "400"), 4u);
    const auto s = parse_exposition(metrics.render(controller->status()));
    EXPECT_EQ(s.at("pgbv_ready"), "0");
    EXPECT_EQ(s.at("pgbv_token_valid"), "0");
}

}  // namespace
}  // namespace pgbv::ctl::testing
