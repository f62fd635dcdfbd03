// RAII owners for the C handles the plugin holds: file descriptors and libevent events.
#ifndef PGBV_PLUGIN_UNIQUE_HANDLES_HPP
#define PGBV_PLUGIN_UNIQUE_HANDLES_HPP

#include <event2/event.h>
#include <unistd.h>

#include <memory>
#include <utility>

namespace pgbv::plugin {

// Owns one file descriptor and closes it on destruction or reset().
class UniqueFd {
public:
    UniqueFd() noexcept = default;
    explicit UniqueFd(int fd) noexcept : fd_(fd) {}
    UniqueFd(const UniqueFd&) = delete;
    UniqueFd& operator=(const UniqueFd&) = delete;
    UniqueFd(UniqueFd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
    UniqueFd& operator=(UniqueFd&& other) noexcept {
        if (this != &other) reset(std::exchange(other.fd_, -1));
        return *this;
    }
    ~UniqueFd() { reset(); }

    int get() const noexcept { return fd_; }
    bool valid() const noexcept { return fd_ >= 0; }

    // Closes the current descriptor (if any) and takes `fd`.
    void reset(int fd = -1) noexcept {
        if (fd_ >= 0) ::close(fd_);
        fd_ = fd;
    }

private:
    int fd_ = -1;
};

// event_free() is safe on a pending or active event, and from the event's own callback.
struct EventDeleter {
    void operator()(struct event* ev) const noexcept {
        if (ev != nullptr) event_free(ev);
    }
};
using EventPtr = std::unique_ptr<struct event, EventDeleter>;

}  // namespace pgbv::plugin

#endif  // PGBV_PLUGIN_UNIQUE_HANDLES_HPP
