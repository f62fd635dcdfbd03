// Tests of the real libpgbv.so, loaded with dlopen() and driven through its C ABI by a fake
// host, against a fake controller on a real Unix socket.
#include "pgbv/plugin_abi.h"

#include <dlfcn.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <cstdio>
#include <cstring>

#include "test_support.hpp"

#ifndef PGBV_PLUGIN_PATH
#error "PGBV_PLUGIN_PATH must name the built libpgbv.so"
#endif

namespace pgbv {
namespace {

using std::chrono::milliseconds;
using test::credentials;

// The host side of the ABI, as PgBouncer would provide it.
struct FakeHost {
    test::LogRecorder logs;
    std::vector<std::string> changed;
    std::function<void(const char* set)> on_changed;
    int depth = 0;  // > 0 while inside a call into the plugin
    bool changed_inside_plugin_call = false;

    static void log(void* data, int level, const char* message) {
        static_cast<FakeHost*>(data)->logs.add(level, message);
    }
    static void credentials_changed(void* data, const char* set) {
        auto* self = static_cast<FakeHost*>(data);
        if (self->depth > 0) self->changed_inside_plugin_call = true;
        self->changed.emplace_back(set);
        if (self->on_changed) self->on_changed(set);
    }
};

class PluginAbiTest : public ::testing::Test {
protected:
    PluginAbiTest() : path_(dir_.file("plugin.sock")), controller_(loop_.base(), path_) {
        handle_ = dlopen(PGBV_PLUGIN_PATH, RTLD_NOW | RTLD_LOCAL);
        if (handle_ == nullptr) throw std::runtime_error(dlerror());
        host_api_.abi_version = PGBV_ABI_VERSION;
        host_api_.struct_size = sizeof(host_api_);
        host_api_.host_data = &host_;
        host_api_.event_base = loop_.base();
        host_api_.log = &FakeHost::log;
        host_api_.credentials_changed = &FakeHost::credentials_changed;
    }

    ~PluginAbiTest() override {
        if (initialized_) plugin_.shutdown(plugin_.plugin_data);
        dlclose(handle_);
        if (getenv("PGBV_TEST_PRINT_LOGS") != nullptr) std::fputs(host_.logs.all().c_str(), stderr);
        EXPECT_EQ(host_.logs.all().find("hunter"), std::string::npos) << host_.logs.all();
        EXPECT_FALSE(host_.changed_inside_plugin_call);
    }

    pgbv_plugin_init_fn init_fn() {
        return reinterpret_cast<pgbv_plugin_init_fn>(dlsym(handle_, PGBV_PLUGIN_INIT_SYMBOL));
    }

    int init(const std::string& options, std::string* error = nullptr) {
        char errbuf[256] = "untouched";
        const int rc = init_fn()(&host_api_, options.c_str(), &plugin_, errbuf, sizeof errbuf);
        if (error != nullptr) *error = errbuf;
        initialized_ = rc == PGBV_OK;
        return rc;
    }
    void init_ok() {
        std::string error;
        ASSERT_EQ(init("socket=" + path_ + " reconnect_min_ms=5 reconnect_max_ms=40", &error),
                  PGBV_OK)
                << error;
    }

    // Calls into the plugin the way PgBouncer does, tracking re-entrancy.
    int get(const char* set, pgbv_credentials* out) {
        ++host_.depth;
        const int rc = plugin_.get_credentials(plugin_.plugin_data, set, out);
        --host_.depth;
        return rc;
    }
    void drained(const char* set, std::uint64_t generation) {
        ++host_.depth;
        plugin_.report_drained(plugin_.plugin_data, set, generation);
        --host_.depth;
    }
    void login_failed(const char* set, std::uint64_t generation, const char* sqlstate) {
        ++host_.depth;
        plugin_.report_login_failed(plugin_.plugin_data, set, generation, sqlstate);
        --host_.depth;
    }

