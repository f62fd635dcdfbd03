// libcurl's multi interface on the libevent loop.

#include "controller/curl_transport.hpp"

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <utility>
#include <vector>

namespace pgbv::ctl {
namespace {

// A growing byte buffer that wipes every block it gives up: response bodies hold tokens
// and passwords.
class WipedBuffer {
public:
    ~WipedBuffer() { release(); }
    std::size_t size() const { return size_; }
    std::string_view view() const { return {data_.get(), size_}; }
    void append(const char* p, std::size_t n) {
        if (size_ + n > capacity_) {
            const std::size_t capacity = std::max({std::size_t{4096}, 2 * capacity_, size_ + n});
            auto fresh = std::make_unique<char[]>(capacity);
            const std::size_t size = size_;
            if (size > 0) std::memcpy(fresh.get(), data_.get(), size);
            release();
            data_ = std::move(fresh);
            capacity_ = capacity;
            size_ = size;
        }
        std::memcpy(data_.get() + size_, p, n);
        size_ += n;
    }
    void release() {
        secure_wipe(data_.get(), capacity_);
        data_.reset();
        size_ = capacity_ = 0;
    }

private:
    std::unique_ptr<char[]> data_;
    std::size_t size_ = 0;
    std::size_t capacity_ = 0;
};

void free_headers(curl_slist* list) {
    // The token header is in here; libcurl's copy of it is freed unwiped otherwise.
    for (curl_slist* item = list; item != nullptr; item = item->next) {
        if (item->data != nullptr) secure_wipe(item->data, std::strlen(item->data));
    }
    curl_slist_free_all(list);
}

// Splits "https://host:port/rest" into host ("[::1]" kept bracketed), port (443 by
// default) and "/rest"; false if the URL is not of that shape.
bool split_url(const std::string& url, std::string* host, std::string* port, std::string* rest) {
    const std::string scheme = "https://";
    if (url.rfind(scheme, 0) != 0) return false;
    const auto slash = url.find('/', scheme.size());
    const std::string hostport = url.substr(
            scheme.size(), slash == std::string::npos ? std::string::npos : slash - scheme.size());
    *rest = slash == std::string::npos ? std::string() : url.substr(slash);
    std::size_t colon;
    if (!hostport.empty() && hostport[0] == '[') {
        const auto close = hostport.find(']');
        if (close == std::string::npos) return false;
        *host = hostport.substr(0, close + 1);
        colon = hostport.find(':', close);
    } else {
        colon = hostport.find(':');
        *host = hostport.substr(0, colon);
    }
    *port = colon == std::string::npos ? "443" : hostport.substr(colon + 1);
    return !host->empty() && !port->empty();
}

std::string seconds_text(Duration d) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.3g s", static_cast<double>(d.count()) / 1000.0);
    return buf;
}

}  // namespace

class CurlTransport::Call final : public HttpCall {
public:
    Call(CurlTransport* owner, HttpRequest request, Callback done)
        : owner_(owner), request_(std::move(request)), done_(std::move(done)) {
        errbuf_[0] = '\0';
    }

    ~Call() override {
        if (owner_ != nullptr) owner_->detach(this);
        if (easy_ != nullptr) curl_easy_cleanup(easy_);
        free_headers(headers_);
        curl_slist_free_all(connect_to_);
    }

