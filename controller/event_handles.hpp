// RAII owners for the C handles of libevent and for file descriptors.

#ifndef PGBV_CONTROLLER_EVENT_HANDLES_HPP
#define PGBV_CONTROLLER_EVENT_HANDLES_HPP

#include <event2/bufferevent.h>
#include <event2/event.h>
#include <unistd.h>

#include <memory>
#include <utility>

namespace pgbv::ctl {

struct EventBaseFree {
    void operator()(event_base* b) const noexcept { event_base_free(b); }
};
struct EventFree {
    void operator()(event* e) const noexcept { event_free(e); }
};
struct BuffereventFree {
    void operator()(bufferevent* b) const noexcept { bufferevent_free(b); }
};
using UniqueEventBase = std::unique_ptr<event_base, EventBaseFree>;
using UniqueEvent = std::unique_ptr<event, EventFree>;
using UniqueBufferevent = std::unique_ptr<bufferevent, BuffereventFree>;

// Owns a file descriptor; closes it on destruction.
class UniqueFd {
public:
    UniqueFd() noexcept = default;
    explicit UniqueFd(int fd) noexcept : fd_(fd) {}
    UniqueFd(UniqueFd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
    UniqueFd& operator=(UniqueFd&& o) noexcept {
        if (this != &o) reset(std::exchange(o.fd_, -1));
        return *this;
    }
    UniqueFd(const UniqueFd&) = delete;
    UniqueFd& operator=(const UniqueFd&) = delete;
    ~UniqueFd() { reset(); }

    int get() const noexcept { return fd_; }
    bool valid() const noexcept { return fd_ >= 0; }
    int release() noexcept { return std::exchange(fd_, -1); }
    void reset(int fd = -1) noexcept {
        if (fd_ >= 0) ::close(fd_);
        fd_ = fd;
    }

private:
    int fd_ = -1;
};

}  // namespace pgbv::ctl

#endif  // PGBV_CONTROLLER_EVENT_HANDLES_HPP
