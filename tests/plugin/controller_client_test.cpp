// Tests of the controller client's state machine against a fake controller on a real Unix
// socket, driven by a real libevent loop.
#include "plugin/controller_client.hpp"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <cstdio>

#include "test_support.hpp"

namespace pgbv::plugin {
namespace {

using std::chrono::milliseconds;
using test::credentials;
using State = ControllerClient::State;

class RecordingHandler : public ClientHandler {
public:
    void on_credentials(wire::Credentials&& c) override {
        received.push_back(std::move(c));
        if (on_receive) on_receive();
    }
    std::vector<wire::Credentials> received;
    std::function<void()> on_receive;
};

class ControllerClientTest : public ::testing::Test {
protected:
    ControllerClientTest()
        : path_(dir_.file("plugin.sock")),
          controller_(loop_.base(), path_),
          log_([this](int level, const std::string& m) { logs_.add(level, m); }) {
        options_.socket_path = path_;
        options_.reconnect_min = milliseconds(5);
        options_.reconnect_max = milliseconds(40);
        options_.handshake_timeout = milliseconds(5000);
    }

    ~ControllerClientTest() override {
        client_.reset();
        if (getenv("PGBV_TEST_PRINT_LOGS") != nullptr) std::fputs(logs_.all().c_str(), stderr);
        // No log line may ever carry a password used in these tests.
        EXPECT_EQ(logs_.all().find("hunter"), std::string::npos) << logs_.all();
        EXPECT_EQ(logs_.all().find("SECRETMARKER"), std::string::npos) << logs_.all();
    }

    void make_client() {
        client_ = std::make_unique<ControllerClient>(loop_.base(), options_, log_, handler_, 42);
    }
    void start_client() {
        if (!client_) make_client();
        client_->start();
    }

    bool run_until(const std::function<bool()>& done) {
        const bool ok = loop_.run_until(done);
        if (!ok) ADD_FAILURE() << "condition not reached; log:\n" << logs_.all();
        return ok;
    }
    bool ready() const { return client_ && client_->state() == State::kReady; }

    // Waits for the client's HELLO, then sends `frame` as the controller.
    void connect_and_send_raw_after_hello(const std::vector<std::uint8_t>& frame) {
        controller_.auto_handshake = false;
        controller_.listen();
        start_client();
        ASSERT_TRUE(run_until([&] { return controller_.hellos == 1; }));
        controller_.send_raw(frame);
    }