    bool run_until(const std::function<bool()>& done) {
        const bool ok = loop_.run_until(done);
        if (!ok) ADD_FAILURE() << "condition not reached; log:\n" << host_.logs.all();
        return ok;
    }

    test::EventLoop loop_;
    test::TempDir dir_;
    std::string path_;
    test::FakeController controller_;
    FakeHost host_;
    pgbv_host_api host_api_{};
    pgbv_plugin_api plugin_{};
    void* handle_ = nullptr;
    bool initialized_ = false;
};

TEST_F(PluginAbiTest, ExportsTheAbiVersion) {
    const auto* version =
            static_cast<const std::uint32_t*>(dlsym(handle_, PGBV_ABI_VERSION_SYMBOL));
    ASSERT_NE(version, nullptr);
    EXPECT_EQ(*version, PGBV_ABI_VERSION);
    EXPECT_NE(init_fn(), nullptr);
    // Internals stay hidden.
    EXPECT_EQ(dlsym(handle_,
                    "_ZN4pgbv6plugin13parse_optionsESt17basic_string_viewIcSt11char_traitsIcEE"),
              nullptr);
}

TEST_F(PluginAbiTest, InitFailsWithAOneLineReasonNamingTheKey) {
    std::string error;
    EXPECT_EQ(init("socket=" + path_ + " bogus=1", &error), PGBV_ERROR);
    EXPECT_NE(error.find("unknown key 'bogus'"), std::string::npos) << error;
    EXPECT_EQ(init("socket=" + path_ + " reconnect_max_ms=x", &error), PGBV_ERROR);
    EXPECT_NE(error.find("reconnect_max_ms"), std::string::npos) << error;
    EXPECT_EQ(init("", &error), PGBV_ERROR);
    EXPECT_NE(error.find("socket is required"), std::string::npos) << error;

    // Truncated to the buffer, NUL-terminated.
    char small[12];
    std::memset(small, 'x', sizeof small);
    EXPECT_EQ(init_fn()(&host_api_, "nonsense", &plugin_, small, sizeof small), PGBV_ERROR);
    EXPECT_EQ(std::strlen(small), sizeof small - 1);
    // NULL options is treated as empty.
    EXPECT_EQ(init_fn()(&host_api_, nullptr, &plugin_, small, sizeof small), PGBV_ERROR);
}

TEST_F(PluginAbiTest, InitRefusesAnotherAbi) {
    host_api_.abi_version = PGBV_ABI_VERSION + 1;
    std::string error;
    EXPECT_EQ(init("socket=" + path_, &error), PGBV_ERROR);
    EXPECT_NE(error.find("ABI version 2"), std::string::npos) << error;
    EXPECT_NE(error.find("speaks version 1"), std::string::npos) << error;

    host_api_.abi_version = PGBV_ABI_VERSION;
    host_api_.struct_size = 8;
    EXPECT_EQ(init("socket=" + path_, &error), PGBV_ERROR);
    host_api_.struct_size = sizeof(host_api_);
    host_api_.event_base = nullptr;
    EXPECT_EQ(init("socket=" + path_, &error), PGBV_ERROR);
}

TEST_F(PluginAbiTest, FillsInThePluginApi) {
    init_ok();
    EXPECT_EQ(plugin_.abi_version, PGBV_ABI_VERSION);
    EXPECT_EQ(plugin_.struct_size, sizeof(pgbv_plugin_api));
    EXPECT_NE(plugin_.get_credentials, nullptr);
    EXPECT_NE(plugin_.report_drained, nullptr);
    EXPECT_NE(plugin_.report_login_failed, nullptr);
    EXPECT_NE(plugin_.shutdown, nullptr);
}

TEST_F(PluginAbiTest, NoCredentialsBeforeTheController) {
    init_ok();
    pgbv_credentials out{};
    std::memset(&out, 'x', sizeof out);  // the plugin must clear what it reports empty
    EXPECT_EQ(get("app", &out), PGBV_NOT_FOUND);
    EXPECT_STREQ(out.username, "");
    EXPECT_STREQ(out.password, "");
    EXPECT_EQ(out.generation, 0u);
    EXPECT_EQ(get(nullptr, &out), PGBV_ERROR);
    EXPECT_EQ(get("app", nullptr), PGBV_ERROR);
    EXPECT_EQ(get("bad set", &out), PGBV_ERROR);
    EXPECT_EQ(get(std::string(100, 'a').c_str(), &out), PGBV_ERROR);
    // The first connect happens from the loop, not from init.
    EXPECT_EQ(controller_.accepted, 0);
}

TEST_F(PluginAbiTest, CredentialsFlowGenerationsAndReports) {
    controller_.snapshot.push_back(credentials("app", 40, "v-app-1", "hunter1", 1800000000));
    controller_.listen();
    init_ok();

    // Inside credentials_changed the host reads the new generation, as PgBouncer does.
    std::vector<pgbv_credentials> seen;
    host_.on_changed = [&](const char* set) {
        pgbv_credentials c{};
        ASSERT_EQ(get(set, &c), PGBV_OK);
        seen.push_back(c);
    };
    ASSERT_TRUE(run_until([&] { return host_.changed.size() == 1; }));
    EXPECT_EQ(host_.changed[0], "app");
    ASSERT_EQ(seen.size(), 1u);
    EXPECT_EQ(seen[0].generation, 1u);
    EXPECT_STREQ(seen[0].username, "v-app-1");
    EXPECT_STREQ(seen[0].password, "hunter1");
    EXPECT_EQ(seen[0].expires_at, 1800000000);
    EXPECT_GT(seen[0].received_at_us, 1'600'000'000'000'000);

    // Same user and password again (e.g. a re-sent push): no new generation, no call.
    controller_.snapshot[0] = credentials("app", 41, "v-app-1", "hunter1", 1800000100);
    controller_.send(credentials("app", 41, "v-app-1", "hunter1", 1800000100));
    controller_.send(wire::Hello{});  // would be a protocol error; sent only to sync below
    ASSERT_TRUE(run_until([&] { return host_.logs.contains("HELLO after the snapshot"); }));
    EXPECT_EQ(host_.changed.size(), 1u);
    pgbv_credentials c{};
    ASSERT_EQ(get("app", &c), PGBV_OK);
    EXPECT_EQ(c.generation, 1u);
    EXPECT_EQ(c.expires_at, 1800000100);

    // Reconnected (the protocol error closed the connection); a new password arrives.
    ASSERT_TRUE(run_until([&] { return controller_.hellos == 2 && controller_.has_client(); }));
    ASSERT_TRUE(run_until([&] {
        return controller_.received_of<wire::Hello>().size() == 2 &&
               host_.logs.count("received credentials for 1 set(s)") == 2;
    }));
    // The host drains generation 1 and reports it from inside credentials_changed.
    host_.on_changed = [&](const char* set) {
        pgbv_credentials cur{};
        ASSERT_EQ(get(set, &cur), PGBV_OK);
        seen.push_back(cur);
        drained(set, cur.generation - 1);
    };
    controller_.send(credentials("app", 42, "v-app-2", "hunter2"));
    ASSERT_TRUE(run_until([&] { return host_.changed.size() == 2; }));
    EXPECT_EQ(seen.back().generation, 2u);
    EXPECT_STREQ(seen.back().username, "v-app-2");
    EXPECT_STREQ(seen.back().password, "hunter2");

    // DRAINED carries the controller's generation and the username of generation 1.
    ASSERT_TRUE(run_until([&] { return controller_.received_of<wire::Drained>().size() == 1; }));
    EXPECT_EQ(controller_.received_of<wire::Drained>()[0], (wire::Drained{"app", 41, "v-app-1"}));

    // A second report of the same generation, or of the current one, goes nowhere.
    drained("app", 1);
    drained("app", 2);
    EXPECT_TRUE(host_.logs.contains("does not know that generation"));
    EXPECT_TRUE(host_.logs.contains("still current"));

    // LOGIN_FAILED for the current generation.
    login_failed("app", 2, "28P01");
    login_failed("app", 2, "bad");     // ignored: not a SQLSTATE
    login_failed("app", 99, "28P01");  // ignored: unknown generation
    ASSERT_TRUE(
            run_until([&] { return controller_.received_of<wire::LoginFailed>().size() == 1; }));
    EXPECT_EQ(controller_.received_of<wire::LoginFailed>()[0],
              (wire::LoginFailed{"app", 42, "v-app-2", "28P01"}));
    loop_.run_for(milliseconds(30));
    EXPECT_EQ(controller_.received_of<wire::LoginFailed>().size(), 1u);
    EXPECT_EQ(controller_.received_of<wire::Drained>().size(), 1u);
}

TEST_F(PluginAbiTest, KeepsServingTheLastCredentialsWhileTheControllerIsAway) {
    controller_.snapshot.push_back(credentials("app", 1, "v-app-1", "hunter1"));
    controller_.listen();
    init_ok();
    ASSERT_TRUE(run_until([&] { return host_.changed.size() == 1; }));

    controller_.drop_client();
    controller_.stop_listening();
    ASSERT_TRUE(run_until([&] { return host_.logs.contains("lost connection"); }));
    loop_.run_for(milliseconds(100));  // several failed reconnects
    pgbv_credentials c{};
    ASSERT_EQ(get("app", &c), PGBV_OK);
    EXPECT_EQ(c.generation, 1u);
    EXPECT_STREQ(c.password, "hunter1");

    // Reports made meanwhile are delivered after the next handshake.
    login_failed("app", 1, "28P01");
    controller_.snapshot.clear();
    controller_.snapshot.push_back(credentials("app", 1, "v-app-1", "hunter1"));  // restarted
    controller_.listen();
    ASSERT_TRUE(
            run_until([&] { return controller_.received_of<wire::LoginFailed>().size() == 1; }));
    EXPECT_EQ(host_.changed.size(), 1u) << "the same credentials after a restart are no change";
    ASSERT_EQ(get("app", &c), PGBV_OK);
    EXPECT_EQ(c.generation, 1u);
}

TEST_F(PluginAbiTest, ShutdownWhileConnectedWithQueuedWork) {
    controller_.snapshot.push_back(credentials("app", 1, "v-app-1", "hunter1"));
    controller_.snapshot.push_back(credentials("ro", 1, "v-ro-1", "hunter1"));
    controller_.listen();
    init_ok();
    ASSERT_TRUE(run_until([&] { return host_.changed.size() == 2; }));
    login_failed("ro", 1, "28P01");
    plugin_.shutdown(plugin_.plugin_data);
    initialized_ = false;
    ASSERT_TRUE(run_until([&] { return !controller_.has_client(); }));
    loop_.run_for(milliseconds(50));
    EXPECT_EQ(controller_.accepted, 1) << "no reconnect after shutdown";
}

TEST_F(PluginAbiTest, ShutdownRightAfterInit) {
    init_ok();
    plugin_.shutdown(plugin_.plugin_data);
    initialized_ = false;
    loop_.run_for(milliseconds(20));
    EXPECT_EQ(controller_.accepted, 0);
}

TEST_F(PluginAbiTest, TwoInstancesAreIndependent) {
    controller_.snapshot.push_back(credentials("app", 1, "v-app-1", "hunter1"));
    controller_.listen();
    init_ok();
    pgbv_plugin_api second{};
    char errbuf[256];
    ASSERT_EQ(init_fn()(&host_api_, ("socket=" + dir_.file("other.sock")).c_str(), &second, errbuf,
                        sizeof errbuf),
              PGBV_OK);
    ASSERT_TRUE(run_until([&] { return host_.changed.size() == 1; }));
    pgbv_credentials c{};
    EXPECT_EQ(second.get_credentials(second.plugin_data, "app", &c), PGBV_NOT_FOUND);
    second.shutdown(second.plugin_data);
}

}  // namespace
}  // namespace pgbv
