// The controller's seam to HTTP: one asynchronous request at a time per call object.
//
// Production uses CurlTransport (libcurl's multi interface on the libevent loop); tests
// use a fake that answers like Vault.  The Vault client above it knows nothing of either.
//
// Contract of HttpTransport::start():
//   - never blocks and never calls `done` synchronously; `done` runs later, from the
//     event loop, exactly once, unless the returned HttpCall is destroyed first;
//   - destroying the HttpCall cancels the request: `done` will not run.  It is safe to
//     destroy it from inside its own `done`.
//   - a transport failure (no connection, timeout, TLS, body over the limit) comes back
//     as HttpResponse::error set and status 0; an HTTP answer of any status is a success
//     at this level.
//
// Secrets: the token header and the body are pgbv::Secret, and so is the response body
// (it may carry a password or a token); headers in `headers` must hold no secret.

#ifndef PGBV_CONTROLLER_HTTP_HPP
#define PGBV_CONTROLLER_HTTP_HPP

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "controller/clock.hpp"
#include "pgbv/secret.hpp"

namespace pgbv::ctl {

struct HttpRequest {
    std::string method;  // "GET", "POST", "PUT"
    std::string url;
    std::vector<std::string> headers;  // "Name: value"; no secrets here
    Secret secret_header;  // one header holding a secret ("X-Vault-Token: ..."), or empty
    Secret body;           // sent as is (JSON); empty: no body
    Duration timeout = std::chrono::seconds(10);  // whole request, connection included
};

struct HttpResponse {
    long status = 0;    // HTTP status; 0 when the request failed below HTTP
    Secret body;        // may hold a secret
    std::string error;  // non-empty iff the request failed below HTTP; never a secret

    bool failed() const { return !error.empty(); }
};

// A request in flight.  Destroying it cancels the request.
class HttpCall {
public:
    virtual ~HttpCall() = default;
};

class HttpTransport {
public:
    using Callback = std::function<void(HttpResponse)>;

    virtual ~HttpTransport() = default;

    // Starts `request`; see the contract above.
    virtual std::unique_ptr<HttpCall> start(HttpRequest request, Callback done) = 0;
};

}  // namespace pgbv::ctl

#endif  // PGBV_CONTROLLER_HTTP_HPP
