// The controller's HTTP endpoint: /metrics, /healthz, /readyz on evhttp.

#include "controller/http_endpoint.hpp"

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/keyvalq_struct.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <exception>

#include "controller/log.hpp"

namespace pgbv::ctl {
namespace {

struct EvbufferFree {
    void operator()(evbuffer* b) const noexcept { evbuffer_free(b); }
};
using UniqueEvbuffer = std::unique_ptr<evbuffer, EvbufferFree>;

constexpr const char* kMetricsType = "text/plain; version=0.0.4; charset=utf-8";
constexpr const char* kTextType = "text/plain; charset=utf-8";

const char* method_name(evhttp_cmd_type cmd) {
    switch (cmd) {
        case EVHTTP_REQ_GET:
            return "GET";
        case EVHTTP_REQ_HEAD:
            return "HEAD";
        case EVHTTP_REQ_POST:
            return "POST";
        case EVHTTP_REQ_PUT:
            return "PUT";
        case EVHTTP_REQ_DELETE:
            return "DELETE";
        case EVHTTP_REQ_OPTIONS:
            return "OPTIONS";
        case EVHTTP_REQ_TRACE:
            return "TRACE";
        case EVHTTP_REQ_CONNECT:
            return "CONNECT";
        case EVHTTP_REQ_PATCH:
            return "PATCH";
    }
    return "?";
}

const char* reason_phrase(int code) {
    switch (code) {
        case 200:
            return "OK";
        case 404:
            return "Not Found";
        case 405:
            return "Method Not Allowed";
        case 503:
            return "Service Unavailable";
        default:
            return "Internal Server Error";
    }
}

// "127.0.0.1:9439" or "[::1]:9439" of a bound socket; "" if it cannot be told.
std::string socket_address(int fd, std::uint16_t* port) {
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return {};
    char host[INET6_ADDRSTRLEN] = {};
    if (ss.ss_family == AF_INET) {
        const auto* in = reinterpret_cast<const sockaddr_in*>(&ss);
        ::inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
        *port = ntohs(in->sin_port);
        return std::string(host) + ":" + std::to_string(*port);
    }
    if (ss.ss_family == AF_INET6) {
        const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&ss);
        ::inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
        *port = ntohs(in6->sin6_port);
        return "[" + std::string(host) + "]:" + std::to_string(*port);
    }
    return {};
}

std::string shown(const std::string& host, std::uint16_t port) {
    const bool v6 = host.find(':') != std::string::npos;
    return (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

}  // namespace

bool loop_alive(MonoTime now, MonoTime last_turn, Duration stall_limit) {
    return now - last_turn <= stall_limit;
}

HttpEndpoint::HttpEndpoint(Key, Clock& clock, const Metrics& metrics, StatusSource status,
                           Options options)
    : clock_(clock), metrics_(metrics), status_(std::move(status)), options_(std::move(options)) {}

HttpEndpoint::~HttpEndpoint() = default;

std::unique_ptr<HttpEndpoint> HttpEndpoint::open(event_base* base, Clock& clock,
                                                 const Metrics& metrics, StatusSource status,
                                                 Options options, std::string* error) {
    auto ep = std::make_unique<HttpEndpoint>(Key(), clock, metrics, std::move(status),
                                             std::move(options));
    const Options& o = ep->options_;
    ep->http_.reset(evhttp_new(base));
    if (!ep->http_) {
        *error = "cannot create the HTTP server (out of memory?)";
        return nullptr;
    }
    evhttp* http = ep->http_.get();
    evhttp_set_max_headers_size(http, static_cast<ev_ssize_t>(o.max_header_bytes));
    evhttp_set_max_body_size(http, static_cast<ev_ssize_t>(o.max_body_bytes));
    evhttp_set_timeout(http, o.timeout_seconds);
    // Every method reaches on_request, which answers 405 itself (evhttp would say 501).
    evhttp_set_allowed_methods(http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD | EVHTTP_REQ_POST |
                                             EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
                                             EVHTTP_REQ_OPTIONS | EVHTTP_REQ_TRACE |
                                             EVHTTP_REQ_CONNECT | EVHTTP_REQ_PATCH);
    evhttp_set_gencb(http, &HttpEndpoint::on_request, ep.get());
    errno = 0;
    evhttp_bound_socket* bound = evhttp_bind_socket_with_handle(http, o.host.c_str(), o.port);
    if (bound == nullptr) {
        const int e = errno;
        *error = "cannot listen on " + shown(o.host, o.port) + ": " +
                 (e != 0 ? std::strerror(e) : "address not usable") +
                 "; choose another http_listen in [controller] (or \"off\")";
        return nullptr;
    }
    ep->bound_ = socket_address(evhttp_bound_socket_get_fd(bound), &ep->port_);
    if (ep->bound_.empty()) {
        ep->bound_ = shown(o.host, o.port);
        ep->port_ = o.port;
    }
    ep->last_turn_ = clock.now();
    HttpEndpoint* self = ep.get();
    ep->stamp_timer_ = clock.new_timer([self] { self->stamp(); });
    ep->stamp_timer_->arm_at(clock.now() + o.stamp_interval);
    return ep;
}

void HttpEndpoint::stamp() {
    last_turn_ = clock_.now();
    stamp_timer_->arm_at(last_turn_ + options_.stamp_interval);
}

HttpEndpoint::Response HttpEndpoint::respond(std::string_view method, std::string_view path) const {
    const bool known = path == "/metrics" || path == "/healthz" || path == "/readyz";
    if (!known) {
        return {404, kTextType,
                "no such path: " + std::string(path) + " (try /metrics, /healthz or /readyz)\n"};
    }
    if (method != "GET" && method != "HEAD") {
        return {405, kTextType, "method " + std::string(method) + " not allowed: GET or HEAD\n"};
    }
    if (path == "/healthz") {
        const MonoTime now = clock_.now();
        if (loop_alive(now, last_turn_, options_.stall_limit)) return {200, kTextType, "ok\n"};
        const auto ms = std::chrono::duration_cast<Duration>(now - last_turn_).count();
        return {503, kTextType,
                "event loop stalled: its timer last ran " + std::to_string(ms / 1000) + "." +
                        std::to_string((ms % 1000) / 100) + "s ago\n"};
    }
    const Status status = status_();
    if (path == "/metrics") return {200, kMetricsType, metrics_.render(status)};
    const Readiness r = readiness(status);
    if (r.ready) return {200, kTextType, "ok\n"};
    std::string body;
    for (const auto& line : r.reasons)
        body += line + "\n";
    return {503, kTextType, body};
}

void HttpEndpoint::on_request(evhttp_request* request, void* arg) {
    auto* self = static_cast<HttpEndpoint*>(arg);
    // Nothing may throw into libevent.
    try {
        const evhttp_cmd_type cmd = evhttp_request_get_command(request);
        const evhttp_uri* uri = evhttp_request_get_evhttp_uri(request);
        const char* path = uri != nullptr ? evhttp_uri_get_path(uri) : nullptr;
        const Response r = self->respond(method_name(cmd), path != nullptr && *path ? path : "/");
        evkeyvalq* headers = evhttp_request_get_output_headers(request);
        evhttp_add_header(headers, "Content-Type", r.content_type.c_str());
        evhttp_add_header(headers, "Cache-Control", "no-store");
        if (r.code == 405) evhttp_add_header(headers, "Allow", "GET, HEAD");
        // evhttp drops a HEAD answer's body and would leave its length out.
        if (cmd == EVHTTP_REQ_HEAD) {
            evhttp_add_header(headers, "Content-Length", std::to_string(r.body.size()).c_str());
        }
        UniqueEvbuffer body(evbuffer_new());
        if (!body || evbuffer_add(body.get(), r.body.data(), r.body.size()) != 0) {
            evhttp_send_error(request, 500, "out of memory");
            return;
        }
        evhttp_send_reply(request, r.code, reason_phrase(r.code), body.get());
    } catch (const std::exception& e) {
        log::warning("http: answering a request failed: %s", e.what());
        evhttp_send_error(request, 500, nullptr);
    }
}

}  // namespace pgbv::ctl
