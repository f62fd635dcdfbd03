// The HTTP endpoint over a real socket on a real libevent loop: /metrics, /healthz,
// /readyz, HEAD, 405, 404, an oversized request, a port already taken; and http_listen
// in the configuration.

#include "controller/http_endpoint.hpp"

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <map>
#include <memory>
#include <string>

#include "controller/config.hpp"
#include "controller/event_clock.hpp"
#include "controller/event_handles.hpp"
#include "controller/metrics.hpp"
#include "fake_clock.hpp"
#include "log_capture.hpp"

namespace pgbv::ctl::testing {
namespace {

using namespace std::chrono_literals;

struct Answer {
    int code = 0;
    std::map<std::string, std::string> headers;
    std::string body;
    bool done = false;
    event_base* base = nullptr;
};

struct ConnectionFree {
    void operator()(evhttp_connection* c) const noexcept { evhttp_connection_free(c); }
};

class HttpEndpointTest : public ::testing::Test {
protected:
    void SetUp() override {
        status.version = "1.2.3";
        status.now = 1000;
        status.vault_state = "reachable";
        SetStatus app;
        app.name = "app";
        app.kind = "dynamic";
        app.state = "fetching";
        status.sets.push_back(app);
        metrics.rotation("app", "manual");
    }

    std::unique_ptr<HttpEndpoint> open(std::uint16_t port = 0, std::string* error = nullptr) {
        HttpEndpoint::Options o;
        o.port = port;
        std::string e;
        auto ep = HttpEndpoint::open(
                base.get(), clock, metrics, [this] { return status; }, o, &e);
        if (error != nullptr) *error = e;
        return ep;
    }

    // One request through libevent's HTTP client on the same loop.
    Answer request(HttpEndpoint& ep, evhttp_cmd_type method, const std::string& path) {
        Answer a;
        a.base = base.get();
        std::unique_ptr<evhttp_connection, ConnectionFree> conn(
                evhttp_connection_base_new(base.get(), nullptr, "127.0.0.1", ep.port()));
        EXPECT_TRUE(conn);
        evhttp_request* req = evhttp_request_new(
                [](evhttp_request* r, void* arg) {
                    auto* a = static_cast<Answer*>(arg);
                    a->done = true;
                    if (r != nullptr) {
                        a->code = evhttp_request_get_response_code(r);
                        evkeyvalq* h = evhttp_request_get_input_headers(r);
                        for (evkeyval* kv = h->tqh_first; kv != nullptr; kv = kv->next.tqe_next)
                            a->headers[kv->key] = kv->value;
                        evbuffer* b = evhttp_request_get_input_buffer(r);
                        a->body.assign(reinterpret_cast<const char*>(evbuffer_pullup(b, -1)),
                                       evbuffer_get_length(b));
                    }
                    event_base_loopbreak(a->base);
                },
                &a);
        evhttp_add_header(evhttp_request_get_output_headers(req), "Host", "localhost");
        evhttp_make_request(conn.get(), req, method, path.c_str());
        run_until([&] { return a.done; });
        return a;
    }

    // Runs the loop until `done()` or five seconds.
    template <class F>
    void run_until(F done) {
        for (int i = 0; i < 500 && !done(); ++i) {
            const timeval tick = {0, 10000};
            event_base_loopexit(base.get(), &tick);
            event_base_dispatch(base.get());
        }
        ASSERT_TRUE(done()) << "no answer within 5 s";
    }

