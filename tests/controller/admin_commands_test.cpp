// The admin commands: every command through AdminServer::answer with stand-in actions,
// and the admin socket facing malformed, oversized and random input and foreign uids.

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <random>
#include <stdexcept>
#include <thread>

#include "controller/admin_protocol.hpp"
#include "controller/admin_server.hpp"
#include "controller/config.hpp"
#include "controller/log.hpp"
#include "log_capture.hpp"

namespace pgbv::ctl {
namespace {

using namespace std::chrono_literals;

Status sample() {
    Status s;
    s.health = "ok";
    s.version = "0.1.0";
    s.now = 1700000100;
    s.vault_address = "http://127.0.0.1:8200";
    s.vault_state = "reachable";
    s.token.state = "valid";
    s.token.method = "approle";
    SetStatus a;
    a.name = "app";
    a.state = "serving";
    a.kind = "dynamic";
    a.source = "database/creds/app";
    a.username = "v-approle-app-Xy";
    a.generation = 3;
    a.lease_id = "database/creds/app/L3";
    a.lease_ttl = 200;
    a.deadline = 1700000400;
    a.rotate_at = 1700000340;
    a.renew_at = 1700000200;
    a.draining = 2;
    GenerationStatus g3{
            3, "v-approle-app-Xy", "database/creds/app/L3", "current", 200, 1700000400, true, 1, 0};
    GenerationStatus g2{
            2, "v-approle-app-Ab", "database/creds/app/L2", "in_use", 100, 1700000300, true, 1, 0};
    GenerationStatus g1{
            1, "v-approle-app-Cd", "database/creds/app/L1", "drained", 50, 1700000150, true, 0, 2};
    a.generations = {g3, g2, g1};
    s.sets.push_back(a);
    SetStatus b;
    b.name = "reports";
    b.state = "fetching";
    b.kind = "static";
    s.sets.push_back(b);
    return s;
}

struct Recorder {
    std::vector<std::string> rotated;
    int revokes = 0;
    int reloads = 0;
    bool fail = false;