    // Configures the easy handle; false with `error` set if libcurl refuses.
    bool setup(const Options& options, std::string* error) {
        easy_ = curl_easy_init();
        if (easy_ == nullptr) {
            *error = "cannot create a libcurl handle (out of memory?)";
            return false;
        }
        const bool https = request_.url.rfind("https://", 0) == 0;
        CURLcode rc = CURLE_OK;
        auto set = [&](CURLoption opt, auto value) {
            if (rc == CURLE_OK) rc = curl_easy_setopt(easy_, opt, value);
        };
        if (https && !options.tls_server_name.empty()) {
            std::string host;
            std::string port;
            std::string rest;
            if (!split_url(request_.url, &host, &port, &rest)) {
                *error = "cannot apply tls_server_name to " + request_.url;
                return false;
            }
            // The URL names the certificate's host; libcurl connects to the real one.
            url_ = "https://" + options.tls_server_name + ":" + port + rest;
            connect_to_ = curl_slist_append(
                    nullptr,
                    (options.tls_server_name + ":" + port + ":" + host + ":" + port).c_str());
            if (connect_to_ == nullptr) {
                *error = "cannot build the request (out of memory?)";
                return false;
            }
            set(CURLOPT_CONNECT_TO, connect_to_);
        } else {
            url_ = request_.url;
        }
        set(CURLOPT_URL, url_.c_str());
        set(CURLOPT_PRIVATE, static_cast<void*>(this));
        set(CURLOPT_ERRORBUFFER, errbuf_);
        set(CURLOPT_NOSIGNAL, 1L);
        set(CURLOPT_TIMEOUT_MS, static_cast<long>(request_.timeout.count()));
        set(CURLOPT_PROTOCOLS_STR, https ? "https" : "http");
        set(CURLOPT_REDIR_PROTOCOLS_STR, https ? "https" : "http");
        set(CURLOPT_FOLLOWLOCATION, 1L);
        set(CURLOPT_MAXREDIRS, 3L);
        set(CURLOPT_USERAGENT, options.user_agent.c_str());
        set(CURLOPT_WRITEFUNCTION, &Call::on_body);
        set(CURLOPT_WRITEDATA, static_cast<void*>(this));
        // Refuses at once a body whose announced length is over the limit; the write
        // callback catches the rest (chunked or lying bodies).
        set(CURLOPT_MAXFILESIZE_LARGE, static_cast<curl_off_t>(options.max_body));
        set(CURLOPT_SSLVERSION, static_cast<long>(CURL_SSLVERSION_TLSv1_2));
        set(CURLOPT_SSL_VERIFYPEER, options.skip_verify ? 0L : 1L);
        set(CURLOPT_SSL_VERIFYHOST, options.skip_verify ? 0L : 2L);
        if (!options.client_cert.empty()) {
            set(CURLOPT_SSLCERT, options.client_cert.c_str());
            set(CURLOPT_SSLCERTTYPE, "PEM");
        }
        if (!options.client_key.empty()) {
            set(CURLOPT_SSLKEY, options.client_key.c_str());
            set(CURLOPT_SSLKEYTYPE, "PEM");
        }
        if (!options.ca_file.empty()) set(CURLOPT_CAINFO, options.ca_file.c_str());
        if (!options.ca_path.empty()) set(CURLOPT_CAPATH, options.ca_path.c_str());
        if (request_.method == "GET") {
            set(CURLOPT_HTTPGET, 1L);
        } else {
            set(CURLOPT_POST, 1L);
            if (request_.method != "POST") set(CURLOPT_CUSTOMREQUEST, request_.method.c_str());
            // Not COPYPOSTFIELDS: libcurl reads our Secret directly and keeps no copy.
            set(CURLOPT_POSTFIELDSIZE, static_cast<long>(request_.body.size()));
            set(CURLOPT_POSTFIELDS, request_.body.data());
        }
        for (const auto& h : request_.headers)
            append_header(h.c_str());
        if (!request_.secret_header.empty()) {
            // libcurl wants a C string; this copy is wiped at once (libcurl's own copy is
            // wiped by free_headers()).
            std::string line(request_.secret_header.view());
            append_header(line.c_str());
            secure_wipe(line);
        }
        if (!request_.body.empty()) append_header("Content-Type: application/json");
        append_header("Expect:");  // no 100-continue round trip
        if (failed_header_) {
            *error = "cannot build the request headers (out of memory?)";
            return false;
        }
        set(CURLOPT_HTTPHEADER, headers_);
        if (rc != CURLE_OK) {
            *error = std::string("cannot configure the request: ") + curl_easy_strerror(rc);
            return false;
        }
        return true;
    }

