// The plugin socket, over a real Unix socket with the real wire codec: handshake,
// snapshot, pushes, reports, and every way a client can misbehave.

#include "controller/plugin_server.hpp"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <thread>

#include "controller/event_handles.hpp"
#include "log_capture.hpp"

namespace pgbv::ctl {
namespace {

using namespace std::chrono_literals;

class FakeHandler : public PluginHandler {
public:
    std::vector<wire::Credentials> snapshot(ClientId client) override {
        snapshots.push_back(client);
        std::vector<wire::Credentials> out;
        for (const auto& c : current)
            out.push_back(copy(c));
        return out;
    }
    void drained(ClientId client, const wire::Drained& m) override {
        drained_seen.emplace_back(client, m);
    }
    void login_failed(ClientId client, const wire::LoginFailed& m) override {
        failed_seen.emplace_back(client, m);
    }
    void client_closed(ClientId client) override { closed.push_back(client); }

    static wire::Credentials copy(const wire::Credentials& c) {
        wire::Credentials out;
        out.set = c.set;
        out.generation = c.generation;
        out.username = c.username;
        out.password = c.password.clone();
        out.expires_at = c.expires_at;
        return out;
    }

    std::vector<wire::Credentials> current;
    std::vector<ClientId> snapshots;
    std::vector<std::pair<ClientId, wire::Drained>> drained_seen;
    std::vector<std::pair<ClientId, wire::LoginFailed>> failed_seen;
    std::vector<ClientId> closed;
};

wire::Credentials creds(const std::string& set, std::uint64_t gen, const std::string& user,
                        const std::string& password) {
    wire::Credentials c;
    c.set = set;
    c.generation = gen;
    c.username = user;
    c.password.assign(password);
    c.expires_at = 1700000000;
    return c;
}

class PluginServerTest : public ::testing::Test {
protected:
    void SetUp() override {
        char tmpl[] = "/tmp/pgbv-plugin-XXXXXX";
        dir_ = mkdtemp(tmpl);
        path_ = dir_ + "/plugin.sock";
        base_.reset(event_base_new());
        options_.allowed_uids = {::geteuid()};
        handler_.current.push_back(creds("app", 3, "v-app-3", "pw-3"));
        handler_.current.push_back(creds("reports", 1, "v-rep-1", "pw with spaces"));
    }
    void TearDown() override {
        server_.reset();
        std::system(("rm -rf " + dir_).c_str());
    }

    void start(mode_t mode = 0660) {
        std::string error;
        auto listener = UnixListener::open(path_, mode, std::nullopt, &error);
        ASSERT_TRUE(listener) << error;
        server_ = std::make_unique<PluginServer>(base_.get(), std::move(*listener), handler_,
                                                 options_);
    }

    void pump() { event_base_loop(base_.get(), EVLOOP_NONBLOCK); }

    // Pumps the loop until `done` or five seconds (a safety net, not a measurement).
    // `done` is evaluated once per round (it may consume what it looks at).
    bool pump_until(const std::function<bool()>& done) {
        const auto end = std::chrono::steady_clock::now() + 5s;
        for (;;) {
            if (done()) return true;
            if (std::chrono::steady_clock::now() >= end) return false;
            pump();
            std::this_thread::sleep_for(1ms);
        }
    }

    UniqueFd connect() {
        std::string error;
        UniqueFd fd = connect_unix(path_, &error);
        EXPECT_TRUE(fd.valid()) << error;
        return fd;
    }

    static void send_bytes(int fd, const std::vector<std::uint8_t>& bytes) {
        ASSERT_EQ(::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL),
                  static_cast<ssize_t>(bytes.size()));
    }
    template <class M>
    static void send_message(int fd, const M& m) {
        send_bytes(fd, wire::encode(m));
    }

    // The next message from the server, or nullopt if the connection closed first.
    std::optional<wire::Message> receive(int fd, wire::FrameDecoder& decoder) {
        std::optional<wire::Message> got;
        bool closed = false;
        pump_until([&] {
            wire::Decoded d = decoder.next();
            if (d.ok()) {
                got = std::move(*d.message);
                return true;
            }
            EXPECT_FALSE(d.failed()) << d.error;
            std::uint8_t buf[4096];
            const ssize_t n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
            if (n > 0) decoder.feed(buf, static_cast<std::size_t>(n));
            if (n == 0) closed = true;
            return closed && decoder.buffered() == 0;
        });
        return got;
    }

    bool closed_by_server(int fd) {
        return pump_until([&] {
            std::uint8_t buf[256];
            const ssize_t n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
            return n == 0 || (n < 0 && errno == ECONNRESET);
        });
    }