    AdminServer::Actions actions() {
        AdminServer::Actions a;
        a.status = [] { return sample(); };
        a.rotate = [this](const std::string& set) -> std::string {
            rotated.push_back(set);
            return set == "app" ? "" : "no credential set named '" + set + "'";
        };
        a.revoke_drained = [this](std::string* text) {
            ++revokes;
            *text = fail ? "no usable Vault token" : "revoked 1 lease (set app generation 1)";
            return !fail;
        };
        a.reload = [this](std::string* error) -> std::optional<admin::ReloadReport> {
            ++reloads;
            if (fail) {
                *error = "/etc/pgbv.ini:7: unknown key 'rol' in [set.x]";
                return std::nullopt;
            }
            return admin::ReloadReport{{"new"}, {"app"}, {"old"}, {"[vault] address"}};
        };
        return a;
    }
};

admin::Response ask(const admin::Request& r, const AdminServer::Actions& a) {
    const std::string line = AdminServer::answer(r, a);
    EXPECT_EQ(line.find('\n'), line.size() - 1) << line;
    std::string error;
    auto response = admin::parse_response(line, &error);
    EXPECT_TRUE(response) << error << ": " << line;
    return response.value_or(admin::Response{});
}

TEST(AdminCommands, StatusSetsLeases) {
    testing::LogCapture logs;
    Recorder rec;
    auto a = rec.actions();
    auto r = ask({"status", "", ""}, a);
    ASSERT_TRUE(r.ok && r.status);
    EXPECT_EQ(r.status->sets.size(), 2u);
    EXPECT_EQ(r.status->sets[0].generations.size(), 3u);
    EXPECT_EQ(r.status->sets[0].renew_at, 1700000200);

    r = ask({"sets", "", ""}, a);
    ASSERT_TRUE(r.ok && r.sets);
    EXPECT_FALSE(r.status);
    EXPECT_EQ(r.now, 1700000100);
    ASSERT_EQ(r.sets->size(), 2u);
    EXPECT_EQ((*r.sets)[0].source, "database/creds/app");
    EXPECT_EQ((*r.sets)[0].draining, 2u);
    EXPECT_EQ((*r.sets)[1].kind, "static");

    r = ask({"leases", "", ""}, a);
    ASSERT_TRUE(r.ok && r.leases);
    ASSERT_EQ(r.leases->size(), 3u);  // the leaseless set has no generation yet
    EXPECT_EQ((*r.leases)[0].set, "app");
    EXPECT_EQ((*r.leases)[0].generation.state, "current");
    EXPECT_EQ((*r.leases)[1].generation.state, "in_use");
    EXPECT_EQ((*r.leases)[2].generation.number, 1u);
    EXPECT_EQ((*r.leases)[2].generation.revoke_failures, 2u);
    EXPECT_EQ((*r.leases)[2].generation.lease_id, "database/creds/app/L1");
}

TEST(AdminCommands, Rotate) {
    testing::LogCapture logs;
    Recorder rec;
    auto a = rec.actions();
    auto r = ask({"rotate", "app", ""}, a);
    EXPECT_TRUE(r.ok);
    EXPECT_NE(r.message.find("set app"), std::string::npos) << r.message;
    r = ask({"rotate", "nope", ""}, a);
    EXPECT_FALSE(r.ok);
    EXPECT_EQ(r.error, "no credential set named 'nope'");
    r = ask({"rotate", "", ""}, a);  // no set: refused before the action runs
    EXPECT_FALSE(r.ok);
    EXPECT_NE(r.error.find("rotate needs the credential set's name"), std::string::npos);
    EXPECT_EQ(rec.rotated, (std::vector<std::string>{"app", "nope"}));
    EXPECT_TRUE(logs.contains("rotation of set app requested"));
}

TEST(AdminCommands, RevokeDrainedAndReload) {
    testing::LogCapture logs;
    Recorder rec;
    auto a = rec.actions();
    auto r = ask({"revoke-drained", "", ""}, a);
    EXPECT_TRUE(r.ok);
    EXPECT_EQ(r.message, "revoked 1 lease (set app generation 1)");
    r = ask({"reload", "", ""}, a);
    ASSERT_TRUE(r.ok && r.reload);
    EXPECT_EQ(r.reload->added, std::vector<std::string>{"new"});
    EXPECT_EQ(r.reload->changed, std::vector<std::string>{"app"});
    EXPECT_EQ(r.reload->removed, std::vector<std::string>{"old"});
    EXPECT_EQ(r.reload->restart_needed, std::vector<std::string>{"[vault] address"});

    rec.fail = true;
    r = ask({"revoke-drained", "", ""}, a);
    EXPECT_FALSE(r.ok);
    EXPECT_EQ(r.error, "no usable Vault token");
    r = ask({"reload", "", ""}, a);
    EXPECT_FALSE(r.ok);
    EXPECT_EQ(r.error,
              "/etc/pgbv.ini:7: unknown key 'rol' in [set.x]; the running configuration is "
              "unchanged");
    EXPECT_EQ(rec.revokes, 2);
    EXPECT_EQ(rec.reloads, 2);
}

TEST(AdminCommands, LogLevel) {
    testing::LogCapture logs(log::Level::kInfo);
    Recorder rec;
    auto a = rec.actions();
    auto r = ask({"log-level", "", "debug"}, a);
    EXPECT_TRUE(r.ok);
    EXPECT_EQ(r.level, "debug");
    EXPECT_EQ(r.previous, "info");
    EXPECT_EQ(log::level(), log::Level::kDebug);
    r = ask({"log-level", "", "error"}, a);
    EXPECT_TRUE(r.ok);
    EXPECT_EQ(r.previous, "debug");
    EXPECT_EQ(log::level(), log::Level::kError);
    // Both changes are in the log, also the one that hides info lines.
    EXPECT_TRUE(logs.contains("log level debug (was info)"));
    EXPECT_TRUE(logs.contains("log level error (was debug)"));
    r = ask({"log-level", "", "loud"}, a);
    EXPECT_FALSE(r.ok);
    EXPECT_NE(r.error.find("error, warning, info or debug"), std::string::npos);
    EXPECT_NE(r.error.find("'loud'"), std::string::npos);
    EXPECT_EQ(log::level(), log::Level::kError);
    r = ask({"log-level", "", ""}, a);
    EXPECT_FALSE(r.ok);
}

TEST(AdminCommands, UnknownCommandListsTheValidOnes) {
    testing::LogCapture logs;
    Recorder rec;
    auto r = ask({"dance\nnow", "", ""}, rec.actions());
    EXPECT_FALSE(r.ok);
    EXPECT_EQ(r.error,
              "unknown command 'dance now'; valid commands: status, sets, leases, rotate, "
              "revoke-drained, reload, log-level");
    // A huge name is cut short in the answer.
    r = ask({std::string(10000, 'x'), "", ""}, rec.actions());
    EXPECT_FALSE(r.ok);
    EXPECT_LT(r.error.size(), 200u);
}

TEST(AdminCommands, MissingOrThrowingActionsAnswerAnError) {
    testing::LogCapture logs;
    AdminServer::Actions none;
    for (const char* c : admin::kCommands) {
        admin::Request req{c, "app", "info"};
        auto r = ask(req, none);
        if (std::string(c) == "log-level") {
            EXPECT_TRUE(r.ok);
        } else {
            EXPECT_FALSE(r.ok) << c;
            EXPECT_NE(r.error.find("not available"), std::string::npos) << r.error;
        }
    }
    AdminServer::Actions throwing;
    throwing.status = []() -> Status { throw std::runtime_error("boom"); };
    auto r = ask({"sets", "", ""}, throwing);
    EXPECT_FALSE(r.ok);
    EXPECT_EQ(r.error, "sets failed: boom");
}

TEST(AdminProtocolParse, RequestShapes) {
    std::string error;
    auto r = admin::parse_request("{\"command\":\"log-level\",\"level\":\"debug\"}\n", &error);
    ASSERT_TRUE(r) << error;
    EXPECT_EQ(r->level, "debug");
    EXPECT_EQ(admin::encode_request({"log-level", "", "warning"}),
              "{\"command\":\"log-level\",\"level\":\"warning\"}\n");
    EXPECT_FALSE(admin::parse_request("", &error));
    EXPECT_NE(error.find("empty line"), std::string::npos);
    EXPECT_FALSE(admin::parse_request("[\"status\"]", &error));
    EXPECT_NE(error.find("not a JSON object"), std::string::npos);
    EXPECT_FALSE(admin::parse_request("42", &error));
    EXPECT_FALSE(admin::parse_request("{\"command\":7}", &error));
    EXPECT_EQ(error, "the request has no \"command\" string");
    EXPECT_FALSE(admin::parse_request("{\"command\":\"rotate\",\"set\":[1]}", &error));
    EXPECT_EQ(error, "\"set\" must be a string");
    EXPECT_FALSE(admin::parse_request(std::string("{\"command\":\"st\0tus\"}", 19), &error));
    EXPECT_EQ(admin::check_request({"status", "", ""}), "");
    EXPECT_EQ(admin::check_request({"rotate", "app", ""}), "");
    for (const char* c : admin::kCommands)
        EXPECT_TRUE(admin::is_command(c));
    EXPECT_FALSE(admin::is_command("STATUS"));
}

TEST(AdminProtocolParse, ResponsesOfTheWrongShapeAreRefused) {
    std::string error;
    EXPECT_FALSE(admin::parse_response("{\"ok\":true,\"sets\":{}}", &error));
    EXPECT_FALSE(admin::parse_response("{\"ok\":true,\"leases\":3}", &error));
    EXPECT_FALSE(admin::parse_response("{\"ok\":true,\"reload\":[]}", &error));
    // Odd types inside are read as absent, never crash.
    auto r = admin::parse_response(
            "{\"ok\":true,\"leases\":[1,\"x\",{\"set\":5,\"generation\":\"a\"}],"
            "\"reload\":{\"added\":[1,\"a\"],\"changed\":7}}",
            &error);
    ASSERT_TRUE(r) << error;
    EXPECT_EQ(r->leases->size(), 3u);
    EXPECT_EQ(r->reload->added, std::vector<std::string>{"a"});
}

// ---------------------------------------------------------------------------------------------
// Over a real socket.

class AdminSocket : public ::testing::Test {
protected:
    void SetUp() override {
        char tmpl[] = "/tmp/pgbv-admin-XXXXXX";
        dir_ = mkdtemp(tmpl);
        path_ = dir_ + "/admin.sock";
        base_.reset(event_base_new());
    }
    void TearDown() override {
        server_.reset();
        std::system(("rm -rf " + dir_).c_str());
    }

