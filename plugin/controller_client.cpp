// The plugin's connection to pgbv-controller: connect, handshake, receive credentials,
// send reports, reconnect.
#include "plugin/controller_client.hpp"

#include <errno.h>
#include <event2/event.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <cstring>
#include <deque>
#include <stdexcept>
#include <utility>

#ifndef PGBV_PLUGIN_VERSION
#define PGBV_PLUGIN_VERSION "unknown"
#endif

namespace pgbv::plugin {
namespace {

// How often an unchanged connect failure is logged again.
constexpr std::chrono::seconds kRepeatLogInterval{60};
// Bytes read per recv(), and recv() calls per read event, so that one busy connection
// cannot hold PgBouncer's loop for long.
constexpr std::size_t kReadChunk = 16384;
constexpr int kReadsPerEvent = 4;

std::string errno_text(int err) {
    char buf[256];
    // GNU strerror_r: returns a pointer that may or may not be `buf`.
    return strerror_r(err, buf, sizeof buf);
}

std::string connect_hint(int err) {
    switch (err) {
        case ENOENT:
        case ECONNREFUSED:
            return " (is pgbv-controller running?)";
        case EACCES:
        case EPERM:
            return " (check that PgBouncer's user may open the socket)";
        case EAGAIN:
            return " (pgbv-controller is not accepting connections fast enough)";
        default:
            return "";
    }
}

const char* error_code_name(std::uint16_t code) {
    switch (code) {
        case PGBV_ERR_VERSION:
            return "version not supported";
        case PGBV_ERR_PROTOCOL:
            return "protocol error";
        case PGBV_ERR_NOT_PERMITTED:
            return "not permitted";
        case PGBV_ERR_TOO_MANY_CLIENTS:
            return "too many clients";
        case PGBV_ERR_SHUTTING_DOWN:
            return "shutting down";
        default:
            return "unknown error";
    }
}

timeval to_timeval(std::chrono::milliseconds ms) {
    timeval tv{};
    tv.tv_sec = static_cast<time_t>(ms.count() / 1000);
    tv.tv_usec = static_cast<suseconds_t>((ms.count() % 1000) * 1000);
    return tv;
}

}  // namespace

// One connection attempt and, once connected, its conversation.
struct ControllerClient::Connection {
    struct OutFrame {
        std::vector<std::uint8_t> bytes;
        std::size_t written = 0;
        std::optional<wire::Message> report;  // set for DRAINED/LOGIN_FAILED
    };