    // Expects an ERROR with `code`, then the connection closed; returns its message.
    std::string expect_error(int fd, std::uint16_t code) {
        wire::FrameDecoder decoder;
        auto m = receive(fd, decoder);
        EXPECT_TRUE(m.has_value()) << "connection closed without ERROR";
        if (!m) return {};
        auto* e = std::get_if<wire::Error>(&*m);
        EXPECT_NE(e, nullptr) << "got " << wire::type_name(*m);
        if (!e) return {};
        EXPECT_EQ(e->code, code) << e->message;
        EXPECT_TRUE(closed_by_server(fd));
        return e->message;
    }

    testing::LogCapture logs;
    std::string dir_;
    std::string path_;
    UniqueEventBase base_;
    FakeHandler handler_;
    PluginServer::Options options_;
    std::unique_ptr<PluginServer> server_;
};

TEST_F(PluginServerTest, HandshakeSnapshotPushesAndReports) {
    start();
    UniqueFd fd = connect();
    send_message(fd.get(), wire::Hello{1, "pgbv-plugin 0.1.0"});
    wire::FrameDecoder d;
    auto hello = receive(fd.get(), d);
    ASSERT_TRUE(hello);
    ASSERT_TRUE(std::holds_alternative<wire::Hello>(*hello)) << wire::type_name(*hello);
    EXPECT_EQ(std::get<wire::Hello>(*hello).version, 1);
    EXPECT_EQ(std::get<wire::Hello>(*hello).software, "pgbv-controller 0.1.0");
    auto c1 = receive(fd.get(), d);
    auto c2 = receive(fd.get(), d);
    auto done = receive(fd.get(), d);
    ASSERT_TRUE(c1 && c2 && done);
    EXPECT_EQ(std::get<wire::Credentials>(*c1), handler_.current[0]);
    EXPECT_EQ(std::get<wire::Credentials>(*c2), handler_.current[1]);
    EXPECT_EQ(std::get<wire::SnapshotDone>(*done).count, 2u);
    ASSERT_EQ(handler_.snapshots.size(), 1u);
    EXPECT_EQ(server_->client_count(), 1u);

    const ClientId id = handler_.snapshots[0];
    const auto sent = server_->broadcast(creds("app", 4, "v-app-4", "pw-4"));
    EXPECT_EQ(sent, std::vector<ClientId>{id});
    auto push = receive(fd.get(), d);
    ASSERT_TRUE(push);
    EXPECT_EQ(std::get<wire::Credentials>(*push).generation, 4u);
    EXPECT_TRUE(std::get<wire::Credentials>(*push).password.equals("pw-4"));

    send_message(fd.get(), wire::Drained{"app", 3, "v-app-3"});
    send_message(fd.get(), wire::LoginFailed{"app", 4, "v-app-4", "28P01"});
    ASSERT_TRUE(pump_until([&] { return handler_.failed_seen.size() == 1; }));
    ASSERT_EQ(handler_.drained_seen.size(), 1u);
    EXPECT_EQ(handler_.drained_seen[0].first, id);
    EXPECT_EQ(handler_.drained_seen[0].second, (wire::Drained{"app", 3, "v-app-3"}));
    EXPECT_EQ(handler_.failed_seen[0].second.sqlstate, "28P01");

    fd.reset();
    ASSERT_TRUE(pump_until([&] { return handler_.closed.size() == 1; }));
    EXPECT_EQ(handler_.closed[0], id);
    EXPECT_EQ(server_->client_count(), 0u);
    // Nothing about the password in the logs.
    EXPECT_EQ(logs.all().find("pw-"), std::string::npos);
}

TEST_F(PluginServerTest, FramesSplitIntoSingleBytesStillWork) {
    start();
    UniqueFd fd = connect();
    for (std::uint8_t b : wire::encode(wire::Hello{1, "slow"})) {
        send_bytes(fd.get(), {b});
        pump();
    }
    wire::FrameDecoder d;
    auto hello = receive(fd.get(), d);
    ASSERT_TRUE(hello);
    EXPECT_TRUE(std::holds_alternative<wire::Hello>(*hello));
}

TEST_F(PluginServerTest, OtherVersionGetsErrorNamingBoth) {
    start();
    UniqueFd fd = connect();
    send_message(fd.get(), wire::Hello{2, "pgbv-plugin 9"});
    const std::string message = expect_error(fd.get(), PGBV_ERR_VERSION);
    EXPECT_EQ(message, "protocol version 2 is not supported; this controller speaks version 1");
    EXPECT_TRUE(handler_.snapshots.empty());
}

TEST_F(PluginServerTest, AnythingBeforeHelloIsAProtocolError) {
    start();
    UniqueFd fd = connect();
    send_message(fd.get(), wire::Drained{"app", 1, "u"});
    EXPECT_EQ(expect_error(fd.get(), PGBV_ERR_PROTOCOL), "expected HELLO first, got DRAINED");
}

TEST_F(PluginServerTest, OversizedAndEmptyFramesAreRefused) {
    start();
    {
        UniqueFd fd = connect();
        send_bytes(fd.get(), {0x00, 0x00, 0x23, 0x28, 0x01});  // 9000 bytes announced
        EXPECT_EQ(expect_error(fd.get(), PGBV_ERR_PROTOCOL),
                  "frame length 9000 exceeds the limit of 8192");
    }
    {
        UniqueFd fd = connect();
        send_bytes(fd.get(), {0x00, 0x00, 0x00, 0x00});
        EXPECT_EQ(expect_error(fd.get(), PGBV_ERR_PROTOCOL), "frame length 0 (must be 1 to 8192)");
    }
}

TEST_F(PluginServerTest, GarbageAndWrongDirectionAreRefused) {
    start();
    {
        UniqueFd fd = connect();
        send_bytes(fd.get(), {0x00, 0x00, 0x00, 0x01, 0x7f});
        EXPECT_EQ(expect_error(fd.get(), PGBV_ERR_PROTOCOL), "unknown message type 0x7f");
    }
    {
        UniqueFd fd = connect();
        send_message(fd.get(), wire::Hello{1, "p"});
        wire::FrameDecoder d;
        for (int i = 0; i < 4; ++i)
            ASSERT_TRUE(receive(fd.get(), d));  // hello + snapshot
        send_message(fd.get(), creds("app", 9, "u", "p"));
        std::optional<wire::Message> m;
        do {
            m = receive(fd.get(), d);
        } while (m && !std::holds_alternative<wire::Error>(*m));
        ASSERT_TRUE(m);
        EXPECT_EQ(std::get<wire::Error>(*m).code, PGBV_ERR_PROTOCOL);
        EXPECT_EQ(std::get<wire::Error>(*m).message,
                  "CREDENTIALS is sent by the controller, not the plugin");
    }
    {
        UniqueFd fd = connect();
        send_message(fd.get(), wire::Hello{1, "p"});
        send_message(fd.get(), wire::Hello{1, "p"});
        wire::FrameDecoder d;
        std::optional<wire::Message> m;
        do {
            m = receive(fd.get(), d);
        } while (m && !std::holds_alternative<wire::Error>(*m));
        ASSERT_TRUE(m);
        EXPECT_EQ(std::get<wire::Error>(*m).message, "HELLO sent twice");
    }
    // A field that runs past its frame; a sqlstate of the wrong shape.
    {
        UniqueFd fd = connect();
        send_message(fd.get(), wire::Hello{1, "p"});
        send_bytes(fd.get(), {0x00, 0x00, 0x00, 0x03, 0x20, 0x00, 0x09});
        wire::FrameDecoder d;
        std::optional<wire::Message> m;
        do {
            m = receive(fd.get(), d);
        } while (m && !std::holds_alternative<wire::Error>(*m));
        ASSERT_TRUE(m);
        EXPECT_EQ(std::get<wire::Error>(*m).message,
                  "DRAINED: field 'set' runs past the end of the frame");
    }
    EXPECT_TRUE(handler_.drained_seen.empty());
}

TEST_F(PluginServerTest, UidNotAllowedGetsNotPermitted) {
    options_.allowed_uids = {12345};
    start();
    UniqueFd fd = connect();
    const std::string message = expect_error(fd.get(), PGBV_ERR_NOT_PERMITTED);
    EXPECT_NE(message.find("uid " + std::to_string(::geteuid()) + " may not use this socket"),
              std::string::npos);
    EXPECT_TRUE(logs.contains("plugin socket: refused uid"));
}

TEST_F(PluginServerTest, AnotherUserIsRefusedByUid) {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root to connect as another user";
    ::chmod(dir_.c_str(), 0711);
    start(0666);  // let the file mode through, so that the uid check is what refuses
    const pid_t child = ::fork();
    if (child == 0) {
        if (::setgid(65534) != 0 || ::setuid(65534) != 0) _exit(10);
        std::string error;
        UniqueFd fd = connect_unix(path_, &error);
        if (!fd.valid()) _exit(11);
        send_bytes(fd.get(), wire::encode(wire::Hello{1, "p"}));
        std::uint8_t buf[1024];
        std::size_t have = 0;
        for (;;) {
            const ssize_t n = ::recv(fd.get(), buf + have, sizeof buf - have, 0);
            if (n <= 0) break;
            have += static_cast<std::size_t>(n);
        }
        wire::FrameDecoder d;
        d.feed(buf, have);
        wire::Decoded m = d.next();
        if (!m.ok()) _exit(12);
        auto* e = std::get_if<wire::Error>(&*m.message);
        _exit(e != nullptr && e->code == PGBV_ERR_NOT_PERMITTED ? 0 : 13);
    }
    int status = 0;
    pump_until([&] { return ::waitpid(child, &status, WNOHANG) == child; });
    ASSERT_TRUE(WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), 0);
    EXPECT_TRUE(logs.contains("plugin socket: refused uid 65534"));
}

