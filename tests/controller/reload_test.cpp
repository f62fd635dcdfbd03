// Reload, revoke-drained and shutdown with revoke_on_shutdown, on a fake clock against a
// fake Vault: sets added, removed, changed and unchanged; a bad file; [vault] changes that
// need a restart; drained generations revoked without waiting for a retry; every lease
// revoked at shutdown once PgBouncer let go of them, or at the timeout.

#include <gtest/gtest.h>

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

struct Push {
    std::string set;
    std::uint64_t generation;
    std::string username;
};

class Reload : public ::testing::Test {
protected:
    void SetUp() override {
        char tmpl[] = "/tmp/pgbv-reload-XXXXXX";
        dir_ = mkdtemp(tmpl);
        write("role_id", vault.role_id + "\n");
        write("secret_id", vault.secret_id + "\n");
        vault.roles["database/app"] = FakeVault::Role{60s, 600s, true};
        vault.roles["database/reports"] = FakeVault::Role{60s, 600s, true};
        vault.roles["database/app2"] = FakeVault::Role{60s, 600s, true};
        config = parse(file_text({"app"}));
    }

    void TearDown() override {
        controller.reset();
        std::system(("rm -rf " + dir_).c_str());
    }

    void write(const std::string& name, const std::string& text) {
        std::ofstream(dir_ + "/" + name) << text;
    }

    // A configuration file with one dynamic set per name (role = the name).
    std::string file_text(const std::vector<std::string>& sets, const std::string& vault_extra = "",
                          const std::string& controller_extra = "") const {
        std::string t = std::string("[vault]\naddress = ") + FakeVault::kAddress +
                        "\nauth_method = approle\nrole_id_file = role_id\n"
                        "secret_id_file = secret_id\n" +
                        vault_extra + "[controller]\nplugin_socket = plugin.sock\n" +
                        controller_extra;
        for (const auto& s : sets)
            t += "[set." + s + "]\nrole = " + s + "\nrotation_margin = 20s\n";
        return t;
    }

    Config parse(const std::string& text) {
        write("pgbv.ini", text);
        ConfigResult r = load_config(dir_ + "/pgbv.ini", [](const char*) { return nullptr; });
        EXPECT_TRUE(r.config) << r.error;
        return r.config ? *r.config : Config{};
    }

    void start() {
        jitter = std::make_unique<Jitter>(42);
        client = std::make_unique<VaultClient>(vault, clock,
                                               VaultClient::Options{FakeVault::kAddress, "", 5s});
        auth = std::make_unique<AuthSource>(config.vault, Secret());
        controller = std::make_unique<Controller>(config, clock, *jitter, *client, *auth);
        controller->set_publish([this](const wire::Credentials& c) {
            pushes.push_back(Push{c.set, c.generation, c.username});
            return holders;
        });
        controller->set_client_count([this] { return clients; });
        controller->start();
        clock.settle();
    }

    ReloadResult reload(const std::string& text) {
        write("pgbv.ini", text);
        ReloadResult r = reload_from_file(*controller, dir_ + "/pgbv.ini",
                                          [](const char*) { return nullptr; });
        clock.settle();
        return r;
    }

    const Push* held(const std::string& name) const {
        for (auto it = pushes.rbegin(); it != pushes.rend(); ++it) {
            if (it->set == name) return &*it;
        }
        return nullptr;
    }

