// The admin socket: answers admin_protocol.hpp requests (pgbvctl) from the event loop.
//
// Only peers whose uid is in `allowed_uids` (by default the controller's own and root)
// are served; others get an error line and are closed.  At most kMaxClients connections,
// each closed after kIdleSeconds without a request.  A malformed or oversized line gets an
// error line and the connection is closed.  answer() turns a request into its response
// line by calling the daemon's Actions; main() supplies them.
//
// REQUIRES: `base` outlives the server.  Single-threaded (the event loop).

#ifndef PGBV_CONTROLLER_ADMIN_SERVER_HPP
#define PGBV_CONTROLLER_ADMIN_SERVER_HPP

#include <event2/bufferevent.h>
#include <event2/event.h>
#include <sys/types.h>

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "controller/admin_protocol.hpp"
#include "controller/event_handles.hpp"
#include "controller/status.hpp"
#include "controller/unix_socket.hpp"

namespace pgbv::ctl {

class AdminServer {
public:
    // Returns the response line ('\n' included) for a request.
    using Handler = std::function<std::string(const admin::Request&)>;

    // What the admin commands do.  An empty function makes its command answer "not
    // available" (an error) instead of crashing.  log-level needs none: it sets log::level.
    struct Actions {
        std::function<Status()> status;
        // "" when done, else why not.
        std::function<std::string(const std::string& set)> rotate;
        // true: done, `text` says what was revoked; false: `text` says why not.
        std::function<bool(std::string* text)> revoke_drained;
        // The report, or nullopt and `error` (the new file is not applied then).
        std::function<std::optional<admin::ReloadReport>(std::string* error)> reload;
    };

    // The response line to `request`: checks it (admin::check_request), runs it, encodes
    // the outcome; never throws (an exception becomes an error line).
    static std::string answer(const admin::Request& request, const Actions& actions);

    static constexpr int kMaxClients = 8;
    static constexpr int kIdleSeconds = 60;

    // Throws std::runtime_error if libevent cannot allocate its events.
    AdminServer(event_base* base, UnixListener listener, Handler handler,
                std::vector<uid_t> allowed_uids);
    AdminServer(event_base* base, UnixListener listener, Actions actions,
                std::vector<uid_t> allowed_uids);
    ~AdminServer();
    AdminServer(const AdminServer&) = delete;
    AdminServer& operator=(const AdminServer&) = delete;

    const std::string& path() const { return listener_.path(); }

private:
    struct Client {
        AdminServer* server = nullptr;
        std::uint64_t id = 0;
        UniqueBufferevent bev;
        bool closing = false;
        bool dead = false;
    };

    static void on_accept(evutil_socket_t fd, short events, void* self);
    static void on_read(bufferevent* bev, void* ctx);
    static void on_written(bufferevent* bev, void* ctx);
    static void on_event(bufferevent* bev, short what, void* ctx);
    static void on_reap(evutil_socket_t fd, short events, void* self);

    void reply_and_close(Client& c, const std::string& line);
    void kill(Client& c);
    int live_clients() const;
    // "uid 999 (postgres) and uid 0 (root)", for refusals.
    std::string allowed_text() const;

    event_base* base_;
    UnixListener listener_;
    Handler handler_;
    std::vector<uid_t> allowed_;
    UniqueEvent accept_event_;
    UniqueEvent reap_timer_;
    std::map<std::uint64_t, std::unique_ptr<Client>> clients_;
    std::uint64_t next_id_ = 0;
};

}  // namespace pgbv::ctl

#endif  // PGBV_CONTROLLER_ADMIN_SERVER_HPP