    UniqueFd fd;
    EventPtr connect_event;  // EV_WRITE once while connect() is in progress
    EventPtr read_event;
    EventPtr write_event;
    EventPtr handshake_timer;
    bool write_armed = false;
    bool drop_logged = false;
    wire::FrameDecoder decoder;
    std::deque<OutFrame> out;
    std::uint32_t snapshot_count = 0;
};

ControllerClient::ControllerClient(struct event_base* base, Options options, const Logger& log,
                                   ClientHandler& handler, std::uint64_t seed)
    : base_(base),
      options_(std::move(options)),
      log_(log),
      handler_(handler),
      backoff_(options_.reconnect_min, options_.reconnect_max, seed),
      pending_(options_.max_pending_reports == 0 ? 1 : options_.max_pending_reports) {}

ControllerClient::~ControllerClient() {
    conn_.reset();
    timer_.reset();
}

template <typename F>
void ControllerClient::guarded(const char* doing, F&& f) noexcept {
    // Nothing may unwind through libevent's C frames.
    std::string what;
    try {
        f();
        return;
    } catch (const std::exception& e) {
        what = e.what();
    } catch (...) {
        what = "unknown exception";
    }
    try {
        const std::string message =
                std::string("internal error in libpgbv.so while ") + doing + ": " + what;
        if (conn_) {
            close_connection(CloseKind::kFailed, PGBV_LOG_ERROR,
                             message + "; closing the connection to pgbv-controller at " +
                                     options_.socket_path);
        } else {
            log_.error(message);
            if (state_ != State::kStopped) {
                state_ = State::kWaiting;
                arm_timer(backoff_.next());
            }
        }
    } catch (...) {
        log_.error("internal error in libpgbv.so; it may stop receiving credentials");
    }
}

void ControllerClient::on_timer_cb(evutil_socket_t, short, void* arg) {
    auto* self = static_cast<ControllerClient*>(arg);
    self->guarded("connecting to pgbv-controller", [self] { self->attempt_connect(); });
}

void ControllerClient::on_connect_cb(evutil_socket_t, short, void* arg) {
    auto* self = static_cast<ControllerClient*>(arg);
    self->guarded("connecting to pgbv-controller", [self] { self->connect_ready(); });
}

void ControllerClient::on_read_cb(evutil_socket_t, short, void* arg) {
    auto* self = static_cast<ControllerClient*>(arg);
    self->guarded("reading from pgbv-controller", [self] { self->readable(); });
}

void ControllerClient::on_write_cb(evutil_socket_t, short, void* arg) {
    auto* self = static_cast<ControllerClient*>(arg);
    self->guarded("writing to pgbv-controller", [self] { self->writable(); });
}

void ControllerClient::on_handshake_timeout_cb(evutil_socket_t, short, void* arg) {
    auto* self = static_cast<ControllerClient*>(arg);
    self->guarded("waiting for pgbv-controller", [self] {
        self->close_connection(CloseKind::kFailed, PGBV_LOG_WARNING,
                               "pgbv-controller at " + self->options_.socket_path +
                                       " did not complete the handshake (HELLO and snapshot) "
                                       "within " +
                                       std::to_string(self->options_.handshake_timeout.count()) +
                                       " ms; closing the connection");
    });
}

void ControllerClient::start() {
    if (state_ != State::kStopped || timer_) return;
    timer_.reset(evtimer_new(base_, &on_timer_cb, this));
    if (!timer_) throw std::runtime_error("cannot create a libevent timer");
    state_ = State::kWaiting;
    arm_timer(std::chrono::milliseconds(0));
}

void ControllerClient::arm_timer(std::chrono::milliseconds delay) {
    if (!timer_) return;
    const timeval tv = to_timeval(delay);
    if (evtimer_add(timer_.get(), &tv) != 0) {
        log_.error(
                "cannot schedule a reconnect to pgbv-controller (libevent evtimer_add failed); "
                "the plugin keeps serving its last credentials but will not reconnect");
    }
}

void ControllerClient::attempt_connect() {
    if (state_ != State::kWaiting) return;
    auto conn = std::make_unique<Connection>();
    conn->fd.reset(::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!conn->fd.valid()) {
        connect_failed(errno);
        return;
    }
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, options_.socket_path.data(),
                std::min(options_.socket_path.size(), sizeof(addr.sun_path) - 1));
    if (::connect(conn->fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) == 0) {
        conn_ = std::move(conn);
        connected();
        return;
    }
    const int err = errno;
    if (err != EINPROGRESS) {
        connect_failed(err);
        return;
    }
    conn->connect_event.reset(event_new(base_, conn->fd.get(), EV_WRITE, &on_connect_cb, this));
    if (!conn->connect_event || event_add(conn->connect_event.get(), nullptr) != 0) {
        throw std::runtime_error("cannot register a libevent event for the connection");
    }
    conn_ = std::move(conn);
    state_ = State::kConnecting;
}