    std::string lease_of(const std::string& name) const {
        const Push* p = held(name);
        const FakeVault::Lease* l = p ? vault.lease_of_user(p->username) : nullptr;
        return l ? l->id : std::string();
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
    std::unique_ptr<Jitter> jitter;
    std::unique_ptr<VaultClient> client;
    std::unique_ptr<AuthSource> auth;
    std::unique_ptr<Controller> controller;
    std::vector<Push> pushes;
    std::vector<ClientId> holders = {1};
    std::uint32_t clients = 1;
    std::string dir_;
};

std::vector<std::string> names(std::initializer_list<const char*> list) {
    return std::vector<std::string>(list.begin(), list.end());
}

TEST_F(Reload, UnchangedFileTouchesNothing) {
    config = parse(file_text({"app", "reports"}));
    start();
    const std::size_t requests = vault.requests.size();
    const std::size_t pushed = pushes.size();
    ReloadResult r = reload(file_text({"app", "reports"}));
    EXPECT_EQ(r.error, "");
    EXPECT_TRUE(r.added.empty());
    EXPECT_TRUE(r.changed.empty());
    EXPECT_TRUE(r.removed.empty());
    EXPECT_TRUE(r.restart_needed.empty());
    EXPECT_EQ(vault.requests.size(), requests);  // no Vault request
    EXPECT_EQ(pushes.size(), pushed);            // no push
    EXPECT_TRUE(logs.contains("reload: 0 sets added, 0 changed, 0 removed, 2 unchanged"));
}

TEST_F(Reload, AddedSetStartsFetchingAndOthersAreUntouched) {
    start();
    ASSERT_EQ(pushes.size(), 1u);
    ReloadResult r = reload(file_text({"app", "reports"}));
    EXPECT_EQ(r.added, names({"reports"}));
    EXPECT_TRUE(r.removed.empty());
    EXPECT_TRUE(r.changed.empty());
    ASSERT_EQ(pushes.size(), 2u);
    EXPECT_EQ(pushes[1].set, "reports");
    EXPECT_EQ(pushes[1].generation, 1u);
    EXPECT_EQ(pushes_of("app"), 1u);
    EXPECT_EQ(vault.count("GET", "database/creds/reports"), 1);
    ASSERT_NE(controller->find("reports"), nullptr);
    EXPECT_EQ(controller->config().sets.size(), 2u);
    // The new set lives on like any other: renewed, later rotated.
    clock.advance(600s);
    EXPECT_GE(pushes_of("reports"), 2u);
    EXPECT_GE(controller->status().sets.size(), 2u);
}

TEST_F(Reload, RemovedSetKeepsItsLeaseWhilePgBouncerHoldsItThenRevokesWhenDrained) {
    config = parse(file_text({"app", "reports"}));
    start();
    const std::string lease = lease_of("reports");
    const Push reports = *held("reports");
    ASSERT_FALSE(lease.empty());
    ReloadResult r = reload(file_text({"app"}));
    EXPECT_EQ(r.removed, names({"reports"}));
    EXPECT_EQ(controller->find("reports"), nullptr);
    EXPECT_EQ(controller->status().sets.size(), 1u);
    EXPECT_EQ(controller->snapshot(2).size(), 1u);  // a new plugin is not given it
    EXPECT_TRUE(logs.contains("PgBouncer keeps generation 1"));
    EXPECT_TRUE(logs.contains("until its own configuration drops the database"));
    // Still held by plugin 1: renewed (not rotated) past its first TTL.
    clock.advance(120s);
    EXPECT_TRUE(vault.lease_alive(lease));
    EXPECT_EQ(pushes_of("reports"), 1u);
    EXPECT_EQ(vault.count("GET", "database/creds/reports"), 1);
    // PgBouncer's config dropped the database: its servers closed, the plugin reports it.
    controller->drained(1, wire::Drained{"reports", reports.generation, reports.username});
    clock.settle();
    EXPECT_TRUE(vault.leases[lease].revoked_by_request);
    EXPECT_TRUE(logs.contains("is held by no plugin any more; revoking it"));
}

TEST_F(Reload, RemovedSetHeldByNoPluginIsRevokedAtOnce) {
    holders = {};
    config = parse(file_text({"app", "reports"}));
    start();
    const std::string lease = lease_of("reports");
    reload(file_text({"app"}));
    EXPECT_TRUE(vault.leases[lease].revoked_by_request);
    EXPECT_TRUE(vault.lease_alive(lease_of("app")));
}

TEST_F(Reload, RemovedSetIsRevokedWhenItsPluginDisconnects) {
    config = parse(file_text({"app", "reports"}));
    start();
    const std::string lease = lease_of("reports");
    reload(file_text({"app"}));
    EXPECT_FALSE(vault.leases[lease].revoked_by_request);
    controller->client_closed(1);
    clock.settle();
    EXPECT_TRUE(vault.leases[lease].revoked_by_request);
}

TEST_F(Reload, RemovedThenAddedAgainKeepsNumberingUp) {
    config = parse(file_text({"app", "reports"}));
    start();
    reload(file_text({"app"}));
    reload(file_text({"app", "reports"}));
    ASSERT_EQ(pushes_of("reports"), 2u);
    EXPECT_EQ(held("reports")->generation, 2u);
}

TEST_F(Reload, ChangedSourceMakesANewGenerationAndTheOldOneDrains) {
    start();
    const Push first = *held("app");
    const std::string old_lease = lease_of("app");
    std::string text = file_text({"app"});
    text.replace(text.find("role = app"), 10, "role = app2");
    ReloadResult r = reload(text);
    EXPECT_EQ(r.changed, names({"app"}));
    ASSERT_EQ(pushes_of("app"), 2u);
    EXPECT_EQ(held("app")->generation, 2u);
    EXPECT_EQ(vault.count("GET", "database/creds/app2"), 1);
    EXPECT_TRUE(logs.contains("credentials now come from database/creds/app2"));
    EXPECT_FALSE(vault.leases[old_lease].revoked_by_request);
    controller->drained(1, wire::Drained{"app", first.generation, first.username});
    clock.settle();
    EXPECT_TRUE(vault.leases[old_lease].revoked_by_request);
    EXPECT_EQ(controller->config().sets[0].role, "app2");
}

TEST_F(Reload, KindChangeFromDynamicToKvDrainsAndRevokesTheOldLease) {
    start();
    const Push first = *held("app");
    const std::string old_lease = lease_of("app");
    vault.put_kv("secret/apps/app", R"({"username":"kv_user","password":"kv-pass-1"})");
    std::string text = file_text({"app"});
    text.replace(text.find("role = app\nrotation_margin = 20s"), 32, "kind = kv\npath = apps/app");
    ReloadResult r = reload(text);
    EXPECT_EQ(r.changed, names({"app"}));
    ASSERT_EQ(pushes_of("app"), 2u) << logs.all();
    EXPECT_EQ(held("app")->username, "kv_user");
    EXPECT_EQ(held("app")->generation, 2u);
    EXPECT_EQ(controller->status().sets[0].kind, "kv");
    // The dynamic generation drains; its lease is revoked then, not forgotten.
    EXPECT_FALSE(vault.leases[old_lease].revoked_by_request);
    controller->drained(1, wire::Drained{"app", first.generation, first.username});
    clock.settle();
    EXPECT_TRUE(vault.leases[old_lease].revoked_by_request);
    EXPECT_EQ(controller->find("app")->draining(), 0u);
}

TEST_F(Reload, TimingOnlyChangeKeepsTheCredentials) {
    start();
    const std::size_t requests = vault.requests.size();
    std::string text = file_text({"app"});
    text.replace(text.find("rotation_margin = 20s"), 21, "rotation_margin = 30s");
    ReloadResult r = reload(text);
    EXPECT_EQ(r.changed, names({"app"}));
    EXPECT_EQ(pushes.size(), 1u);
    EXPECT_EQ(vault.requests.size(), requests);
    EXPECT_EQ(controller->find("app")->settings().rotation_margin, 30s);
    EXPECT_TRUE(logs.contains("new settings applied; the credentials stay"));
}

TEST_F(Reload, BadFileChangesNothing) {
    start();
    ReloadResult r = reload(file_text({"app", "reports"}) + "[set.broken]\nkind = nope\n");
    EXPECT_NE(r.error.find("kind 'nope'"), std::string::npos) << r.error;
    EXPECT_NE(r.error.find("nothing changed"), std::string::npos);
    EXPECT_TRUE(r.added.empty());
    EXPECT_EQ(controller->find("reports"), nullptr);
    EXPECT_EQ(controller->config().sets.size(), 1u);
    EXPECT_TRUE(logs.contains("rror: reload: ") || logs.contains("RROR: reload: ")) << logs.all();

    std::system(("rm -f " + dir_ + "/pgbv.ini").c_str());
    r = reload_from_file(*controller, dir_ + "/pgbv.ini", [](const char*) { return nullptr; });
    EXPECT_NE(r.error.find("cannot read the configuration file"), std::string::npos);
    EXPECT_EQ(pushes.size(), 1u);
}

TEST_F(Reload, VaultAndSocketChangesNeedARestart) {
    start();
    const std::size_t requests = vault.requests.size();
    std::string text = file_text({"app"}, "request_timeout = 7s\n",
                                 "log_level = debug\nrevoke_on_shutdown = true\n"
                                 "shutdown_timeout = 5s\n");
    text.replace(text.find("plugin_socket = plugin.sock"), 27, "plugin_socket = other.sock");
    ReloadResult r = reload(text);
    EXPECT_EQ(r.error, "");
    EXPECT_EQ(r.restart_needed, names({"[vault] request_timeout", "[controller] plugin_socket"}));
    EXPECT_TRUE(
            logs.contains("[vault] request_timeout, [controller] plugin_socket changed but "
                          "needs a restart; not applied"));
    // Not applied...
    EXPECT_EQ(controller->config().vault.request_timeout, 10s);
    EXPECT_EQ(controller->config().controller.plugin_socket, dir_ + "/plugin.sock");
    // ...while what can change at once did.
    EXPECT_EQ(controller->config().controller.log_level, log::Level::kDebug);
    EXPECT_TRUE(controller->config().controller.revoke_on_shutdown);
    EXPECT_EQ(controller->config().controller.shutdown_timeout, 5s);
    EXPECT_EQ(vault.requests.size(), requests);
}

TEST_F(Reload, ShutdownKeysAreCheckedAndDefaulted) {
    EXPECT_FALSE(config.controller.revoke_on_shutdown);
    EXPECT_EQ(config.controller.shutdown_timeout, 30s);
    auto error_of = [&](const std::string& extra) {
        write("pgbv.ini", file_text({"app"}, "", extra));
        return load_config(dir_ + "/pgbv.ini", [](const char*) { return nullptr; }).error;
    };
    EXPECT_NE(error_of("revoke_on_shutdown = maybe\n")
                      .find("pgbv.ini:8: revoke_on_shutdown 'maybe' must be true or false"),
              std::string::npos)
            << error_of("revoke_on_shutdown = maybe\n");
    EXPECT_NE(
            error_of("shutdown_timeout = soon\n").find("shutdown_timeout 'soon' is not a duration"),
            std::string::npos);
    EXPECT_EQ(error_of("shutdown_timeout = 0\nrevoke_on_shutdown = yes\n"), "");
}

TEST_F(Reload, RevokeDrainedSkipsTheRetryWait) {
    start();
    const Push first = *held("app");
    const std::string lease = lease_of("app");
    controller->rotate("app");
    clock.settle();
    // Vault refuses the revocation once: the set would wait before retrying.
    int refused = 0;
    vault.script = [&](const FakeVault::Request& req) -> std::optional<HttpResponse> {
        if (req.path == "sys/leases/revoke" && refused++ == 0) {
            HttpResponse resp;
            resp.status = 500;
            resp.body = Secret(R"({"errors":["internal error"]})");
            return resp;
        }
        return std::nullopt;
    };
    controller->drained(1, wire::Drained{"app", first.generation, first.username});
    clock.settle();
    EXPECT_EQ(vault.count("PUT", "sys/leases/revoke"), 1);
    EXPECT_FALSE(vault.leases[lease].revoked_by_request);
    std::string error;
    const std::string summary = controller->revoke_drained(&error);
    clock.settle();
    EXPECT_EQ(error, "");
    EXPECT_NE(summary.find("revoking 1 drained generation: app generation 1"), std::string::npos)
            << summary;
    EXPECT_TRUE(vault.leases[lease].revoked_by_request);
    EXPECT_EQ(controller->find("app")->draining(), 0u);
    // Nothing left: says so.
    EXPECT_NE(controller->revoke_drained().find("no drained generation waits"), std::string::npos);
}

TEST_F(Reload, RevokeDrainedCountsGenerationsStillInUse) {
    start();
    controller->rotate("app");
    clock.settle();
    const std::string summary = controller->revoke_drained();
    EXPECT_NE(summary.find("1 old generation still in use"), std::string::npos) << summary;
    EXPECT_EQ(vault.count("PUT", "sys/leases/revoke"), 0);
}

TEST_F(Reload, ShutdownRevokesEveryLeaseOncePgBouncerLetGo) {
    config = parse(file_text({"app", "reports"}));
    start();
    controller->rotate("app");  // an old generation still in use, too
    clock.settle();
    ASSERT_EQ(vault.live_leases().size(), 3u);
    bool done = false;
    controller->shutdown_revoking(30s, [&] { done = true; });
    clock.advance(5s);
    EXPECT_FALSE(done);
    EXPECT_EQ(vault.count("PUT", "sys/leases/revoke"), 0);
    // PgBouncer stops: its plugin disconnects.
    clients = 0;
    controller->client_closed(1);
    clock.settle();
    EXPECT_TRUE(done);
    EXPECT_TRUE(vault.live_leases().empty());
    EXPECT_EQ(vault.count("PUT", "sys/leases/revoke"), 3);
    EXPECT_TRUE(logs.contains("shutdown: no plugin is connected; revoking every lease"));
    EXPECT_TRUE(logs.contains("shutdown: every revocation has finished"));
    // Nothing more happens afterwards (no fetch, no renewal).
    const std::size_t requests = vault.requests.size();
    clock.advance(600s);
    std::size_t after = 0;
    for (std::size_t i = requests; i < vault.requests.size(); ++i) {
        after += vault.requests[i].path.find("creds") != std::string::npos ||
                 vault.requests[i].path == "sys/leases/renew";
    }
    EXPECT_EQ(after, 0u);
}

TEST_F(Reload, ShutdownRevokesAtTheTimeoutWhenPgBouncerStaysConnected) {
    start();
    bool done = false;
    controller->shutdown_revoking(30s, [&] { done = true; });
    clock.advance(29s);
    EXPECT_FALSE(done);
    EXPECT_FALSE(vault.live_leases().empty());
    clock.advance(1s);
    EXPECT_TRUE(done);
    EXPECT_TRUE(vault.live_leases().empty());
    EXPECT_TRUE(logs.contains("shutdown_timeout (30s) has passed"));
}

TEST_F(Reload, ShutdownWithNoPluginRevokesAtOnceAndRefusesReload) {
    clients = 0;
    start();
    bool done = false;
    controller->shutdown_revoking(30s, [&] { done = true; });
    clock.settle();
    EXPECT_TRUE(done);
    EXPECT_TRUE(vault.live_leases().empty());
    ReloadResult r = reload(file_text({"app", "reports"}));
    EXPECT_NE(r.error.find("shutting down"), std::string::npos);
}

TEST_F(Reload, ShutdownEndsEvenWhenVaultDoesNotAnswer) {
    clients = 0;
    start();
    vault.fault = FakeVault::Fault::kTimeout;
    bool done = false;
    controller->shutdown_revoking(30s, [&] { done = true; });
    clock.advance(7s);  // request_timeout (10 s) + 1 s at the latest
    clock.advance(5s);
    EXPECT_TRUE(done);
}

}  // namespace
}  // namespace pgbv::ctl::testing
