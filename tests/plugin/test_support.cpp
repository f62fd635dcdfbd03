// Test helpers for the plugin: a libevent loop driver, a log recorder, a temp directory,
// sample messages, and a fake pgbv-controller listening on a real Unix socket.
#include "test_support.hpp"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <stdexcept>

namespace pgbv::test {

EventLoop::EventLoop() : base_(event_base_new()) {
    if (base_ == nullptr) throw std::runtime_error("event_base_new failed");
    // A periodic tick makes EVLOOP_ONCE return regularly, so conditions are re-checked.
    tick_ = event_new(
            base_, -1, EV_PERSIST, [](evutil_socket_t, short, void*) {}, nullptr);
    const timeval tv{0, 2000};
    event_add(tick_, &tv);
}

EventLoop::~EventLoop() {
    event_free(tick_);
    event_base_free(base_);
}

bool EventLoop::run_until(const std::function<bool()>& done, std::chrono::milliseconds deadline) {
    const auto end = std::chrono::steady_clock::now() + deadline;
    while (!done()) {
        if (std::chrono::steady_clock::now() > end) return false;
        event_base_loop(base_, EVLOOP_ONCE);
    }
    return true;
}

void EventLoop::run_for(std::chrono::milliseconds duration) {
    const auto end = std::chrono::steady_clock::now() + duration;
    while (std::chrono::steady_clock::now() < end)
        event_base_loop(base_, EVLOOP_ONCE);
}

std::size_t LogRecorder::count(const std::string& needle, int level) const {
    std::size_t n = 0;
    for (const auto& line : lines) {
        if ((level == 0 || line.level == level) && line.message.find(needle) != std::string::npos) {
            ++n;
        }
    }
    return n;
}

std::string LogRecorder::all() const {
    std::string out;
    for (const auto& line : lines) {
        out += "[" + std::to_string(line.level) + "] " + line.message + "\n";
    }
    return out;
}

TempDir::TempDir() {
    const char* base = getenv("TMPDIR");
    std::string templ = std::string(base != nullptr && *base != '\0' ? base : "/tmp") +
                        "/pgbv-plugin-test-XXXXXX";
    if (mkdtemp(templ.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = templ;
}

TempDir::~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
}

wire::Credentials credentials(std::string set, std::uint64_t generation, std::string username,
                              std::string password, std::int64_t expires_at) {
    wire::Credentials c;
    c.set = std::move(set);
    c.generation = generation;
    c.username = std::move(username);
    c.password = Secret::take(std::move(password));
    c.expires_at = expires_at;
    return c;
}

wire::Credentials clone(const wire::Credentials& c) {
    wire::Credentials copy;
    copy.set = c.set;
    copy.generation = c.generation;
    copy.username = c.username;
    copy.password = c.password.clone();
    copy.expires_at = c.expires_at;
    copy.flags = c.flags;
    return copy;
}

FakeController::FakeController(struct event_base* base, std::string path)
    : base_(base), path_(std::move(path)) {}

FakeController::~FakeController() {
    drop_client();
    stop_listening();
}

void FakeController::listen() {
    if (listen_fd_ >= 0) return;
    listen_fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path_.c_str(), sizeof(addr.sun_path) - 1);
    ::unlink(path_.c_str());
    if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
        ::listen(listen_fd_, 8) != 0) {
        throw std::runtime_error("fake controller cannot listen on " + path_ + ": " +
                                 std::strerror(errno));
    }
    listen_event_ = event_new(base_, listen_fd_, EV_READ | EV_PERSIST, &on_accept, this);
    event_add(listen_event_, nullptr);
}

void FakeController::stop_listening() {
    if (listen_event_ != nullptr) event_free(listen_event_);
    listen_event_ = nullptr;
    if (listen_fd_ >= 0) ::close(listen_fd_);
    listen_fd_ = -1;
    ::unlink(path_.c_str());
}

void FakeController::drop_client() {
    if (client_event_ != nullptr) event_free(client_event_);
    client_event_ = nullptr;
    if (client_fd_ >= 0) ::close(client_fd_);
    client_fd_ = -1;
    decoder_.reset();
}

void FakeController::send(const wire::Message& message) {
    send_raw(wire::encode(message));
}

void FakeController::send_raw(const std::vector<std::uint8_t>& bytes) {
    if (client_fd_ < 0) throw std::runtime_error("fake controller has no client");
    std::size_t off = 0;
    while (off < bytes.size()) {
        const ssize_t n = ::send(client_fd_, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) continue;  // tiny frames
        if (n < 0) return;  // the plugin closed; the test checks that separately
        off += static_cast<std::size_t>(n);
    }
}

void FakeController::on_accept(evutil_socket_t, short, void* arg) {
    auto* self = static_cast<FakeController*>(arg);
    const int fd = ::accept4(self->listen_fd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0) return;
    self->drop_client();  // one client at a time, like a plugin's controller
    self->client_fd_ = fd;
    self->decoder_ = std::make_unique<wire::FrameDecoder>();
    self->client_event_ = event_new(self->base_, fd, EV_READ | EV_PERSIST, &on_read, self);
    event_add(self->client_event_, nullptr);
    ++self->accepted;
}

void FakeController::on_read(evutil_socket_t fd, short, void* arg) {
    auto* self = static_cast<FakeController*>(arg);
    std::uint8_t buf[4096];
    const ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
    if (n <= 0) {
        self->drop_client();
        return;
    }
    self->decoder_->feed(buf, static_cast<std::size_t>(n));
    for (;;) {
        if (!self->decoder_) return;
        wire::Decoded d = self->decoder_->next();
        if (d.need_more()) return;
        if (d.failed()) {
            self->decode_error = d.error;
            self->drop_client();
            return;
        }
        self->handle(std::move(*d.message));
    }
}

void FakeController::handle(wire::Message message) {
    const bool is_hello = std::holds_alternative<wire::Hello>(message);
    received.push_back(std::move(message));
    if (!is_hello) return;
    ++hellos;
    if (!auto_handshake) return;
    send(wire::Hello{hello_version, "fake-controller"});
    if (hello_version != wire::kVersion) return;
    for (const auto& c : snapshot)
        send(clone(c));
    send(wire::SnapshotDone{static_cast<std::uint32_t>(snapshot.size()) +
                            snapshot_done_count_bias});
}

}  // namespace pgbv::test
