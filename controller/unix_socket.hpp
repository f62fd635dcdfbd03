// Unix stream sockets for the controller: listening with a given mode, peer
// credentials, connecting (for pgbvctl and tests).

#ifndef PGBV_CONTROLLER_UNIX_SOCKET_HPP
#define PGBV_CONTROLLER_UNIX_SOCKET_HPP

#include <sys/types.h>

#include <optional>
#include <string>

#include "controller/event_handles.hpp"

namespace pgbv::ctl {

// A listening socket bound to a path.  The file is created with `mode` (and `group` if
// given) before any client can connect, and removed on destruction if it is still ours.
class UnixListener {
public:
    // Binds and listens (non-blocking, close-on-exec).  A stale socket file left by a
    // dead controller is replaced; one another process still listens on is an error, as
    // is any other file at `path`.  On failure returns nullopt and sets `error`.
    static std::optional<UnixListener> open(const std::string& path, mode_t mode,
                                            std::optional<gid_t> group, std::string* error);

    UnixListener(UnixListener&&) noexcept = default;
    UnixListener& operator=(UnixListener&&) noexcept = default;
    ~UnixListener();

    int fd() const { return fd_.get(); }
    const std::string& path() const { return path_; }

private:
    UnixListener(UniqueFd fd, std::string path, ino_t inode)
        : fd_(std::move(fd)), path_(std::move(path)), inode_(inode) {}

    UniqueFd fd_;
    std::string path_;
    ino_t inode_ = 0;
};

// The uid of the process at the other end of a connected Unix socket.
std::optional<uid_t> peer_uid(int fd);

// Connects to the socket at `path` (blocking, close-on-exec).  Invalid fd and `error`
// set on failure.
UniqueFd connect_unix(const std::string& path, std::string* error);

}  // namespace pgbv::ctl

#endif  // PGBV_CONTROLLER_UNIX_SOCKET_HPP