TEST_F(PluginServerTest, TooManyClientsAreRefused) {
    options_.max_clients = 1;
    start();
    UniqueFd first = connect();
    send_message(first.get(), wire::Hello{1, "p"});
    wire::FrameDecoder d;
    ASSERT_TRUE(receive(first.get(), d));
    UniqueFd second = connect();
    EXPECT_EQ(expect_error(second.get(), PGBV_ERR_TOO_MANY_CLIENTS),
              "too many plugin connections (max_plugin_clients = 1)");
    first.reset();
    ASSERT_TRUE(pump_until([&] { return server_->client_count() == 0; }));
    UniqueFd third = connect();
    send_message(third.get(), wire::Hello{1, "p"});
    wire::FrameDecoder d3;
    auto m = receive(third.get(), d3);
    ASSERT_TRUE(m);
    EXPECT_TRUE(std::holds_alternative<wire::Hello>(*m));
}

TEST_F(PluginServerTest, NoHelloInTimeIsClosed) {
    options_.hello_timeout = 50ms;
    start();
    UniqueFd fd = connect();
    EXPECT_EQ(expect_error(fd.get(), PGBV_ERR_PROTOCOL), "no HELLO received in time");
}

TEST_F(PluginServerTest, PushesSkipClientsBeforeTheirSnapshot) {
    start();
    UniqueFd fd = connect();
    ASSERT_TRUE(pump_until([&] { return server_->client_count() == 1; }));
    EXPECT_TRUE(server_->broadcast(creds("app", 5, "u", "p")).empty());
}

