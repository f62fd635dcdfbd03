// Test helpers for the plugin: a libevent loop driver, a log recorder, a temp directory,
// sample messages, and a fake pgbv-controller listening on a real Unix socket.
#ifndef PGBV_TESTS_PLUGIN_TEST_SUPPORT_HPP
#define PGBV_TESTS_PLUGIN_TEST_SUPPORT_HPP

#include <event2/event.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "pgbv/wire_codec.hpp"

namespace pgbv::test {

// Owns an event_base and runs it until a condition holds.  The deadline is a safety net
// against hangs, not a performance assertion: it is generous.
class EventLoop {
public:
    EventLoop();
    ~EventLoop();
    EventLoop(const EventLoop&) = delete;
    EventLoop& operator=(const EventLoop&) = delete;

    struct event_base* base() const {
        return base_;
    }

    // Runs the loop until `done()` is true; returns false if the deadline passed first.
    bool run_until(const std::function<bool()>& done,
                   std::chrono::milliseconds deadline = std::chrono::seconds(20));

    // Runs the loop for about `duration` (for "nothing happens" checks).
    void run_for(std::chrono::milliseconds duration);

private:
    struct event_base* base_;
    struct event* tick_;
};

// Collects log lines.
struct LogRecord {
    int level;
    std::string message;
};
class LogRecorder {
public:
    void add(int level, std::string message) { lines.push_back({level, std::move(message)}); }
    // Number of lines at `level` (any level if 0) containing `needle`.
    std::size_t count(const std::string& needle, int level = 0) const;
    bool contains(const std::string& needle) const { return count(needle) > 0; }
    // Everything logged, one line per record, for failure messages and secret checks.
    std::string all() const;
    std::vector<LogRecord> lines;
};

// A fresh directory under $TMPDIR (or /tmp), removed with its content on destruction.
class TempDir {
public:
    TempDir();
    ~TempDir();
    const std::string& path() const { return path_; }
    std::string file(const std::string& name) const { return path_ + "/" + name; }

private:
    std::string path_;
};

// Sample messages.
wire::Credentials credentials(std::string set, std::uint64_t generation, std::string username,
                              std::string password, std::int64_t expires_at = 0);

// A pgbv-controller stand-in on a listening Unix socket, driven by the same event_base as
// the code under test.  By default it answers HELLO with HELLO (version 1) followed by
// the snapshot `snapshot` and SNAPSHOT_DONE; every frame it receives is decoded into
// `received` (a decode error lands in `decode_error`).
class FakeController {
public:
    FakeController(struct event_base* base, std::string path);
    ~FakeController();
    FakeController(const FakeController&) = delete;
    FakeController& operator=(const FakeController&) = delete;

    // Starts/stops listening (stop also unlinks the socket file).
    void listen();
    void stop_listening();

    // Closes the current client connection, if any.
    void drop_client();
    bool has_client() const { return client_fd_ >= 0; }

    // Sends to the current client (blocking; frames are small).
    void send(const wire::Message& message);
    void send_raw(const std::vector<std::uint8_t>& bytes);

    // Behaviour on the plugin's HELLO.
    bool auto_handshake = true;
    std::uint16_t hello_version = wire::kVersion;
    std::vector<wire::Credentials> snapshot;     // cloned into each handshake
    std::uint32_t snapshot_done_count_bias = 0;  // added to SNAPSHOT_DONE's count

    std::vector<wire::Message> received;  // from all connections, in order
    std::string decode_error;
    int accepted = 0;
    int hellos = 0;

    // Messages of type T received so far.
    template <typename T>
    std::vector<T> received_of() const {
        std::vector<T> out;
        for (const auto& m : received) {
            if (const T* t = std::get_if<T>(&m)) out.push_back(*t);
        }
        return out;
    }

private:
    static void on_accept(evutil_socket_t fd, short what, void* arg);
    static void on_read(evutil_socket_t fd, short what, void* arg);
    void handle(wire::Message message);

    struct event_base* base_;
    std::string path_;
    int listen_fd_ = -1;
    struct event* listen_event_ = nullptr;
    int client_fd_ = -1;
    struct event* client_event_ = nullptr;
    std::unique_ptr<wire::FrameDecoder> decoder_;
};

// Copies a Credentials (it holds a move-only Secret).
wire::Credentials clone(const wire::Credentials& c);

}  // namespace pgbv::test

#endif  // PGBV_TESTS_PLUGIN_TEST_SUPPORT_HPP
