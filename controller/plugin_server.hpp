// The plugin socket: serves PROTOCOL.md to the credential plugins inside PgBouncer.
//
// Per connection: the peer's uid (SO_PEERCRED) must be in allowed_uids, else ERROR 3;
// at most max_clients connections, else ERROR 4; HELLO first (within hello_timeout),
// with version 1, else ERROR 1 naming both versions; then HELLO back, the snapshot (one
// CREDENTIALS per set that has credentials) and SNAPSHOT_DONE; after that CREDENTIALS
// pushes (broadcast()) and DRAINED / LOGIN_FAILED handed to the PluginHandler.  A
// malformed frame or a message not allowed here gets ERROR 2 and the connection closes;
// nothing a client sends can crash the server or make it log a frame's content.  A
// client that stops reading is dropped once max_output bytes wait for it.
//
// Every ERROR is flushed before the connection closes (bounded by a short timeout).
//
// REQUIRES: `base` and `handler` outlive the server.  Single-threaded (the event loop).

#ifndef PGBV_CONTROLLER_PLUGIN_SERVER_HPP
#define PGBV_CONTROLLER_PLUGIN_SERVER_HPP

#include <event2/event.h>
#include <sys/types.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "controller/clock.hpp"
#include "controller/event_handles.hpp"
#include "controller/metrics.hpp"
#include "controller/plugin_handler.hpp"
#include "controller/unix_socket.hpp"
#include "pgbv/wire_codec.hpp"

namespace pgbv::ctl {

class PluginServer {
public:
    struct Options {
        std::vector<uid_t> allowed_uids;
        int max_clients = 16;
        Duration hello_timeout = std::chrono::seconds(10);
        std::size_t max_output = 1 << 20;
        Metrics* metrics = nullptr;  // counts accepted and refused connections, if set
    };

    // Starts accepting on `listener`.  Throws std::runtime_error if libevent cannot
    // allocate its events.
    PluginServer(event_base* base, UnixListener listener, PluginHandler& handler, Options options);
    ~PluginServer();
    PluginServer(const PluginServer&) = delete;
    PluginServer& operator=(const PluginServer&) = delete;

    // Sends `credentials` to every client past its snapshot; returns their ids.
    std::vector<ClientId> broadcast(const wire::Credentials& credentials);

    // Stops accepting, sends ERROR 5 to every client and closes each once flushed.
    void shutdown();

    // Connections counted against max_clients (those not closing).
    std::uint32_t client_count() const;

    const std::string& path() const { return listener_.path(); }

private:
    struct Client;

    static void on_accept(evutil_socket_t fd, short events, void* self);
    static void on_resume(evutil_socket_t fd, short events, void* self);
    static void on_reap(evutil_socket_t fd, short events, void* self);
    static void on_read(bufferevent* bev, void* ctx);
    static void on_flushed(bufferevent* bev, void* ctx);
    static void on_event(bufferevent* bev, short what, void* ctx);
    static void on_hello_timeout(evutil_socket_t fd, short events, void* ctx);

    void accept_one(int fd);
    void handle(Client& c, wire::Message message);
    template <class M>
    bool send(Client& c, const M& message);
    void write_frame(Client& c, const std::vector<std::uint8_t>& frame);
    void refuse(Client& c, std::uint16_t code, const std::string& message);
    void close_after_flush(Client& c);
    void kill(Client& c);
    bool allowed(uid_t uid) const;

    event_base* base_;
    UnixListener listener_;
    PluginHandler& handler_;
    Options options_;
    UniqueEvent accept_event_;
    UniqueEvent resume_timer_;
    UniqueEvent reap_timer_;
    std::map<ClientId, std::unique_ptr<Client>> clients_;
    ClientId next_id_ = 0;
    bool shutting_down_ = false;
};

}  // namespace pgbv::ctl

#endif  // PGBV_CONTROLLER_PLUGIN_SERVER_HPP
