// The plugin's connection to pgbv-controller: connect, handshake, receive credentials,
// send reports, reconnect.
#ifndef PGBV_PLUGIN_CONTROLLER_CLIENT_HPP
#define PGBV_PLUGIN_CONTROLLER_CLIENT_HPP

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "pgbv/wire_codec.hpp"
#include "plugin/backoff.hpp"
#include "plugin/logger.hpp"
#include "plugin/options.hpp"
#include "plugin/report_queue.hpp"
#include "plugin/unique_handles.hpp"

struct event_base;

namespace pgbv::plugin {

// Receives what the controller sends.  Called from the client's event callbacks, never
// from inside a ControllerClient method called by the owner.
class ClientHandler {
public:
    // A CREDENTIALS frame arrived (part of a snapshot or a push) and passed every field
    // rule.  The handler may call ControllerClient::send_report() from here.
    virtual void on_credentials(wire::Credentials&& credentials) = 0;

protected:
    ~ClientHandler() = default;
};

// A client of pgbv-controller's plugin socket, driven entirely by events on an
// event_base it does not own (PgBouncer's).  It never blocks and never starts a thread.
//
// The conversation (PROTOCOL.md): connect without blocking; send HELLO; expect HELLO
// with version 1 (anything else: log both versions, close); receive the snapshot
// (CREDENTIALS..., SNAPSHOT_DONE with their count); then receive pushes.  Reports
// (DRAINED, LOGIN_FAILED) go out as soon as the controller has answered HELLO, and are
// kept in a bounded queue while it has not; reports that were still unsent when a
// connection broke are queued again.
//
// Any failure (connect refused, peer gone, malformed/oversized/unexpected frame, wrong
// version, ERROR from the controller, handshake timeout) closes the connection and
// schedules a new attempt after Backoff's delay.  Protocol errors are logged without
// the frame's content.  Repeated connect failures are logged when the error changes
// and otherwise at most once a minute.
//
// Not thread-safe: every call must come from the event_base's thread.
class ControllerClient {
public:
    enum class State {
        kStopped,            // not started, or stop() was called
        kWaiting,            // a reconnect timer is pending
        kConnecting,         // connect() in progress
        kAwaitingHello,      // HELLO sent, waiting for the controller's
        kReceivingSnapshot,  // HELLO exchanged, snapshot in progress
        kReady,              // snapshot done; receiving pushes
    };

    // REQUIRES: `base`, `log` and `handler` outlive the client; options are valid
    // (see parse_options()).  `seed` seeds the backoff jitter.
    ControllerClient(struct event_base* base, Options options, const Logger& log,
                     ClientHandler& handler, std::uint64_t seed);
    ~ControllerClient();
    ControllerClient(const ControllerClient&) = delete;
    ControllerClient& operator=(const ControllerClient&) = delete;

    // Schedules the first connection attempt on the event loop (it does not connect
    // from inside this call).  Throws std::runtime_error if libevent cannot allocate a
    // timer.  Calling it again while started does nothing.
    void start();

    // Queues a report (wire::Drained or wire::LoginFailed) for the controller.  Never
    // does I/O from inside this call.  Throws wire::EncodeError if the report breaks a
    // field rule.
    void send_report(wire::Message report);

    // Writes what can be written without blocking, closes the connection and stops
    // reconnecting.  Reports still queued are dropped (logged with their count).
    void stop();

    State state() const noexcept { return state_; }

    // Reports waiting for a connection (not counting those already handed to a
    // connection's write queue).
    std::size_t pending_reports() const noexcept { return pending_.size(); }

    // Completed HELLO exchanges since construction.
    std::uint64_t handshakes() const noexcept { return handshakes_; }

private:
    struct Connection;
    enum class CloseKind {
        kPeerGone,  // EOF, I/O error, controller shutting down: retry soon
        kFailed,    // protocol error, refusal, timeout: keep backing off
    };

    static void on_timer_cb(evutil_socket_t fd, short what, void* arg);
    static void on_connect_cb(evutil_socket_t fd, short what, void* arg);
    static void on_read_cb(evutil_socket_t fd, short what, void* arg);
    static void on_write_cb(evutil_socket_t fd, short what, void* arg);
    static void on_handshake_timeout_cb(evutil_socket_t fd, short what, void* arg);

    template <typename F>
    void guarded(const char* doing, F&& f) noexcept;

    void arm_timer(std::chrono::milliseconds delay);
    void attempt_connect();
    void connect_ready();
    void connect_failed(int err);
    void connected();
    void readable();
    bool process_frames();
    void handle(wire::Message&& message);
    void handle_hello(const wire::Hello& hello);
    void handle_error(const wire::Error& error);
    void handle_snapshot_done(const wire::SnapshotDone& done);
    void protocol_error(const std::string& reason);
    void close_connection(CloseKind kind, int level, const std::string& message);
    void writable();
    void enqueue_frame(std::vector<std::uint8_t> bytes, std::optional<wire::Message> report);
    void enqueue_report(wire::Message report);
    void flush_pending();

    struct event_base* base_;
    Options options_;
    const Logger& log_;
    ClientHandler& handler_;
    Backoff backoff_;
    ReportQueue pending_;
    EventPtr timer_;
    std::unique_ptr<Connection> conn_;
    State state_ = State::kStopped;
    std::uint64_t handshakes_ = 0;

    // Connect-failure logging: log when the error changes or a minute has passed.
    int last_connect_errno_ = 0;
    std::chrono::steady_clock::time_point last_connect_log_{};
    unsigned failed_attempts_ = 0;
    bool drop_logged_ = false;
};

}  // namespace pgbv::plugin

#endif  // PGBV_PLUGIN_CONTROLLER_CLIENT_HPP
