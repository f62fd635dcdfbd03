// The controller's HTTP endpoint (http_listen): /metrics for Prometheus, /healthz and
// /readyz for Kubernetes probes, served by libevent's evhttp on the controller's own event
// loop.
//
//   /metrics  the text exposition format 0.0.4 (metrics.hpp), computed at scrape time.
//   /healthz  200 "ok" while the event loop turns: a timer stamps the time every
//             stamp_interval; a stamp older than stall_limit answers 503.
//   /readyz   200 "ok" when every set has credentials before their deadline and they
//             reached at least one plugin connection; else 503, one line per set that
//             is not ready.
// GET and HEAD only (405 with Allow otherwise), any other path 404.  Requests are small
// and bounded (headers, body, a timeout per connection); answering never blocks: status
// and counters are in memory.  Nothing served holds a secret.
//
// REQUIRES: `base`, `clock`, `metrics` and what `status` reads outlive the endpoint.
// Single-threaded (the event loop).

#ifndef PGBV_CONTROLLER_HTTP_ENDPOINT_HPP
#define PGBV_CONTROLLER_HTTP_ENDPOINT_HPP

#include <event2/event.h>
#include <event2/http.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "controller/clock.hpp"
#include "controller/metrics.hpp"
#include "controller/status.hpp"

namespace pgbv::ctl {

struct EvhttpFree {
    void operator()(evhttp* h) const noexcept { evhttp_free(h); }
};
using UniqueEvhttp = std::unique_ptr<evhttp, EvhttpFree>;

class HttpEndpoint {
public:
    struct Options {
        std::string host = "127.0.0.1";  // an IPv4 or IPv6 literal (no brackets) or a name
        std::uint16_t port = 9439;       // 0: any free port (see bound_address())
        Duration stamp_interval = std::chrono::seconds(1);
        Duration stall_limit = std::chrono::seconds(5);
        std::size_t max_header_bytes = 8192;
        std::size_t max_body_bytes = 4096;
        int timeout_seconds = 10;  // per connection: reading a request, writing an answer
    };
    struct Response {
        int code = 200;
        std::string content_type;
        std::string body;
    };
    using StatusSource = std::function<Status()>;

    // Binds and starts serving; nullptr and `*error` ("cannot listen on 127.0.0.1:9439:
    // Address already in use; ...") if it cannot.
    static std::unique_ptr<HttpEndpoint> open(event_base* base, Clock& clock,
                                              const Metrics& metrics, StatusSource status,
                                              Options options, std::string* error);

private:
    // Only open() makes one (a bound one).
    struct Key {
        explicit Key() = default;
    };

public:
    HttpEndpoint(Key, Clock& clock, const Metrics& metrics, StatusSource status, Options options);
    ~HttpEndpoint();
    HttpEndpoint(const HttpEndpoint&) = delete;
    HttpEndpoint& operator=(const HttpEndpoint&) = delete;

    // "127.0.0.1:9439", "[::1]:40123": the address actually bound.
    const std::string& bound_address() const { return bound_; }
    std::uint16_t port() const { return port_; }

    // The answer to `method` on `path` (no query string): the routing, without a socket.
    Response respond(std::string_view method, std::string_view path) const;

private:
    static void on_request(evhttp_request* request, void* self);
    void stamp();

    Clock& clock_;
    const Metrics& metrics_;
    StatusSource status_;
    Options options_;
    UniqueEvhttp http_;
    std::unique_ptr<Timer> stamp_timer_;
    MonoTime last_turn_{};
    std::string bound_;
    std::uint16_t port_ = 0;
};

// Whether the loop counts as alive at `now`, its timer having last run at `last_turn`.
bool loop_alive(MonoTime now, MonoTime last_turn, Duration stall_limit);

}  // namespace pgbv::ctl

#endif  // PGBV_CONTROLLER_HTTP_ENDPOINT_HPP