    void start(std::vector<uid_t> allowed) {
        std::string error;
        auto listener = UnixListener::open(path_, 0600, std::nullopt, &error);
        ASSERT_TRUE(listener) << error;
        server_.emplace(base_.get(), std::move(*listener), rec_.actions(), std::move(allowed));
    }

    UniqueFd connect() {
        std::string error;
        UniqueFd fd = connect_unix(path_, &error);
        EXPECT_TRUE(fd.valid()) << error;
        return fd;
    }

    // Sends `bytes`, then runs the loop until a line came back or the peer closed.
    // `closed` tells whether the server closed the connection after it.
    // half_close: shut the writing side once everything is sent, as a client that gives up.
    std::string exchange(int fd, const std::string& bytes, bool* closed = nullptr,
                         bool half_close = false) {
        std::size_t off = 0;
        bool shut = false;
        std::string got;
        bool eof = false;
        const auto end = std::chrono::steady_clock::now() + 5s;
        while (std::chrono::steady_clock::now() < end) {
            if (off < bytes.size()) {
                const ssize_t n = ::send(fd, bytes.data() + off, bytes.size() - off,
                                         MSG_NOSIGNAL | MSG_DONTWAIT);
                if (n > 0) off += static_cast<std::size_t>(n);
                if (n < 0 && errno != EAGAIN) off = bytes.size();  // the server hung up
            }
            if (half_close && !shut && off == bytes.size()) {
                ::shutdown(fd, SHUT_WR);
                shut = true;
            }
            event_base_loop(base_.get(), EVLOOP_NONBLOCK);
            char buf[65536];
            const ssize_t n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
            if (n > 0) got.append(buf, static_cast<std::size_t>(n));
            if (n == 0) {
                eof = true;
                break;
            }
            if (closed == nullptr && got.find('\n') != std::string::npos) break;
            std::this_thread::sleep_for(1ms);
        }
        if (closed != nullptr) *closed = eof;
        return got;
    }

