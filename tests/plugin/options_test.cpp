// Tests of credential_plugin_options parsing.
#include "plugin/options.hpp"

#include <gtest/gtest.h>

namespace pgbv::plugin {
namespace {

Options parse_ok(std::string_view text) {
    auto r = parse_options(text);
    if (auto* e = std::get_if<std::string>(&r)) {
        ADD_FAILURE() << "unexpected error: " << *e;
        return {};
    }
    return std::get<Options>(r);
}

std::string parse_error(std::string_view text) {
    auto r = parse_options(text);
    if (auto* e = std::get_if<std::string>(&r)) return *e;
    ADD_FAILURE() << "expected an error for: " << text;
    return {};
}

TEST(Options, DefaultsWithOnlyTheSocket) {
    const Options o = parse_ok("socket=/run/pgbv/plugin.sock");
    EXPECT_EQ(o.socket_path, "/run/pgbv/plugin.sock");
    EXPECT_EQ(o.reconnect_min.count(), 100);
    EXPECT_EQ(o.reconnect_max.count(), 5000);
    EXPECT_EQ(o.max_pending_reports, 1024u);
    EXPECT_EQ(o.handshake_timeout.count(), 10000);
}

TEST(Options, EveryKey) {
    const Options o = parse_ok(
            "  reconnect_min_ms=5\treconnect_max_ms=700 socket=/tmp/x.sock  max_pending_reports=3 "
            "handshake_timeout_ms=250 ");
    EXPECT_EQ(o.socket_path, "/tmp/x.sock");
    EXPECT_EQ(o.reconnect_min.count(), 5);
    EXPECT_EQ(o.reconnect_max.count(), 700);
    EXPECT_EQ(o.max_pending_reports, 3u);
    EXPECT_EQ(o.handshake_timeout.count(), 250);
}

TEST(Options, ErrorsNameTheKey) {
    struct Case {
        const char* text;
        const char* expect;
    };
    const Case cases[] = {
            {"", "socket is required"},
            {"   ", "socket is required"},
            {"reconnect_min_ms=5", "socket is required"},
            {"socket", "socket has no value"},
            {"socket=", "socket has no value"},
            {"socket=relative.sock", "socket must be an absolute path"},
            {"socket=/a socket=/b", "socket is given twice"},
            {"socket=/a bogus=1", "unknown key 'bogus'"},
            {"socket=/a =1", "has no key"},
            {"socket=/a reconnect_min_ms=abc", "reconnect_min_ms must be a whole number"},
            {"socket=/a reconnect_min_ms=-5", "reconnect_min_ms must be a whole number"},
            {"socket=/a reconnect_min_ms=10ms", "reconnect_min_ms must be a whole number"},
            {"socket=/a reconnect_min_ms=0", "reconnect_min_ms must be between 1 and"},
            {"socket=/a reconnect_max_ms=99999999999999999999999",
             "reconnect_max_ms must be between"},
            {"socket=/a max_pending_reports=0", "max_pending_reports must be between 1 and"},
            {"socket=/a max_pending_reports", "max_pending_reports has no value"},
            {"socket=/a handshake_timeout_ms=x", "handshake_timeout_ms must be a whole number"},
            {"socket=/a reconnect_min_ms=500 reconnect_max_ms=100",
             "reconnect_max_ms (100) must not be less than reconnect_min_ms (500)"},
    };
    for (const auto& c : cases) {
        const std::string error = parse_error(c.text);
        EXPECT_NE(error.find(c.expect), std::string::npos) << c.text << " -> " << error;
        EXPECT_EQ(error.find('\n'), std::string::npos) << "one line";
        EXPECT_EQ(error.rfind("credential_plugin_options: ", 0), 0u) << error;
    }
}

TEST(Options, RejectsSocketPathsTooLongForSunPath) {
    const std::string long_path = "/" + std::string(120, 'p');
    EXPECT_NE(parse_error("socket=" + long_path).find("limited to 107"), std::string::npos);
    const std::string ok_path = "/" + std::string(106, 'p');
    EXPECT_EQ(parse_ok("socket=" + ok_path).socket_path, ok_path);
}

}  // namespace
}  // namespace pgbv::plugin
