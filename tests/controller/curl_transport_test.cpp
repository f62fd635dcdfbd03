// libcurl's multi interface on libevent, against libevent's own HTTP server on the same
// loop: headers, methods, bodies, the body cap, timeouts, refused connections,
// cancellation, redirects, TLS failures, many requests at once.

#include "controller/curl_transport.hpp"

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <chrono>
#include <functional>
#include <string>
#include <thread>

#include "controller/wiping_memory.hpp"

namespace pgbv::ctl {
namespace {

using namespace std::chrono_literals;

struct EvhttpFree {
    void operator()(evhttp* h) const { evhttp_free(h); }
};

class CurlTransportTest : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        std::string error;
        ASSERT_TRUE(init_curl_plain(&error)) << error;
    }

    void SetUp() override {
        base_.reset(event_base_new());
        http_.reset(evhttp_new(base_.get()));
        evhttp_set_allowed_methods(http_.get(), EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_PUT);
        evhttp_bound_socket* bound = evhttp_bind_socket_with_handle(http_.get(), "127.0.0.1", 0);
        ASSERT_NE(bound, nullptr);
        sockaddr_in addr{};
        socklen_t len = sizeof addr;
        getsockname(evhttp_bound_socket_get_fd(bound), reinterpret_cast<sockaddr*>(&addr), &len);
        port_ = ntohs(addr.sin_port);
        evhttp_set_gencb(http_.get(), &CurlTransportTest::serve, this);
        transport_ = std::make_unique<CurlTransport>(base_.get(), CurlTransport::Options{});
    }

    void TearDown() override {
        transport_.reset();
        http_.reset();
    }

    std::string url(const std::string& path) const {
        return "http://127.0.0.1:" + std::to_string(port_) + path;
    }

    static void serve(evhttp_request* req, void* self) {
        auto* t = static_cast<CurlTransportTest*>(self);
        const std::string uri = evhttp_request_get_uri(req);
        ++t->served_;
        if (uri == "/slow") return;  // never answered
        evbuffer* out = evbuffer_new();
        if (uri == "/huge") {
            const std::string chunk(64 * 1024, 'x');
            for (int i = 0; i < 32; ++i)
                evbuffer_add(out, chunk.data(), chunk.size());
            evhttp_send_reply(req, 200, "OK", out);
        } else if (uri == "/redirect") {
            evhttp_add_header(evhttp_request_get_output_headers(req), "Location", "/echo");
            evhttp_send_reply(req, 307, "Temporary Redirect", out);
        } else {
            // Echo what arrived, for the test to check.
            std::string text;
            const int cmd = evhttp_request_get_command(req);
            text += cmd == EVHTTP_REQ_GET ? "GET" : cmd == EVHTTP_REQ_PUT ? "PUT" : "POST";
            text += " " + uri + "\n";
            evkeyvalq* headers = evhttp_request_get_input_headers(req);
            for (evkeyval* h = headers->tqh_first; h; h = h->next.tqe_next) {
                text += std::string(h->key) + ": " + h->value + "\n";
            }
            evbuffer* in = evhttp_request_get_input_buffer(req);
            text += "body=" + std::string(reinterpret_cast<char*>(evbuffer_pullup(in, -1)),
                                          evbuffer_get_length(in));
            evbuffer_add(out, text.data(), text.size());
            evhttp_send_reply(req, uri == "/teapot" ? 418 : 200, "OK", out);
        }
        evbuffer_free(out);
    }

    bool pump_until(const std::function<bool()>& done) {
        const auto end = std::chrono::steady_clock::now() + 10s;
        while (!done() && std::chrono::steady_clock::now() < end) {
            event_base_loop(base_.get(), EVLOOP_ONCE | EVLOOP_NONBLOCK);
            std::this_thread::sleep_for(std::chrono::microseconds(200));
        }
        return done();
    }

    // Runs one request to completion.
    HttpResponse fetch(HttpRequest request) {
        std::optional<HttpResponse> got;
        auto call =
                transport_->start(std::move(request), [&](HttpResponse r) { got = std::move(r); });
        EXPECT_FALSE(got.has_value()) << "the callback ran synchronously";
        EXPECT_TRUE(pump_until([&] { return got.has_value(); }));
        return got ? std::move(*got) : HttpResponse{};
    }

    HttpRequest get(const std::string& path) {
        HttpRequest r;
        r.method = "GET";
        r.url = url(path);
        r.timeout = 5s;
        return r;
    }

    UniqueEventBase base_;
    std::unique_ptr<evhttp, EvhttpFree> http_;
    int port_ = 0;
    int served_ = 0;
    std::unique_ptr<CurlTransport> transport_;
};

TEST_F(CurlTransportTest, SendsHeadersAndTheSecretHeader) {
    HttpRequest r = get("/echo");
    r.headers = {"X-Vault-Request: true", "X-Vault-Namespace: team-a"};
    r.secret_header.assign("X-Vault-Token: hvs.secret");
    HttpResponse resp = fetch(std::move(r));
    ASSERT_FALSE(resp.failed()) << resp.error;
    EXPECT_EQ(resp.status, 200);
    const std::string body(resp.body.view());
    EXPECT_NE(body.find("GET /echo"), std::string::npos) << body;
    EXPECT_NE(body.find("X-Vault-Request: true"), std::string::npos) << body;
    EXPECT_NE(body.find("X-Vault-Namespace: team-a"), std::string::npos);
    EXPECT_NE(body.find("X-Vault-Token: hvs.secret"), std::string::npos);
}

