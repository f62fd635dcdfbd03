// Unix stream sockets: listening with a mode, peer credentials, connecting.

#include "controller/unix_socket.hpp"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace pgbv::ctl {
namespace {

bool make_address(const std::string& path, sockaddr_un* addr, std::string* error) {
    std::memset(addr, 0, sizeof *addr);
    addr->sun_family = AF_UNIX;
    if (path.empty() || path.size() >= sizeof addr->sun_path) {
        *error = "socket path '" + path + "' is empty or longer than " +
                 std::to_string(sizeof addr->sun_path - 1) + " bytes";
        return false;
    }
    std::memcpy(addr->sun_path, path.c_str(), path.size() + 1);
    return true;
}

std::string errno_text(const std::string& what, const std::string& path) {
    return what + " " + path + ": " + std::strerror(errno);
}

// Removes a socket file nobody listens on any more; refuses anything else.
bool clear_stale(const std::string& path, const sockaddr_un& addr, std::string* error) {
    struct stat st {};
    if (::lstat(path.c_str(), &st) != 0) {
        if (errno == ENOENT) return true;
        *error = errno_text("cannot inspect", path);
        return false;
    }
    if (!S_ISSOCK(st.st_mode)) {
        *error = path + " exists and is not a socket; remove it or choose another path";
        return false;
    }
    UniqueFd probe(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (probe.valid() &&
        ::connect(probe.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0) {
        *error = "another process is listening on " + path +
                 " (is another pgbv-controller running?)";
        return false;
    }
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
        *error = errno_text("cannot remove the stale socket", path);
        return false;
    }
    return true;
}

}  // namespace

std::optional<UnixListener> UnixListener::open(const std::string& path, mode_t mode,
                                               std::optional<gid_t> group, std::string* error) {
    sockaddr_un addr{};
    if (!make_address(path, &addr, error)) return std::nullopt;
    if (!clear_stale(path, addr, error)) return std::nullopt;
    UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!fd.valid()) {
        *error = errno_text("cannot create a socket for", path);
        return std::nullopt;
    }
    // Nobody may connect between bind() and chmod(): create it closed, then open it up.
    const mode_t old_umask = ::umask(0777);
    const int rc = ::bind(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr);
    const int bind_errno = errno;
    ::umask(old_umask);
    if (rc != 0) {
        errno = bind_errno;
        *error = errno_text("cannot bind", path);
        return std::nullopt;
    }
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) {
        *error = errno_text("cannot inspect", path);
        ::unlink(path.c_str());
        return std::nullopt;
    }
    if (group && ::chown(path.c_str(), static_cast<uid_t>(-1), *group) != 0) {
        *error = errno_text("cannot give the group " + std::to_string(*group) + " to", path);
        ::unlink(path.c_str());
        return std::nullopt;
    }
    if (::chmod(path.c_str(), mode) != 0) {
        *error = errno_text("cannot set the mode of", path);
        ::unlink(path.c_str());
        return std::nullopt;
    }
    if (::listen(fd.get(), 64) != 0) {
        *error = errno_text("cannot listen on", path);
        ::unlink(path.c_str());
        return std::nullopt;
    }
    return UnixListener(std::move(fd), path, st.st_ino);
}

UnixListener::~UnixListener() {
    if (!fd_.valid()) return;
    // Only our own file: a successor may already have replaced it.
    struct stat st {};
    if (::lstat(path_.c_str(), &st) == 0 && st.st_ino == inode_) ::unlink(path_.c_str());
}

std::optional<uid_t> peer_uid(int fd) {
    struct ucred cred {};
    socklen_t len = sizeof cred;
    if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) return std::nullopt;
    return cred.uid;
}

UniqueFd connect_unix(const std::string& path, std::string* error) {
    sockaddr_un addr{};
    if (!make_address(path, &addr, error)) return UniqueFd();
    UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd.valid()) {
        *error = errno_text("cannot create a socket for", path);
        return UniqueFd();
    }
    if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
        *error = errno_text("cannot connect to", path);
        return UniqueFd();
    }
    return fd;
}

}  // namespace pgbv::ctl