void ControllerClient::connect_ready() {
    if (state_ != State::kConnecting || !conn_) return;
    int err = 0;
    socklen_t len = sizeof(err);
    if (::getsockopt(conn_->fd.get(), SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
    conn_->connect_event.reset();
    if (err != 0) {
        connect_failed(err);
        return;
    }
    connected();
}

void ControllerClient::connect_failed(int err) {
    conn_.reset();
    state_ = State::kWaiting;
    ++failed_attempts_;
    const auto delay = backoff_.next();
    const auto now = std::chrono::steady_clock::now();
    std::string message = "cannot connect to pgbv-controller at " + options_.socket_path + ": " +
                          errno_text(err) + "; retrying in " + std::to_string(delay.count()) +
                          " ms" + connect_hint(err);
    if (err != last_connect_errno_ || now - last_connect_log_ >= kRepeatLogInterval) {
        if (err == last_connect_errno_ && failed_attempts_ > 1) {
            message += "; " + std::to_string(failed_attempts_) + " attempts failed so far";
        }
        log_.warning(message);
        last_connect_errno_ = err;
        last_connect_log_ = now;
    } else {
        log_.debug(message);
    }
    arm_timer(delay);
}

void ControllerClient::connected() {
    Connection& c = *conn_;
    c.read_event.reset(event_new(base_, c.fd.get(), EV_READ | EV_PERSIST, &on_read_cb, this));
    c.write_event.reset(event_new(base_, c.fd.get(), EV_WRITE | EV_PERSIST, &on_write_cb, this));
    c.handshake_timer.reset(evtimer_new(base_, &on_handshake_timeout_cb, this));
    if (!c.read_event || !c.write_event || !c.handshake_timer ||
        event_add(c.read_event.get(), nullptr) != 0) {
        throw std::runtime_error("cannot register libevent events for the connection");
    }
    const timeval tv = to_timeval(options_.handshake_timeout);
    evtimer_add(c.handshake_timer.get(), &tv);
    state_ = State::kAwaitingHello;
    log_.debug("connected to pgbv-controller at " + options_.socket_path + "; sending HELLO");
    enqueue_frame(wire::encode(wire::Hello{wire::kVersion, "pgbv-plugin " PGBV_PLUGIN_VERSION}),
                  std::nullopt);
}

void ControllerClient::readable() {
    std::uint8_t buf[kReadChunk];
    for (int i = 0; i < kReadsPerEvent && conn_; ++i) {
        const ssize_t n = ::recv(conn_->fd.get(), buf, sizeof(buf), 0);
        if (n > 0) {
            conn_->decoder.feed(buf, static_cast<std::size_t>(n));
            secure_wipe(buf, static_cast<std::size_t>(n));  // it may have held a password
            if (!process_frames()) return;
            if (static_cast<std::size_t>(n) < sizeof(buf)) return;
            continue;
        }
        if (n == 0) {
            close_connection(CloseKind::kPeerGone, PGBV_LOG_WARNING,
                             "lost connection to pgbv-controller at " + options_.socket_path +
                                     ": it closed the connection; still serving the last "
                                     "credentials received");
            return;
        }
        const int err = errno;
        if (err == EINTR) continue;
        if (err == EAGAIN || err == EWOULDBLOCK) return;
        close_connection(CloseKind::kPeerGone, PGBV_LOG_WARNING,
                         "lost connection to pgbv-controller at " + options_.socket_path + ": " +
                                 errno_text(err) + "; still serving the last credentials received");
        return;
    }
}

// Returns false once the connection has been closed.
bool ControllerClient::process_frames() {
    const Connection* const c = conn_.get();
    while (conn_ && conn_.get() == c) {
        wire::Decoded d = conn_->decoder.next();
        if (d.need_more()) return true;
        if (d.failed()) {
            protocol_error(d.error);
            return false;
        }
        handle(std::move(*d.message));
    }
    return false;
}

void ControllerClient::handle(wire::Message&& message) {
    if (!wire::may_send(wire::Sender::kController, message)) {
        protocol_error(std::string("it sent ") + wire::type_name(message) +
                       ", which only a plugin may send");
        return;
    }
    if (const auto* error = std::get_if<wire::Error>(&message)) {
        handle_error(*error);
        return;
    }
    switch (state_) {
        case State::kAwaitingHello:
            if (const auto* hello = std::get_if<wire::Hello>(&message)) {
                handle_hello(*hello);
            } else {
                protocol_error(std::string("it sent ") + wire::type_name(message) +
                               " before HELLO");
            }
            return;
        case State::kReceivingSnapshot:
            if (auto* credentials = std::get_if<wire::Credentials>(&message)) {
                ++conn_->snapshot_count;
                handler_.on_credentials(std::move(*credentials));
            } else if (const auto* done = std::get_if<wire::SnapshotDone>(&message)) {
                handle_snapshot_done(*done);
            } else {
                protocol_error(std::string("it sent ") + wire::type_name(message) +
                               " during the snapshot");
            }
            return;
        case State::kReady:
            if (auto* credentials = std::get_if<wire::Credentials>(&message)) {
                handler_.on_credentials(std::move(*credentials));
            } else {
                protocol_error(std::string("it sent ") + wire::type_name(message) +
                               " after the snapshot");
            }
            return;
        default:
            protocol_error(std::string("it sent ") + wire::type_name(message) +
                           " in an unexpected state");
            return;
    }
}

void ControllerClient::handle_hello(const wire::Hello& hello) {
    if (hello.version != wire::kVersion) {
        close_connection(CloseKind::kFailed, PGBV_LOG_ERROR,
                         "pgbv-controller at " + options_.socket_path +
                                 " speaks protocol version " + std::to_string(hello.version) +
                                 " but this plugin speaks version " +
                                 std::to_string(wire::kVersion) +
                                 "; install matching versions of libpgbv.so and pgbv-controller");
        return;
    }
    state_ = State::kReceivingSnapshot;
    ++handshakes_;
    std::string message = "connected to pgbv-controller at " + options_.socket_path + " (" +
                          (hello.software.empty() ? std::string("unnamed software")
                                                  : printable(hello.software, 64)) +
                          ", protocol version " + std::to_string(hello.version) + ")";
    if (failed_attempts_ > 0) {
        message += " after " + std::to_string(failed_attempts_) + " failed attempts";
    }
    log_.info(message);
    failed_attempts_ = 0;
    last_connect_errno_ = 0;
    flush_pending();
}

void ControllerClient::handle_error(const wire::Error& error) {
    const std::string text =
            error.message.empty() ? std::string("(no message)") : printable(error.message);
    std::string message = "pgbv-controller at " + options_.socket_path +
                          " closed the session: " + error_code_name(error.code) + " (code " +
                          std::to_string(error.code) + "): " + text;
    switch (error.code) {
        case PGBV_ERR_VERSION:
            message += "; this plugin speaks protocol version " + std::to_string(wire::kVersion) +
                       "; install matching versions of libpgbv.so and pgbv-controller";
            break;
        case PGBV_ERR_NOT_PERMITTED:
            message += "; run PgBouncer as a user pgbv-controller allows";
            break;
        case PGBV_ERR_SHUTTING_DOWN:
            close_connection(CloseKind::kPeerGone, PGBV_LOG_WARNING,
                             message + "; still serving the last credentials received");
            return;
        default:
            break;
    }
    close_connection(CloseKind::kFailed, PGBV_LOG_ERROR, message);
}

void ControllerClient::handle_snapshot_done(const wire::SnapshotDone& done) {
    if (done.count != conn_->snapshot_count) {
        protocol_error("SNAPSHOT_DONE counts " + std::to_string(done.count) +
                       " credential sets but " + std::to_string(conn_->snapshot_count) +
                       " were sent");
        return;
    }
    conn_->handshake_timer.reset();
    state_ = State::kReady;
    log_.info("received credentials for " + std::to_string(done.count) +
              " set(s) from pgbv-controller at " + options_.socket_path);
}

void ControllerClient::protocol_error(const std::string& reason) {
    if (conn_ && (conn_->out.empty() || conn_->out.front().written == 0)) {
        // Tell the controller why, without waiting; if the socket is full it learns from
        // the close alone.  Never in the middle of a partly written frame.
        try {
            const auto frame = wire::encode(wire::Error{PGBV_ERR_PROTOCOL, reason});
            [[maybe_unused]] ssize_t n = ::send(conn_->fd.get(), frame.data(), frame.size(),
                                                MSG_NOSIGNAL | MSG_DONTWAIT);
        } catch (const wire::EncodeError&) {
            // A reason too long for an ERROR frame: the close alone will do.
        }
    }
    close_connection(CloseKind::kFailed, PGBV_LOG_WARNING,
                     "protocol error from pgbv-controller at " + options_.socket_path + ": " +
                             reason + " (frame content not logged); closing the connection");
}

void ControllerClient::close_connection(CloseKind kind, int level, const std::string& message) {
    if (!conn_) return;
    const bool was_ready = state_ == State::kReady;
    std::deque<wire::Message> unsent;
    for (auto& frame : conn_->out) {
        if (frame.report && frame.written < frame.bytes.size()) {
            unsent.push_back(std::move(*frame.report));
        }
    }
    conn_.reset();  // closes the socket, frees its events, wipes the decoder
    if (!unsent.empty()) pending_.push_front(std::move(unsent));
    if (state_ == State::kStopped) return;

    // A controller that restarts after serving us is worth retrying at once; one that
    // misbehaves or refuses us gets the growing delay.
    if (kind == CloseKind::kPeerGone && was_ready) backoff_.reset();
    const auto delay = backoff_.next();
    state_ = State::kWaiting;
    last_connect_errno_ = 0;  // the next connect failure is news
    log_.log(level, message + "; reconnecting in " + std::to_string(delay.count()) + " ms");
    arm_timer(delay);
}

void ControllerClient::writable() {
    if (!conn_) return;
    Connection& c = *conn_;
    while (!c.out.empty()) {
        auto& frame = c.out.front();
        const ssize_t n = ::send(c.fd.get(), frame.bytes.data() + frame.written,
                                 frame.bytes.size() - frame.written, MSG_NOSIGNAL);
        if (n < 0) {
            const int err = errno;
            if (err == EINTR) continue;
            if (err == EAGAIN || err == EWOULDBLOCK) return;
            close_connection(CloseKind::kPeerGone, PGBV_LOG_WARNING,
                             "lost connection to pgbv-controller at " + options_.socket_path +
                                     ": " + errno_text(err) +
                                     "; still serving the last credentials received");
            return;
        }
        frame.written += static_cast<std::size_t>(n);
        if (frame.written == frame.bytes.size()) {
            wire::wipe(frame.bytes);
            c.out.pop_front();
        }
    }
    event_del(c.write_event.get());
    c.write_armed = false;
}

void ControllerClient::enqueue_frame(std::vector<std::uint8_t> bytes,
                                     std::optional<wire::Message> report) {
    Connection& c = *conn_;
    c.out.push_back(Connection::OutFrame{std::move(bytes), 0, std::move(report)});
    if (!c.write_armed) {
        if (event_add(c.write_event.get(), nullptr) != 0) {
            throw std::runtime_error("cannot register a libevent write event");
        }
        c.write_armed = true;
    }
}

void ControllerClient::enqueue_report(wire::Message report) {
    Connection& c = *conn_;
    // A controller that stops reading must not make the plugin grow without bound.
    std::size_t queued = 0;
    for (const auto& frame : c.out)
        queued += frame.report ? 1 : 0;
    if (queued >= pending_.capacity()) {
        for (auto it = c.out.begin(); it != c.out.end(); ++it) {
            if (it->report && it->written == 0) {
                c.out.erase(it);
                break;
            }
        }
        if (!c.drop_logged) {
            log_.warning("pgbv-controller at " + options_.socket_path + " is not reading; " +
                         std::to_string(pending_.capacity()) +
                         " reports are waiting to be sent, dropping the oldest");
            c.drop_logged = true;
        }
    }
    auto bytes = wire::encode(report);
    enqueue_frame(std::move(bytes), std::move(report));
}

void ControllerClient::send_report(wire::Message report) {
    if (!std::holds_alternative<wire::Drained>(report) &&
        !std::holds_alternative<wire::LoginFailed>(report)) {
        throw wire::EncodeError(std::string("send_report() takes DRAINED or LOGIN_FAILED, not ") +
                                wire::type_name(report));
    }
    if (auto error = wire::validation_error(report)) throw wire::EncodeError(*error);
    if (conn_ && (state_ == State::kReceivingSnapshot || state_ == State::kReady)) {
        enqueue_report(std::move(report));
        return;
    }
    if (pending_.push_back(std::move(report)) && !drop_logged_) {
        log_.warning("pgbv-controller at " + options_.socket_path + " is unreachable and " +
                     std::to_string(pending_.capacity()) +
                     " reports are already queued for it; dropping the oldest "
                     "(raise max_pending_reports to keep more)");
        drop_logged_ = true;
    }
}

void ControllerClient::flush_pending() {
    auto reports = pending_.take_all();
    const std::uint64_t dropped = pending_.take_dropped();
    drop_logged_ = false;
    if (reports.empty() && dropped == 0) return;
    std::string message = "sending " + std::to_string(reports.size()) +
                          " report(s) queued while pgbv-controller was unreachable";
    if (dropped > 0) {
        message += "; " + std::to_string(dropped) +
                   " older report(s) were dropped (max_pending_reports=" +
                   std::to_string(pending_.capacity()) + ")";
    }
    log_.info(message);
    for (auto& report : reports)
        enqueue_report(std::move(report));
}

void ControllerClient::stop() {
    if (state_ == State::kStopped && !conn_ && !timer_) return;
    state_ = State::kStopped;
    timer_.reset();
    std::size_t undelivered = pending_.size();
    if (conn_) {
        // One non-blocking attempt to deliver what is queued; the loop is going away.
        for (auto& frame : conn_->out) {
            const ssize_t n =
                    ::send(conn_->fd.get(), frame.bytes.data() + frame.written,
                           frame.bytes.size() - frame.written, MSG_NOSIGNAL | MSG_DONTWAIT);
            if (n < 0 || static_cast<std::size_t>(n) != frame.bytes.size() - frame.written) {
                break;
            }
            frame.written = frame.bytes.size();
        }
        for (const auto& frame : conn_->out) {
            if (frame.report && frame.written < frame.bytes.size()) ++undelivered;
        }
        conn_.reset();
    }
    pending_.take_all();
    if (undelivered > 0) {
        log_.info(std::to_string(undelivered) +
                  " report(s) for pgbv-controller were not delivered before shutdown");
    }
}

}  // namespace pgbv::plugin