    test::EventLoop loop_;
    test::TempDir dir_;
    std::string path_;
    test::FakeController controller_;
    test::LogRecorder logs_;
    Logger log_;
    Options options_;
    RecordingHandler handler_;
    std::unique_ptr<ControllerClient> client_;
};

TEST_F(ControllerClientTest, DoesNothingBeforeTheLoopRuns) {
    controller_.listen();
    start_client();
    EXPECT_EQ(client_->state(), State::kWaiting);
    EXPECT_EQ(controller_.accepted, 0);
}

TEST_F(ControllerClientTest, HandshakeAndSnapshot) {
    controller_.snapshot.push_back(credentials("app", 3, "u1", "hunter1"));
    controller_.snapshot.push_back(credentials("ro", 9, "u9", "hunter9"));
    controller_.listen();
    start_client();
    ASSERT_TRUE(run_until([&] { return ready(); }));

    ASSERT_EQ(controller_.received.size(), 1u);
    const auto& hello = std::get<wire::Hello>(controller_.received[0]);
    EXPECT_EQ(hello.version, 1);
    EXPECT_EQ(hello.software.rfind("pgbv-plugin ", 0), 0u);

    ASSERT_EQ(handler_.received.size(), 2u);
    EXPECT_EQ(handler_.received[0].set, "app");
    EXPECT_EQ(handler_.received[0].password.view(), "hunter1");
    EXPECT_EQ(handler_.received[1].generation, 9u);
    EXPECT_EQ(client_->handshakes(), 1u);
    EXPECT_TRUE(logs_.contains("connected to pgbv-controller at " + path_));
    EXPECT_TRUE(logs_.contains("received credentials for 2 set(s)"));
}

TEST_F(ControllerClientTest, PushesAfterTheSnapshotReachTheHandler) {
    controller_.listen();
    start_client();
    ASSERT_TRUE(run_until([&] { return ready(); }));
    EXPECT_TRUE(handler_.received.empty());
    controller_.send(credentials("app", 1, "u1", "hunter1"));
    controller_.send(credentials("app", 2, "u2", "hunter2"));
    ASSERT_TRUE(run_until([&] { return handler_.received.size() == 2; }));
    EXPECT_EQ(handler_.received[1].username, "u2");
}

TEST_F(ControllerClientTest, ReportsGoOutWhenConnected) {
    controller_.listen();
    start_client();
    ASSERT_TRUE(run_until([&] { return ready(); }));
    client_->send_report(wire::Drained{"app", 5, "u-old"});
    client_->send_report(wire::LoginFailed{"app", 6, "u-new", "28P01"});
    ASSERT_TRUE(run_until([&] { return controller_.received.size() == 3; }));
    EXPECT_EQ(std::get<wire::Drained>(controller_.received[1]), (wire::Drained{"app", 5, "u-old"}));
    EXPECT_EQ(std::get<wire::LoginFailed>(controller_.received[2]),
              (wire::LoginFailed{"app", 6, "u-new", "28P01"}));
}

TEST_F(ControllerClientTest, ReportsFromInsideTheHandlerAreSent) {
    // The plugin reports from inside credentials_changed, i.e. from on_credentials.
    handler_.on_receive = [&] { client_->send_report(wire::Drained{"app", 1, "u"}); };
    controller_.snapshot.push_back(credentials("app", 2, "u2", "hunter2"));
    controller_.listen();
    start_client();
    ASSERT_TRUE(run_until([&] { return controller_.received_of<wire::Drained>().size() == 1; }));
}

TEST_F(ControllerClientTest, RejectsReportsThatAreNotReports) {
    make_client();
    EXPECT_THROW(client_->send_report(wire::Hello{}), wire::EncodeError);
    EXPECT_THROW(client_->send_report(wire::Drained{"bad set", 1, "u"}), wire::EncodeError);
    EXPECT_EQ(client_->pending_reports(), 0u);
}

TEST_F(ControllerClientTest, ReportsQueuedWhileDisconnectedAreFlushedAfterTheHandshake) {
    start_client();  // nobody listens yet
    ASSERT_TRUE(run_until([&] { return logs_.contains("cannot connect"); }));
    client_->send_report(wire::Drained{"app", 1, "u1"});
    client_->send_report(wire::Drained{"app", 2, "u2"});
    client_->send_report(wire::LoginFailed{"app", 3, "u3", "28P01"});
    EXPECT_EQ(client_->pending_reports(), 3u);

    controller_.listen();
    ASSERT_TRUE(run_until([&] { return controller_.received.size() == 4; }));
    EXPECT_TRUE(std::holds_alternative<wire::Hello>(controller_.received[0]))
            << "reports only after HELLO";
    EXPECT_EQ(std::get<wire::Drained>(controller_.received[1]).generation, 1u);
    EXPECT_EQ(std::get<wire::Drained>(controller_.received[2]).generation, 2u);
    EXPECT_EQ(std::get<wire::LoginFailed>(controller_.received[3]).generation, 3u);
    EXPECT_EQ(client_->pending_reports(), 0u);
    EXPECT_TRUE(logs_.contains("sending 3 report(s) queued while pgbv-controller was unreachable"));
}

TEST_F(ControllerClientTest, PendingReportsAreBoundedDroppingTheOldestWithOneLogLine) {
    options_.max_pending_reports = 2;
    start_client();
    ASSERT_TRUE(run_until([&] { return logs_.contains("cannot connect"); }));
    for (std::uint64_t g = 1; g <= 5; ++g)
        client_->send_report(wire::Drained{"app", g, "u"});
    EXPECT_EQ(client_->pending_reports(), 2u);
    EXPECT_EQ(logs_.count("dropping the oldest"), 1u) << logs_.all();

    controller_.listen();
    ASSERT_TRUE(run_until([&] { return controller_.received_of<wire::Drained>().size() == 2; }));
    const auto drained = controller_.received_of<wire::Drained>();
    EXPECT_EQ(drained[0].generation, 4u);
    EXPECT_EQ(drained[1].generation, 5u);
    EXPECT_TRUE(logs_.contains("3 older report(s) were dropped (max_pending_reports=2)"));
}

TEST_F(ControllerClientTest, ControllerGoneMeansReconnect) {
    controller_.snapshot.push_back(credentials("app", 1, "u1", "hunter1"));
    controller_.listen();
    start_client();
    ASSERT_TRUE(run_until([&] { return ready(); }));

    controller_.drop_client();
    ASSERT_TRUE(run_until([&] { return client_->state() != State::kReady; }));
    EXPECT_TRUE(logs_.contains("lost connection to pgbv-controller at " + path_));
    EXPECT_TRUE(logs_.contains("still serving the last credentials received"));

    ASSERT_TRUE(run_until([&] { return ready() && controller_.accepted == 2; }));
    EXPECT_EQ(client_->handshakes(), 2u);
    EXPECT_EQ(handler_.received.size(), 2u) << "the snapshot comes again after reconnecting";
}

TEST_F(ControllerClientTest, ReportsUnsentWhenTheConnectionBrokeAreSentAfterReconnecting) {
    controller_.listen();
    start_client();
    ASSERT_TRUE(run_until([&] { return ready(); }));
    // Queued on the connection but not yet written when the controller goes away.
    client_->send_report(wire::Drained{"app", 7, "u7"});
    controller_.drop_client();
    controller_.stop_listening();
    ASSERT_TRUE(run_until([&] { return client_->state() != State::kReady; }));
    EXPECT_EQ(controller_.received_of<wire::Drained>().size(), 0u);
    controller_.listen();
    ASSERT_TRUE(run_until([&] { return controller_.received_of<wire::Drained>().size() == 1; }));
    EXPECT_EQ(controller_.received_of<wire::Drained>()[0].generation, 7u);
}

TEST_F(ControllerClientTest, RepeatedConnectFailuresAreLoggedOnceNotPerAttempt) {
    options_.reconnect_min = milliseconds(1);
    options_.reconnect_max = milliseconds(2);
    start_client();
    ASSERT_TRUE(run_until([&] { return logs_.count("cannot connect") >= 20; }));
    const std::size_t warnings = logs_.count("cannot connect", PGBV_LOG_WARNING);
    EXPECT_EQ(warnings, 1u) << logs_.all();
    const std::string& first = logs_.lines.front().message;
    EXPECT_NE(first.find("cannot connect to pgbv-controller at " + path_ +
                         ": No such file or directory; retrying in "),
              std::string::npos)
            << first;
    EXPECT_NE(first.find("(is pgbv-controller running?)"), std::string::npos) << first;

    // A different error is news: log it once too.
    ASSERT_EQ(::mkdir(path_.c_str(), 0700), 0);  // connect() now fails with ECONNREFUSED
    ASSERT_TRUE(run_until([&] { return logs_.count("Connection refused") >= 5; }));
    EXPECT_EQ(logs_.count("Connection refused", PGBV_LOG_WARNING), 1u) << logs_.all();
    ::rmdir(path_.c_str());

    controller_.listen();
    ASSERT_TRUE(run_until([&] { return ready(); }));
    EXPECT_TRUE(logs_.contains("failed attempts"));
}

TEST_F(ControllerClientTest, OversizedFrameClosesAndIsLoggedWithoutContent) {
    connect_and_send_raw_after_hello(
            {0x00, 0x01, 0x00, 0x00, 'S', 'E', 'C', 'R', 'E', 'T', 'M', 'A', 'R', 'K', 'E', 'R'});
    ASSERT_TRUE(run_until([&] { return logs_.contains("protocol error"); }));
    EXPECT_TRUE(logs_.contains("exceeds the limit of 8192"));
    EXPECT_TRUE(logs_.contains("frame content not logged"));
    ASSERT_TRUE(run_until([&] { return controller_.accepted == 2; })) << "reconnects";
    // The plugin told the controller why, as the protocol asks.
    const auto errors = controller_.received_of<wire::Error>();
    ASSERT_EQ(errors.size(), 1u);
    EXPECT_EQ(errors[0].code, PGBV_ERR_PROTOCOL);
}

TEST_F(ControllerClientTest, GarbageClosesAndIsLoggedWithoutContent) {
    std::vector<std::uint8_t> garbage = {0x00, 0x00, 0x00, 0x0d, 0x77};
    for (char c : std::string("SECRETMARKER"))
        garbage.push_back(static_cast<std::uint8_t>(c));
    connect_and_send_raw_after_hello(garbage);
    ASSERT_TRUE(run_until([&] { return logs_.contains("unknown message type 0x77"); }));
    ASSERT_TRUE(run_until([&] { return controller_.accepted == 2; }));
}

TEST_F(ControllerClientTest, MalformedCredentialsAreNotLoggedNorApplied) {
    controller_.auto_handshake = false;
    controller_.listen();
    start_client();
    ASSERT_TRUE(run_until([&] { return controller_.hellos == 1; }));
    controller_.send(wire::Hello{1, "fake"});
    // flags=1 breaks a rule; the password must not show up anywhere in the log.
    wire::Credentials bad = credentials("app", 1, "u", "SECRETMARKER");
    std::vector<std::uint8_t> frame = wire::encode(bad);
    frame.back() = 1;
    controller_.send_raw(frame);
    ASSERT_TRUE(run_until([&] { return logs_.contains("flags must be 0"); }));
    EXPECT_TRUE(handler_.received.empty());
}

TEST_F(ControllerClientTest, WrongVersionIsLoggedWithBothVersionsAndCloses) {
    controller_.hello_version = 2;
    controller_.listen();
    start_client();
    ASSERT_TRUE(run_until([&] { return logs_.contains("speaks protocol version 2"); }));
    EXPECT_EQ(logs_.count("this plugin speaks version 1", PGBV_LOG_ERROR), 1u) << logs_.all();
    EXPECT_NE(client_->state(), State::kReady);
    ASSERT_TRUE(run_until([&] { return controller_.accepted >= 2; })) << "keeps retrying";
    EXPECT_EQ(client_->handshakes(), 0u);
}

TEST_F(ControllerClientTest, ErrorFromTheControllerIsLoggedAndCloses) {
    connect_and_send_raw_after_hello(
            wire::encode(wire::Error{PGBV_ERR_NOT_PERMITTED, "uid 1000 is not allowed\nfoo"}));
    ASSERT_TRUE(run_until([&] { return logs_.contains("not permitted (code 3)"); }));
    EXPECT_TRUE(logs_.contains("uid 1000 is not allowed?foo")) << "control bytes are neutralised";
    EXPECT_TRUE(logs_.contains("run PgBouncer as a user pgbv-controller allows"));
    ASSERT_TRUE(run_until([&] { return controller_.accepted == 2; }));
}

TEST_F(ControllerClientTest, UnexpectedMessagesAreProtocolErrors) {
    struct Case {
        const char* name;
        std::function<void()> send;
        const char* log;
    };
    const Case cases[] = {
            {"CREDENTIALS before HELLO",
             [&] { controller_.send(credentials("app", 1, "u", "hunter1")); }, "before HELLO"},
            {"DRAINED from the controller",
             [&] {
                 controller_.send(wire::Drained{"app", 1, "u"});
             },
             "which only a plugin may send"},
            {"second HELLO",
             [&] {
                 controller_.send(wire::Hello{1, "x"});
                 controller_.send(wire::SnapshotDone{0});
                 controller_.send(wire::Hello{1, "x"});
             },
             "HELLO after the snapshot"},
            {"SNAPSHOT_DONE with a wrong count",
             [&] {
                 controller_.send(wire::Hello{1, "x"});
                 controller_.send(credentials("app", 1, "u", "hunter1"));
                 controller_.send(wire::SnapshotDone{2});
             },
             "SNAPSHOT_DONE counts 2 credential sets but 1 were sent"},
    };
    controller_.auto_handshake = false;
    controller_.listen();
    start_client();
    int expected_hellos = 0;
    for (const auto& c : cases) {
        SCOPED_TRACE(c.name);
        ++expected_hellos;
        ASSERT_TRUE(run_until([&] { return controller_.hellos == expected_hellos; }));
        c.send();
        ASSERT_TRUE(run_until([&] { return logs_.contains(c.log); }));
    }
}

TEST_F(ControllerClientTest, HandshakeTimeoutCloses) {
    options_.handshake_timeout = milliseconds(30);
    controller_.auto_handshake = false;
    controller_.listen();
    start_client();
    ASSERT_TRUE(run_until([&] { return logs_.contains("did not complete the handshake"); }));
    ASSERT_TRUE(run_until([&] { return controller_.hellos >= 2; }));
}

TEST_F(ControllerClientTest, StopClosesAndStopsReconnecting) {
    controller_.listen();
    start_client();
    ASSERT_TRUE(run_until([&] { return ready(); }));
    client_->send_report(wire::Drained{"app", 1, "u"});
    client_->stop();
    EXPECT_EQ(client_->state(), State::kStopped);
    ASSERT_TRUE(run_until([&] { return !controller_.has_client(); }));
    loop_.run_for(milliseconds(100));
    EXPECT_EQ(controller_.accepted, 1);
    // stop() made one non-blocking attempt to deliver the queued report.
    EXPECT_EQ(controller_.received_of<wire::Drained>().size(), 1u);
    client_->stop();  // idempotent
}

TEST_F(ControllerClientTest, DestroyWhileConnectingOrConnectedIsClean) {
    controller_.listen();
    start_client();
    client_.reset();
    start_client();
    ASSERT_TRUE(run_until([&] { return ready(); }));
    client_.reset();
    loop_.run_for(milliseconds(20));
}

}  // namespace
}  // namespace pgbv::plugin