    void complete(CURLcode rc) {
        HttpResponse response;
        if (rc == CURLE_OK) {
            curl_easy_getinfo(easy_, CURLINFO_RESPONSE_CODE, &response.status);
            response.body.assign(body_.view());
        } else {
            response.error = describe(rc);
        }
        body_.release();
        if (owner_ != nullptr) owner_->detach(this);
        // The callback may destroy this call: nothing of `this` is touched after it.
        Callback done = std::move(done_);
        done_ = nullptr;
        if (done) done(std::move(response));
    }

    void fail_later(event_base* base, std::string error) {
        setup_error_ = std::move(error);
        deferred_.reset(evtimer_new(base, &Call::on_deferred, this));
        if (deferred_) {
            struct timeval zero = {0, 0};
            evtimer_add(deferred_.get(), &zero);
        }
    }

    CURL* easy() const { return easy_; }
    void orphan() { owner_ = nullptr; }

private:
    static size_t on_body(char* p, size_t size, size_t n, void* self) {
        auto* call = static_cast<Call*>(self);
        const std::size_t bytes = size * n;
        const std::size_t limit = call->owner_ ? call->owner_->options_.max_body : 0;
        if (call->body_.size() + bytes > limit) {
            call->too_big_ = true;
            return 0;  // makes libcurl fail the transfer with CURLE_WRITE_ERROR
        }
        call->body_.append(p, bytes);
        return bytes;
    }

    static void on_deferred(evutil_socket_t, short, void* self) {
        auto* call = static_cast<Call*>(self);
        HttpResponse response;
        response.error = call->setup_error_;
        Callback done = std::move(call->done_);
        call->done_ = nullptr;
        if (done) done(std::move(response));
    }

    void append_header(const char* line) {
        if (failed_header_) return;
        curl_slist* grown = curl_slist_append(headers_, line);
        if (grown == nullptr) {
            failed_header_ = true;
            return;
        }
        headers_ = grown;
    }

    std::string describe(CURLcode rc) const {
        if (too_big_ || rc == CURLE_FILESIZE_EXCEEDED) {
            const std::size_t limit = owner_ ? owner_->options_.max_body : 0;
            return "the response body is larger than the limit of " + std::to_string(limit) +
                   " bytes";
        }
        if (rc == CURLE_OPERATION_TIMEDOUT) {
            return "no complete answer within " + seconds_text(request_.timeout) +
                   " (request_timeout)";
        }
        if (errbuf_[0] != '\0') return errbuf_;
        return curl_easy_strerror(rc);
    }

    CurlTransport* owner_;
    HttpRequest request_;
    Callback done_;
    CURL* easy_ = nullptr;
    curl_slist* headers_ = nullptr;
    curl_slist* connect_to_ = nullptr;
    std::string url_;
    bool failed_header_ = false;
    WipedBuffer body_;
    bool too_big_ = false;
    char errbuf_[CURL_ERROR_SIZE] = {};
    std::string setup_error_;
    UniqueEvent deferred_;
};

CurlTransport::CurlTransport(event_base* base, Options options)
    : base_(base), options_(std::move(options)) {
    multi_ = curl_multi_init();
    timer_.reset(evtimer_new(base_, &CurlTransport::on_timeout, this));
    if (multi_ == nullptr || !timer_) {
        if (multi_ != nullptr) curl_multi_cleanup(multi_);
        throw std::runtime_error("cannot create the libcurl multi handle or its timer");
    }
    curl_multi_setopt(multi_, CURLMOPT_SOCKETFUNCTION, &CurlTransport::on_socket);
    curl_multi_setopt(multi_, CURLMOPT_SOCKETDATA, this);
    curl_multi_setopt(multi_, CURLMOPT_TIMERFUNCTION, &CurlTransport::on_timer);
    curl_multi_setopt(multi_, CURLMOPT_TIMERDATA, this);
}

