// The production HttpTransport: libcurl's multi interface driven by the libevent loop.
//
// libcurl tells us which sockets to watch (CURLMOPT_SOCKETFUNCTION) and when its next
// timeout is due (CURLMOPT_TIMERFUNCTION); libevent tells libcurl when a socket is ready
// or the timeout has passed.  No call blocks, no thread is started by this class, nothing
// polls.  Connections to Vault are kept alive and reused between requests.
//
// Every request: a whole-request timeout (HttpRequest::timeout), a cap on the response
// body (Options::max_body; a larger body fails the request), TLS 1.2 at least, verified
// against the system's or the configured CA (ca_file/ca_path) unless skip_verify, an
// optional client certificate, redirects (Vault standbys answer 307; libcurl keeps the
// method and the body for a 307) followed at most three times and only to the same
// scheme.
//
// tls_server_name: the certificate is checked against that name, which is also the SNI and
// Host, while the connection goes to the URL's real host (CURLOPT_CONNECT_TO), e.g. Vault
// addressed by IP with a certificate for vault.example.com.
//
// REQUIRES: curl_global_init (see wiping_memory.hpp) before construction; `base`
// outlives the transport; every HttpCall is destroyed before the transport (calls left
// over are cancelled by the destructor, their callbacks never run).

#ifndef PGBV_CONTROLLER_CURL_TRANSPORT_HPP
#define PGBV_CONTROLLER_CURL_TRANSPORT_HPP

#include <curl/curl.h>
#include <event2/event.h>

#include <cstddef>
#include <memory>
#include <string>
#include <unordered_map>

#include "controller/event_handles.hpp"
#include "controller/http.hpp"

namespace pgbv::ctl {

class CurlTransport final : public HttpTransport {
public:
    struct Options {
        std::string ca_file;          // PEM bundle to verify Vault's certificate; empty: system's
        std::string ca_path;          // directory of hashed CA certificates; empty: none
        std::string client_cert;      // PEM client certificate (chain); empty: none
        std::string client_key;       // PEM private key of client_cert (unencrypted)
        std::string tls_server_name;  // empty: the URL's host
        bool skip_verify = false;     // no peer or host verification: tests only
        std::size_t max_body = 1 << 20;
        std::string user_agent = "pgbv-controller";
    };

    // Throws std::runtime_error if libcurl or libevent cannot allocate their handles.
    CurlTransport(event_base* base, Options options);
    ~CurlTransport() override;
    CurlTransport(const CurlTransport&) = delete;
    CurlTransport& operator=(const CurlTransport&) = delete;

    std::unique_ptr<HttpCall> start(HttpRequest request, Callback done) override;

    // Requests in flight.
    std::size_t active() const { return active_.size(); }

private:
    class Call;
    struct Socket {
        UniqueEvent event;
    };

    static int on_socket(CURL* easy, curl_socket_t fd, int what, void* self, void* socketp);
    static int on_timer(CURLM* multi, long timeout_ms, void* self);
    static void on_socket_ready(evutil_socket_t fd, short events, void* self);
    static void on_timeout(evutil_socket_t fd, short events, void* self);

    void act(curl_socket_t fd, int flags);
    void finish_done();
    void detach(Call* call);

    event_base* base_;
    Options options_;
    CURLM* multi_ = nullptr;
    UniqueEvent timer_;
    std::unordered_map<curl_socket_t, std::unique_ptr<Socket>> sockets_;
    std::unordered_map<CURL*, Call*> active_;
};

}  // namespace pgbv::ctl

#endif  // PGBV_CONTROLLER_CURL_TRANSPORT_HPP
