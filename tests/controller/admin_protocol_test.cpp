// The admin protocol: round trips of every message, refusals of bad ones, and the admin
// socket answering over a real Unix socket.

#include "controller/admin_protocol.hpp"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <chrono>
#include <cstdlib>
#include <thread>

#include "controller/admin_server.hpp"
#include "controller/controller.hpp"
#include "log_capture.hpp"

namespace pgbv::ctl {
namespace {

using namespace std::chrono_literals;

Status sample() {
    Status s;
    s.health = "degraded";
    s.version = "0.1.0";
    s.now = 1700000100;
    s.uptime = 100;
    s.vault_address = "https://vault:8200";
    s.vault_state = "unreachable";
    s.vault_error = "credentials fetch (GET /v1/database/creds/app): HTTP 503: Vault is sealed";
    s.token.state = "valid";
    s.token.method = "approle";
    s.token.ttl = 3500;
    s.token.expires = true;
    s.token.renewable = true;
    s.token.max_ttl_reached = false;
    s.token.logins = 2;
    s.plugin_clients = 1;
    SetStatus a;
    a.name = "app";
    a.state = "degraded";
    a.mount = "database";
    a.role = "app";
    a.username = "v-approle-app-Xy-1700000000";
    a.generation = 7;
    a.lease_id = "database/creds/app/Qw12";
    a.lease_ttl = 42;
    a.renewable = true;
    a.max_ttl_reached = true;
    a.deadline = 1700000160;
    a.rotate_at = 1700000140;
    a.draining = 1;
    a.last_error = "HTTP 503: Vault is sealed";
    s.sets.push_back(a);
    SetStatus b;
    b.name = "empty";
    b.state = "fetching";
    s.sets.push_back(b);
    return s;
}

void expect_same(const Status& x, const Status& y) {
    EXPECT_EQ(admin::encode_status(x), admin::encode_status(y));
    EXPECT_EQ(x.sets.size(), y.sets.size());
}

TEST(AdminProtocol, StatusRoundTrip) {
    const Status s = sample();
    const std::string line = admin::encode_status(s);
    ASSERT_EQ(line.back(), '\n');
    EXPECT_EQ(line.find('\n'), line.size() - 1);  // one line
    std::string error;
    auto r = admin::parse_response(line, &error);
    ASSERT_TRUE(r) << error;
    EXPECT_TRUE(r->ok);
    ASSERT_TRUE(r->status);
    expect_same(s, *r->status);
    EXPECT_EQ(r->status->sets[0].lease_id, "database/creds/app/Qw12");
    EXPECT_EQ(r->status->sets[0].generation, 7u);
    EXPECT_EQ(r->status->token.logins, 2u);
    EXPECT_EQ(r->status->sets[1].lease_ttl, -1);
}

TEST(AdminProtocol, RequestsAndSmallAnswers) {
    std::string error;
    auto req = admin::parse_request(admin::encode_request({"rotate", "app", ""}), &error);
    ASSERT_TRUE(req) << error;
    EXPECT_EQ(req->command, "rotate");
    EXPECT_EQ(req->set, "app");
    EXPECT_EQ(admin::encode_request({"status", "", ""}), "{\"command\":\"status\"}\n");
    auto ok = admin::parse_response(admin::encode_ok(), &error);
    ASSERT_TRUE(ok);
    EXPECT_TRUE(ok->ok);
    EXPECT_FALSE(ok->status);
    auto no = admin::parse_response(admin::encode_error("no credential set\nnamed 'x'"), &error);
    ASSERT_TRUE(no);
    EXPECT_FALSE(no->ok);
    EXPECT_EQ(no->error, "no credential set named 'x'");
}

TEST(AdminProtocol, BadMessagesAreRefused) {
    std::string error;
    EXPECT_FALSE(admin::parse_request("not json", &error));
    EXPECT_FALSE(admin::parse_request("{\"cmd\":\"status\"}", &error));
    EXPECT_EQ(error, "the request has no \"command\" string");
    EXPECT_FALSE(admin::parse_request(std::string(5000, ' '), &error));
    EXPECT_FALSE(admin::parse_response("{}", &error));
    EXPECT_FALSE(admin::parse_response("{\"ok\":true,\"status\":[]}", &error));
    EXPECT_FALSE(admin::parse_response("{\"ok\":true,\"status\":{}}", &error));
}

TEST(AdminProtocol, HealthRules) {
    Status s = sample();
    EXPECT_EQ(overall_health(s), "failing");  // "empty" has no credentials
    s.sets.pop_back();
    EXPECT_EQ(overall_health(s), "degraded");
    s.vault_state = "reachable";
    s.sets[0].state = "serving";
    EXPECT_EQ(overall_health(s), "ok");
    s.sets[0].state = "expired";
    EXPECT_EQ(overall_health(s), "failing");
}

TEST(AdminServer, AnswersOverTheSocket) {
    testing::LogCapture logs;
    char tmpl[] = "/tmp/pgbv-admin-XXXXXX";
    const std::string dir = mkdtemp(tmpl);
    const std::string path = dir + "/admin.sock";
    UniqueEventBase base(event_base_new());
    std::string error;
    auto listener = UnixListener::open(path, 0600, std::nullopt, &error);
    ASSERT_TRUE(listener) << error;
    int requests = 0;
    AdminServer server(base.get(), std::move(*listener),
                       [&](const admin::Request& r) {
                           ++requests;
                           if (r.command == "status") return admin::encode_status(sample());
                           return admin::encode_error("unknown command '" + r.command + "'");
                       },
                       {::geteuid()});
    struct stat st;
    ASSERT_EQ(::stat(path.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u);

    UniqueFd fd = connect_unix(path, &error);
    ASSERT_TRUE(fd.valid()) << error;
    auto exchange = [&](const std::string& request) {
        EXPECT_EQ(::send(fd.get(), request.data(), request.size(), MSG_NOSIGNAL),
                  static_cast<ssize_t>(request.size()));
        std::string got;
        const auto end = std::chrono::steady_clock::now() + 5s;
        while (got.find('\n') == std::string::npos && std::chrono::steady_clock::now() < end) {
            event_base_loop(base.get(), EVLOOP_NONBLOCK);
            char buf[65536];
            const ssize_t n = ::recv(fd.get(), buf, sizeof buf, MSG_DONTWAIT);
            if (n > 0) got.append(buf, static_cast<std::size_t>(n));
            if (n == 0) break;
            std::this_thread::sleep_for(1ms);
        }
        return got;
    };
    auto r = admin::parse_response(exchange(admin::encode_request({"status", "", ""})), &error);
    ASSERT_TRUE(r) << error;
    ASSERT_TRUE(r->status);
    expect_same(sample(), *r->status);
    // Several exchanges on one connection.
    r = admin::parse_response(exchange(admin::encode_request({"dance", "", ""})), &error);
    ASSERT_TRUE(r) << error;
    EXPECT_FALSE(r->ok);
    EXPECT_EQ(r->error, "unknown command 'dance'");
    // A bad line gets an error and the connection closes.
    r = admin::parse_response(exchange("{nope\n"), &error);
    ASSERT_TRUE(r) << error;
    EXPECT_FALSE(r->ok);
    EXPECT_NE(r->error.find("bad request"), std::string::npos);
    EXPECT_EQ(requests, 2);
    std::system(("rm -rf " + dir).c_str());
}

}  // namespace
}  // namespace pgbv::ctl