CurlTransport::~CurlTransport() {
    for (auto& [easy, call] : active_) {
        curl_multi_remove_handle(multi_, easy);
        call->orphan();
    }
    active_.clear();
    curl_multi_cleanup(multi_);
    sockets_.clear();
}

std::unique_ptr<HttpCall> CurlTransport::start(HttpRequest request, Callback done) {
    auto call = std::make_unique<Call>(this, std::move(request), std::move(done));
    std::string error;
    if (!call->setup(options_, &error)) {
        call->orphan();
        call->fail_later(base_, error);
        return call;
    }
    const CURLMcode rc = curl_multi_add_handle(multi_, call->easy());
    if (rc != CURLM_OK) {
        call->orphan();
        call->fail_later(base_,
                         std::string("cannot start the request: ") + curl_multi_strerror(rc));
        return call;
    }
    active_[call->easy()] = call.get();
    return call;
}

void CurlTransport::detach(Call* call) {
    if (active_.erase(call->easy()) > 0) curl_multi_remove_handle(multi_, call->easy());
    call->orphan();
}

int CurlTransport::on_socket(CURL*, curl_socket_t fd, int what, void* self, void*) {
    auto* t = static_cast<CurlTransport*>(self);
    if (what == CURL_POLL_REMOVE) {
        t->sockets_.erase(fd);
        return 0;
    }
    auto& socket = t->sockets_[fd];
    if (!socket) socket = std::make_unique<Socket>();
    short events = EV_PERSIST;
    if (what & CURL_POLL_IN) events |= EV_READ;
    if (what & CURL_POLL_OUT) events |= EV_WRITE;
    socket->event.reset(event_new(t->base_, fd, events, &CurlTransport::on_socket_ready, t));
    if (socket->event) event_add(socket->event.get(), nullptr);
    return socket->event ? 0 : -1;
}

int CurlTransport::on_timer(CURLM*, long timeout_ms, void* self) {
    auto* t = static_cast<CurlTransport*>(self);
    if (timeout_ms < 0) {
        evtimer_del(t->timer_.get());
        return 0;
    }
    // Even a 0 ms timeout goes through the loop: libcurl must not be re-entered from
    // inside its own callback.
    struct timeval tv {};
    tv.tv_sec = timeout_ms / 1000;
    tv.tv_usec = (timeout_ms % 1000) * 1000;
    evtimer_add(t->timer_.get(), &tv);
    return 0;
}

void CurlTransport::on_socket_ready(evutil_socket_t fd, short events, void* self) {
    int flags = 0;
    if (events & EV_READ) flags |= CURL_CSELECT_IN;
    if (events & EV_WRITE) flags |= CURL_CSELECT_OUT;
    static_cast<CurlTransport*>(self)->act(fd, flags);
}

void CurlTransport::on_timeout(evutil_socket_t, short, void* self) {
    static_cast<CurlTransport*>(self)->act(CURL_SOCKET_TIMEOUT, 0);
}

void CurlTransport::act(curl_socket_t fd, int flags) {
    int running = 0;
    curl_multi_socket_action(multi_, fd, flags, &running);
    finish_done();
}

void CurlTransport::finish_done() {
    // Collect first: a callback may cancel other calls, whose messages must then be
    // skipped, and may start new ones.
    std::vector<std::pair<CURL*, CURLcode>> done;
    int left = 0;
    while (CURLMsg* msg = curl_multi_info_read(multi_, &left)) {
        if (msg->msg == CURLMSG_DONE) done.emplace_back(msg->easy_handle, msg->data.result);
    }
    for (const auto& [easy, rc] : done) {
        auto it = active_.find(easy);
        if (it != active_.end()) it->second->complete(rc);
    }
}

}  // namespace pgbv::ctl