    admin::Response answer_to(const std::string& bytes, bool* closed = nullptr) {
        UniqueFd fd = connect();
        const std::string line = exchange(fd.get(), bytes, closed);
        EXPECT_EQ(line.find('\n'), line.size() - 1) << "one line expected: " << line;
        std::string error;
        auto r = admin::parse_response(line, &error);
        EXPECT_TRUE(r) << error << ": " << line;
        return r.value_or(admin::Response{});
    }

    testing::LogCapture logs_;
    std::string dir_;
    std::string path_;
    UniqueEventBase base_;
    Recorder rec_;
    std::optional<AdminServer> server_;
};

TEST_F(AdminSocket, EveryCommandOverOneConnection) {
    start({::geteuid()});
    UniqueFd fd = connect();
    std::string error;
    for (const admin::Request& req : std::vector<admin::Request>{{"status", "", ""},
                                                                 {"sets", "", ""},
                                                                 {"leases", "", ""},
                                                                 {"rotate", "app", ""},
                                                                 {"revoke-drained", "", ""},
                                                                 {"reload", "", ""},
                                                                 {"log-level", "", "debug"}}) {
        auto r = admin::parse_response(exchange(fd.get(), admin::encode_request(req)), &error);
        ASSERT_TRUE(r) << req.command << ": " << error;
        EXPECT_TRUE(r->ok) << req.command << ": " << r->error;
    }
    EXPECT_EQ(rec_.rotated.size(), 1u);
    EXPECT_EQ(rec_.reloads, 1);
}

TEST_F(AdminSocket, MalformedLinesGetAnErrorAndTheConnectionCloses) {
    start({::geteuid()});
    for (const std::string bad : {"{nope\n", "\n", "[1,2]\n", "{\"command\":1}\n", "null\n",
                                  "{\"command\":\"rotate\",\"set\":{}}\n"}) {
        bool closed = false;
        auto r = answer_to(bad, &closed);
        EXPECT_FALSE(r.ok) << bad;
        EXPECT_EQ(r.error.rfind("bad request: ", 0), 0u) << r.error;
        EXPECT_TRUE(closed) << bad;
    }
    // An unknown command is an answer, not a protocol error: the connection stays.
    bool closed = true;
    UniqueFd fd = connect();
    std::string error;
    auto r = admin::parse_response(exchange(fd.get(), "{\"command\":\"dance\"}\n"), &error);
    ASSERT_TRUE(r) << error;
    EXPECT_NE(r->error.find("valid commands: status, sets"), std::string::npos) << r->error;
    r = admin::parse_response(exchange(fd.get(), "{\"command\":\"status\"}\n"), &error);
    ASSERT_TRUE(r) << error;
    EXPECT_TRUE(r->ok);
    (void)closed;
}

TEST_F(AdminSocket, OversizedLinesAreRefused) {
    start({::geteuid()});
    // Without a newline: refused once it passes the limit.
    bool closed = false;
    auto r = answer_to(std::string(admin::kMaxRequestLine + 100, 'a'), &closed);
    EXPECT_FALSE(r.ok);
    EXPECT_NE(r.error.find("longer than 4096 bytes"), std::string::npos) << r.error;
    EXPECT_TRUE(closed);
    // A long line with its newline, JSON and all.
    const std::string big =
            "{\"command\":\"rotate\",\"set\":\"" + std::string(10000, 'x') + "\"}\n";
    r = answer_to(big, &closed);
    EXPECT_FALSE(r.ok);
    EXPECT_TRUE(closed);
    EXPECT_TRUE(rec_.rotated.empty());
    // Still serving.
    r = answer_to("{\"command\":\"status\"}\n");
    EXPECT_TRUE(r.ok);
}

TEST_F(AdminSocket, RandomBytesNeverHurtTheServer) {
    start({::geteuid()});
    std::mt19937 rng(12345);
    for (int round = 0; round < 200; ++round) {
        std::string junk(1 + rng() % 300, '\0');
        for (char& c : junk)
            c = static_cast<char>(rng() % 256);
        if (round % 3 == 0) junk += '\n';
        if (round % 5 == 0) junk = "{\"command\":\"" + junk.substr(0, 40) + "\"}\n";
        UniqueFd fd = connect();
        bool closed = false;
        const std::string got = exchange(fd.get(), junk, &closed, true);
        EXPECT_TRUE(closed);
        if (!got.empty()) {
            // Whatever came back is one valid response line.
            ASSERT_EQ(got.find('\n'), got.size() - 1) << got;
            std::string error;
            ASSERT_TRUE(admin::parse_response(got, &error)) << error;
        }
    }
    auto r = answer_to("{\"command\":\"sets\"}\n");
    EXPECT_TRUE(r.ok && r.sets);
    EXPECT_TRUE(rec_.rotated.size() <= 1);
}

TEST_F(AdminSocket, AnotherUidIsRefusedClearly) {
    // Only a uid that is not ours may use it: we are the "other" uid.
    start({::geteuid() + 4242});
    bool closed = false;
    auto r = answer_to("{\"command\":\"status\"}\n", &closed);
    EXPECT_FALSE(r.ok);
    EXPECT_EQ(r.error.rfind("permission denied: uid " + std::to_string(::geteuid()) +
                                    " may not use the admin socket " + path_,
                            0),
              0u)
            << r.error;
    EXPECT_NE(r.error.find("run pgbvctl as that user"), std::string::npos) << r.error;
    EXPECT_TRUE(closed);
    EXPECT_TRUE(logs_.contains("admin socket: refused a connection from uid"));
    EXPECT_TRUE(rec_.rotated.empty());
}

// [controller] admin_socket_mode and log_format.
TEST(AdminConfig, SocketModeAndLogFormat) {
    char tmpl[] = "/tmp/pgbv-admin-config-XXXXXX";
    const std::string dir = mkdtemp(tmpl);
    auto load = [&](const std::string& controller_lines) {
        const std::string path = dir + "/c.ini";
        std::ofstream(path) << "[vault]\naddress = http://127.0.0.1:8200\n"
                               "[controller]\nplugin_socket = /tmp/p.sock\n"
                            << controller_lines << "[set.app]\nrole = app\n";
        return load_config(path, [](const char* n) -> const char* {
            return std::string(n) == "VAULT_TOKEN" ? "(set)" : nullptr;
        });
    };
    ConfigResult r = load("");
    ASSERT_TRUE(r.config) << r.error;
    EXPECT_EQ(r.config->controller.admin_socket_mode, 0600u);
    EXPECT_EQ(r.config->controller.log_format, log::Format::kText);
    r = load("admin_socket_mode = 0660\nlog_format = json\n");
    ASSERT_TRUE(r.config) << r.error;
    EXPECT_EQ(r.config->controller.admin_socket_mode, 0660u);
    EXPECT_EQ(r.config->controller.log_format, log::Format::kJson);
    r = load("admin_socket_mode = 0999\n");
    EXPECT_FALSE(r.config);
    EXPECT_NE(r.error.find("admin_socket_mode '0999' is not an octal mode like 0600"),
              std::string::npos)
            << r.error;
    r = load("log_format = yaml\n");
    EXPECT_FALSE(r.config);
    EXPECT_NE(r.error.find("log_format 'yaml' must be text or json"), std::string::npos) << r.error;
    std::system(("rm -rf " + dir).c_str());
}

}  // namespace
}  // namespace pgbv::ctl