TEST_F(PluginServerTest, ShutdownSaysSo) {
    start();
    UniqueFd fd = connect();
    send_message(fd.get(), wire::Hello{1, "p"});
    wire::FrameDecoder d;
    for (int i = 0; i < 4; ++i)
        ASSERT_TRUE(receive(fd.get(), d));
    server_->shutdown();
    auto m = receive(fd.get(), d);
    ASSERT_TRUE(m);
    ASSERT_TRUE(std::holds_alternative<wire::Error>(*m));
    EXPECT_EQ(std::get<wire::Error>(*m).code, PGBV_ERR_SHUTTING_DOWN);
    EXPECT_TRUE(closed_by_server(fd.get()));
}

TEST_F(PluginServerTest, SocketFileModeStaleFileAndRival) {
    start();
    struct stat st;
    ASSERT_EQ(::stat(path_.c_str(), &st), 0);
    EXPECT_TRUE(S_ISSOCK(st.st_mode));
    EXPECT_EQ(st.st_mode & 0777, 0660u);
    // A second listener on the same path is refused while the first lives.
    std::string error;
    EXPECT_FALSE(UnixListener::open(path_, 0660, std::nullopt, &error));
    EXPECT_NE(error.find("another process is listening"), std::string::npos) << error;
    // Once it is gone the file is removed; a stale file is replaced.
    server_.reset();
    EXPECT_NE(::stat(path_.c_str(), &st), 0);
    {
        auto first = UnixListener::open(path_, 0600, std::nullopt, &error);
        ASSERT_TRUE(first);
        UniqueFd keep(::dup(first->fd()));
        // Simulate a crash: the file stays, nobody listens.
        ::close(keep.release());
    }
    int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strcpy(addr.sun_path, path_.c_str());
    ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    ::close(fd);  // a stale socket file
    EXPECT_TRUE(UnixListener::open(path_, 0600, std::nullopt, &error)) << error;
    // A regular file is not touched.
    const std::string plain = dir_ + "/plain";
    std::system(("touch " + plain).c_str());
    EXPECT_FALSE(UnixListener::open(plain, 0600, std::nullopt, &error));
    EXPECT_NE(error.find("is not a socket"), std::string::npos);
}

}  // namespace
}  // namespace pgbv::ctl
