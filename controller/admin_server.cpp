// The admin socket: one JSON request line in, one response line out.

#include "controller/admin_server.hpp"

#include <event2/buffer.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

#include "controller/log.hpp"

namespace pgbv::ctl {

AdminServer::AdminServer(event_base* base, UnixListener listener, Handler handler,
                         std::vector<uid_t> allowed_uids)
    : base_(base),
      listener_(std::move(listener)),
      handler_(std::move(handler)),
      allowed_(std::move(allowed_uids)) {
    accept_event_.reset(
            event_new(base_, listener_.fd(), EV_READ | EV_PERSIST, &AdminServer::on_accept, this));
    reap_timer_.reset(evtimer_new(base_, &AdminServer::on_reap, this));
    if (!accept_event_ || !reap_timer_)
        throw std::runtime_error("cannot allocate the admin socket's events");
    event_add(accept_event_.get(), nullptr);
}

AdminServer::~AdminServer() = default;

int AdminServer::live_clients() const {
    int n = 0;
    for (const auto& [id, c] : clients_)
        n += (c->closing || c->dead) ? 0 : 1;
    return n;
}

void AdminServer::on_accept(evutil_socket_t fd, short, void* self) {
    auto* server = static_cast<AdminServer*>(self);
    for (;;) {
        const int conn = ::accept4(fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (conn < 0) {
            if (errno == EINTR || errno == ECONNABORTED) continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK) {
                log::warning("admin socket: accept failed: %s", std::strerror(errno));
            }
            return;
        }
        auto client = std::make_unique<Client>();
        Client& c = *client;
        c.server = server;
        c.id = ++server->next_id_;
        c.bev.reset(bufferevent_socket_new(server->base_, conn,
                                           BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS));
        if (!c.bev) {
            ::close(conn);
            continue;
        }
        bufferevent_setcb(c.bev.get(), &AdminServer::on_read, nullptr, &AdminServer::on_event, &c);
        const int live = server->live_clients();
        server->clients_.emplace(c.id, std::move(client));
        const auto uid = peer_uid(conn);
        if (!uid || std::find(server->allowed_.begin(), server->allowed_.end(), *uid) ==
                            server->allowed_.end()) {
            log::warning("admin socket: refused uid %ld", uid ? static_cast<long>(*uid) : -1L);
            server->reply_and_close(c,
                                    admin::encode_error("this uid may not use the admin socket"));
            continue;
        }
        if (live >= kMaxClients) {
            server->reply_and_close(c, admin::encode_error("too many admin connections"));
            continue;
        }
        const timeval idle = {kIdleSeconds, 0};
        bufferevent_set_timeouts(c.bev.get(), &idle, &idle);
        bufferevent_enable(c.bev.get(), EV_READ);
    }
}

void AdminServer::on_read(bufferevent* bev, void* ctx) {
    auto& c = *static_cast<Client*>(ctx);
    AdminServer& server = *c.server;
    evbuffer* in = bufferevent_get_input(bev);
    while (!c.closing && !c.dead) {
        std::size_t len = 0;
        char* line = evbuffer_readln(in, &len, EVBUFFER_EOL_LF);
        if (line == nullptr) {
            if (evbuffer_get_length(in) > admin::kMaxRequestLine) {
                server.reply_and_close(c, admin::encode_error("request line too long"));
            }
            return;
        }
        std::string text(line, len);
        std::free(line);  // NOLINT(cppcoreguidelines-no-malloc): evbuffer_readln allocates
        std::string error;
        auto request = admin::parse_request(text, &error);
        if (!request) {
            server.reply_and_close(c, admin::encode_error("bad request: " + error));
            return;
        }
        const std::string response = server.handler_(*request);
        bufferevent_write(bev, response.data(), response.size());
    }
}

void AdminServer::reply_and_close(Client& c, const std::string& line) {
    c.closing = true;
    bufferevent_disable(c.bev.get(), EV_READ);
    bufferevent_write(c.bev.get(), line.data(), line.size());
    bufferevent_setcb(c.bev.get(), nullptr, &AdminServer::on_written, &AdminServer::on_event, &c);
    const timeval tv = {5, 0};
    bufferevent_set_timeouts(c.bev.get(), nullptr, &tv);
    bufferevent_enable(c.bev.get(), EV_WRITE);
}

void AdminServer::on_written(bufferevent* bev, void* ctx) {
    auto& c = *static_cast<Client*>(ctx);
    if (evbuffer_get_length(bufferevent_get_output(bev)) == 0) c.server->kill(c);
}

void AdminServer::on_event(bufferevent*, short what, void* ctx) {
    auto& c = *static_cast<Client*>(ctx);
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT)) c.server->kill(c);
}

void AdminServer::kill(Client& c) {
    if (c.dead) return;
    c.dead = true;
    bufferevent_disable(c.bev.get(), EV_READ | EV_WRITE);
    const timeval zero = {0, 0};
    evtimer_add(reap_timer_.get(), &zero);
}

void AdminServer::on_reap(evutil_socket_t, short, void* self) {
    auto* server = static_cast<AdminServer*>(self);
    for (auto it = server->clients_.begin(); it != server->clients_.end();) {
        it = it->second->dead ? server->clients_.erase(it) : std::next(it);
    }
}

}  // namespace pgbv::ctl