TEST_F(CurlTransportTest, PutAndPostCarryTheBody) {
    for (const char* method : {"PUT", "POST"}) {
        HttpRequest r = get("/echo");
        r.method = method;
        r.body.assign(R"({"lease_id":"x","increment":60})");
        HttpResponse resp = fetch(std::move(r));
        ASSERT_FALSE(resp.failed()) << resp.error;
        const std::string body(resp.body.view());
        EXPECT_EQ(body.rfind(std::string(method) + " /echo", 0), 0u) << body;
        EXPECT_NE(body.find("Content-Type: application/json"), std::string::npos);
        EXPECT_NE(body.find(R"(body={"lease_id":"x","increment":60})"), std::string::npos);
    }
}

TEST_F(CurlTransportTest, ABodyJustUnderTheLimitArrivesWhole) {
    // /huge is 2 MiB; raise the limit so that it fits, and check every byte arrived.
    CurlTransport::Options options;
    options.max_body = 4 << 20;
    transport_ = std::make_unique<CurlTransport>(base_.get(), options);
    HttpResponse resp = fetch(get("/huge"));
    ASSERT_FALSE(resp.failed()) << resp.error;
    EXPECT_EQ(resp.body.size(), 2u << 20);
    EXPECT_EQ(resp.body.view().find_first_not_of('x'), std::string_view::npos);
}

TEST_F(CurlTransportTest, AnyStatusIsAnAnswer) {
    HttpResponse resp = fetch(get("/teapot"));
    EXPECT_FALSE(resp.failed());
    EXPECT_EQ(resp.status, 418);
}

TEST_F(CurlTransportTest, BodyOverTheLimitFails) {
    HttpResponse resp = fetch(get("/huge"));
    ASSERT_TRUE(resp.failed()) << resp.status << " " << resp.body.size();
    EXPECT_EQ(resp.error, "the response body is larger than the limit of 1048576 bytes");
    EXPECT_EQ(resp.status, 0);
    EXPECT_TRUE(resp.body.empty());
}

TEST_F(CurlTransportTest, TimeoutFails) {
    HttpRequest r = get("/slow");
    r.timeout = 300ms;
    HttpResponse resp = fetch(std::move(r));
    ASSERT_TRUE(resp.failed());
    EXPECT_EQ(resp.error, "no complete answer within 0.3 s (request_timeout)");
}

TEST_F(CurlTransportTest, RefusedConnectionFails) {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    socklen_t len = sizeof addr;
    getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
    ::close(fd);  // nobody listens on that port now
    HttpRequest r = get("/");
    r.url = "http://127.0.0.1:" + std::to_string(ntohs(addr.sin_port)) + "/v1/x";
    HttpResponse resp = fetch(std::move(r));
    ASSERT_TRUE(resp.failed());
    EXPECT_NE(resp.error.find("onnect"), std::string::npos) << resp.error;
}

TEST_F(CurlTransportTest, TlsToAPlainServerFailsCleanly) {
    HttpRequest r = get("/echo");
    r.url = "https://127.0.0.1:" + std::to_string(port_) + "/echo";
    r.timeout = 3s;
    HttpResponse resp = fetch(std::move(r));
    ASSERT_TRUE(resp.failed());
    EXPECT_FALSE(resp.error.empty());
}

TEST_F(CurlTransportTest, FollowsAStandbyRedirect) {
    HttpResponse resp = fetch(get("/redirect"));
    ASSERT_FALSE(resp.failed()) << resp.error;
    EXPECT_EQ(resp.status, 200);
    EXPECT_NE(std::string(resp.body.view()).find("GET /echo"), std::string::npos);
}

TEST_F(CurlTransportTest, CancelledCallNeverCallsBack) {
    bool called = false;
    auto call = transport_->start(get("/slow"), [&](HttpResponse) { called = true; });
    pump_until([&] { return served_ == 1; });
    EXPECT_EQ(transport_->active(), 1u);
    call.reset();
    EXPECT_EQ(transport_->active(), 0u);
    const auto until = std::chrono::steady_clock::now() + 100ms;
    pump_until([&] { return std::chrono::steady_clock::now() > until; });
    EXPECT_FALSE(called);
}

TEST_F(CurlTransportTest, ManyAtOnceAndChainedFromCallbacks) {
    std::vector<std::unique_ptr<HttpCall>> calls(20);
    int done = 0;
    int chained = 0;
    std::unique_ptr<HttpCall> next;
    for (std::size_t i = 0; i < calls.size(); ++i) {
        calls[i] = transport_->start(get("/echo"), [&, i](HttpResponse r) {
            EXPECT_EQ(r.status, 200);
            ++done;
            calls[i].reset();  // destroying one's own call inside its callback is allowed
            if (i == 0) {
                next = transport_->start(get("/echo"), [&](HttpResponse r2) {
                    EXPECT_EQ(r2.status, 200);
                    ++chained;
                });
            }
        });
    }
    EXPECT_TRUE(pump_until([&] { return done == 20 && chained == 1; }));
    next.reset();
    EXPECT_EQ(transport_->active(), 0u);
}

TEST_F(CurlTransportTest, DestroyingTheTransportCancelsEverything) {
    bool called = false;
    auto call = transport_->start(get("/slow"), [&](HttpResponse) { called = true; });
    pump_until([&] { return served_ == 1; });
    transport_.reset();
    call.reset();
    EXPECT_FALSE(called);
}

}  // namespace
}  // namespace pgbv::ctl