    UniqueEventBase base{event_base_new()};
    EventClock clock{base.get()};
    Metrics metrics;
    Status status;
    LogCapture logs;
};

TEST_F(HttpEndpointTest, MetricsHealthzAndReadyzOverARealSocket) {
    auto ep = open();
    ASSERT_TRUE(ep);
    ASSERT_NE(ep->port(), 0);
    EXPECT_EQ(ep->bound_address(), "127.0.0.1:" + std::to_string(ep->port()));

    Answer m = request(*ep, EVHTTP_REQ_GET, "/metrics");
    EXPECT_EQ(m.code, 200);
    EXPECT_EQ(m.headers["Content-Type"], "text/plain; version=0.0.4; charset=utf-8");
    EXPECT_EQ(m.headers["Cache-Control"], "no-store");
    EXPECT_EQ(m.body, metrics.render(status));
    EXPECT_NE(m.body.find("pgbv_rotations_total{set=\"app\",kind=\"dynamic\",reason=\"manual\"} 1"),
              std::string::npos);

    Answer h = request(*ep, EVHTTP_REQ_GET, "/healthz");
    EXPECT_EQ(h.code, 200);
    EXPECT_EQ(h.body, "ok\n");

    Answer r = request(*ep, EVHTTP_REQ_GET, "/readyz");
    EXPECT_EQ(r.code, 503);
    EXPECT_EQ(r.body, "set app: no credentials yet (fetching)\n");
    // Computed at each request: the status changes, so does the answer.
    status.sets[0].state = "serving";
    status.sets[0].generation = 1;
    GenerationStatus g;
    g.number = 1;
    g.holders = 1;
    status.sets[0].generations.push_back(g);
    r = request(*ep, EVHTTP_REQ_GET, "/readyz?full=1");
    EXPECT_EQ(r.code, 200);
    EXPECT_EQ(r.body, "ok\n");
}

TEST_F(HttpEndpointTest, HeadMethodsAndPaths) {
    auto ep = open();
    ASSERT_TRUE(ep);
    Answer head = request(*ep, EVHTTP_REQ_HEAD, "/metrics");
    EXPECT_EQ(head.code, 200);
    EXPECT_TRUE(head.body.empty());
    EXPECT_EQ(head.headers["Content-Length"], std::to_string(metrics.render(status).size()));
    for (evhttp_cmd_type m : {EVHTTP_REQ_POST, EVHTTP_REQ_PUT, EVHTTP_REQ_DELETE,
                              EVHTTP_REQ_OPTIONS, EVHTTP_REQ_PATCH}) {
        Answer a = request(*ep, m, "/healthz");
        EXPECT_EQ(a.code, 405) << static_cast<int>(m);
        EXPECT_EQ(a.headers["Allow"], "GET, HEAD");
    }
    Answer nf = request(*ep, EVHTTP_REQ_GET, "/metrics/extra");
    EXPECT_EQ(nf.code, 404);
    EXPECT_NE(nf.body.find("try /metrics, /healthz or /readyz"), std::string::npos);
    EXPECT_EQ(request(*ep, EVHTTP_REQ_GET, "/").code, 404);
}

TEST_F(HttpEndpointTest, OversizedRequestIsRefusedAndTheServerGoesOn) {
    auto ep = open();
    ASSERT_TRUE(ep);
    UniqueFd fd(::socket(AF_INET, SOCK_STREAM, 0));
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(ep->port());
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::connect(fd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
    const std::string big =
            "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(20000, 'a') + "\r\n\r\n";
    ASSERT_EQ(::send(fd.get(), big.data(), big.size(), MSG_NOSIGNAL),
              static_cast<ssize_t>(big.size()));
    std::string got;
    run_until([&] {
        char buf[4096];
        const ssize_t n = ::recv(fd.get(), buf, sizeof buf, MSG_DONTWAIT);
        if (n > 0) got.append(buf, static_cast<std::size_t>(n));
        return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
    });
    EXPECT_EQ(got.find("200 OK"), std::string::npos) << got;
    // Still serving.
    EXPECT_EQ(request(*ep, EVHTTP_REQ_GET, "/healthz").code, 200);
}

TEST_F(HttpEndpointTest, APortAlreadyTakenIsAClearError) {
    auto first = open();
    ASSERT_TRUE(first);
    std::string error;
    auto second = open(first->port(), &error);
    EXPECT_FALSE(second);
    EXPECT_EQ(error, "cannot listen on 127.0.0.1:" + std::to_string(first->port()) +
                             ": Address already in use; choose another http_listen in "
                             "[controller] (or \"off\")");
}

TEST(HttpEndpointRespond, HealthzFollowsTheLoopStamp) {
    EXPECT_TRUE(loop_alive(MonoTime{} + 10s, MonoTime{} + 6s, 5s));
    EXPECT_TRUE(loop_alive(MonoTime{} + 10s, MonoTime{} + 5s, 5s));
    EXPECT_FALSE(loop_alive(MonoTime{} + 10s, MonoTime{} + 4900ms, 5s));
    // With the fake clock the stamp timer runs as time passes: always alive.
    UniqueEventBase base(event_base_new());
    FakeClock clock;
    Metrics metrics;
    std::string error;
    HttpEndpoint::Options o;
    o.port = 0;
    auto ep = HttpEndpoint::open(
            base.get(), clock, metrics, [] { return Status{}; }, o, &error);
    ASSERT_TRUE(ep) << error;
    clock.advance(1h);
    EXPECT_EQ(ep->respond("GET", "/healthz").code, 200);
    EXPECT_EQ(ep->respond("HEAD", "/readyz").code, 200);  // no set: nothing to wait for
    EXPECT_EQ(ep->respond("GET", "/metrics").content_type,
              "text/plain; version=0.0.4; charset=utf-8");
}

TEST(HttpListenConfig, DefaultOffAndAddresses) {
    const Getenv getenv = [](const char* name) -> const char* {
        return std::string(name) == "VAULT_TOKEN" ? "(set)" : nullptr;
    };
    auto parse = [&](const std::string& extra) {
        return parse_config(
                "[vault]\naddress = http://127.0.0.1:8200\n[controller]\n"
                "plugin_socket = /tmp/pgbv-http-test.sock\n" +
                        extra + "[set.app]\nrole = app\n",
                "/tmp/c.ini", getenv);
    };
    ConfigResult r = parse("");
    ASSERT_TRUE(r.config) << r.error;
    ASSERT_TRUE(r.config->controller.http_listen);
    EXPECT_EQ(*r.config->controller.http_listen, (ListenAddress{"127.0.0.1", 9439}));
    r = parse("http_listen = off\n");
    ASSERT_TRUE(r.config) << r.error;
    EXPECT_FALSE(r.config->controller.http_listen);
    r = parse("http_listen = [::1]:0\n");
    ASSERT_TRUE(r.config) << r.error;
    EXPECT_EQ(*r.config->controller.http_listen, (ListenAddress{"::1", 0}));
    r = parse("http_listen = 127.0.0.1:8080x\n");
    EXPECT_FALSE(r.config);
    EXPECT_EQ(r.error,
              "/tmp/c.ini:5: http_listen '127.0.0.1:8080x' must be host:port, [IPv6]:port (port "
              "0-65535, 0: any free port) or off");

    EXPECT_EQ(parse_listen_address("0.0.0.0:9439"), (ListenAddress{"0.0.0.0", 9439}));
    EXPECT_EQ(parse_listen_address("metrics.local:80"), (ListenAddress{"metrics.local", 80}));
    EXPECT_EQ(parse_listen_address("[fe80::1]:65535"), (ListenAddress{"fe80::1", 65535}));
    for (const char* bad : {"", ":9439", "9439", "127.0.0.1:", "127.0.0.1:65536", "::1:9439",
                            "[::1]", "[::1]9439", "[]:1", "host:-1", "ho st:1", "[::1]:99999"}) {
        EXPECT_FALSE(parse_listen_address(bad)) << bad;
    }
}

}  // namespace
}  // namespace pgbv::ctl::testing
