// The admin socket: one JSON request line in, one response line out.

#include "controller/admin_server.hpp"

#include <event2/buffer.h>
#include <pwd.h>
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

AdminServer::AdminServer(event_base* base, UnixListener listener, Actions actions,
                         std::vector<uid_t> allowed_uids)
    : AdminServer(base, std::move(listener),
                  Handler([actions = std::move(actions)](const admin::Request& r) {
                      return answer(r, actions);
                  }),
                  std::move(allowed_uids)) {}

AdminServer::~AdminServer() = default;

namespace {

std::string not_available(const std::string& command) {
    return admin::encode_error(command + " is not available in this controller");
}

std::string run(const admin::Request& r, const AdminServer::Actions& a) {
    if (const std::string wrong = admin::check_request(r); !wrong.empty()) {
        return admin::encode_error(wrong);
    }
    if (r.command == "status" || r.command == "sets" || r.command == "leases") {
        if (!a.status) return not_available(r.command);
        const Status s = a.status();
        if (r.command == "status") return admin::encode_status(s);
        return r.command == "sets" ? admin::encode_sets(s) : admin::encode_leases(s);
    }
    if (r.command == "rotate") {
        if (!a.rotate) return not_available(r.command);
        log::info("admin socket: rotation of set %s requested", log::one_line(r.set).c_str());
        const std::string error = a.rotate(r.set);
        if (!error.empty()) return admin::encode_error(error);
        return admin::encode_message("set " + r.set +
                                     ": fetching new credentials now; the old generation "
                                     "drains in PgBouncer");
    }
    if (r.command == "revoke-drained") {
        if (!a.revoke_drained) return not_available(r.command);
        log::info("admin socket: revoke-drained requested");
        std::string text;
        if (!a.revoke_drained(&text)) {
            return admin::encode_error(text.empty() ? "revoke-drained failed" : text);
        }
        return admin::encode_message(text.empty() ? "done" : text);
    }
    if (r.command == "reload") {
        if (!a.reload) return not_available(r.command);
        log::info("admin socket: reload requested");
        std::string error;
        const auto report = a.reload(&error);
        if (!report) {
            return admin::encode_error((error.empty() ? std::string("reload failed") : error) +
                                       "; the running configuration is unchanged");
        }
        return admin::encode_reload(*report);
    }
    if (r.command == "log-level") {
        const log::Level previous = log::level();
        const log::Level next = *log::parse_level(r.level);  // check_request made sure
        // Logged at info, before the change if the new level would hide it.
        const bool before = !(next == log::Level::kInfo || next == log::Level::kDebug);
        if (before) {
            log::info("admin socket: log level %s (was %s)", log::level_name(next),
                      log::level_name(previous));
        }
        log::set_level(next);
        if (!before) {
            log::info("admin socket: log level %s (was %s)", log::level_name(next),
                      log::level_name(previous));
        }
        return admin::encode_log_level(log::level_name(next), log::level_name(previous));
    }
    return admin::encode_error("unknown command '" + r.command +
                               "'; valid commands: " + admin::command_list());
}

}  // namespace

std::string AdminServer::answer(const admin::Request& request, const Actions& actions) {
    try {
        return run(request, actions);
    } catch (const std::exception& e) {
        log::error("admin socket: %s failed: %s", request.command.c_str(), e.what());
        return admin::encode_error(request.command + " failed: " + e.what());
    } catch (...) {
        return admin::encode_error(request.command + " failed");
    }
}

std::string AdminServer::allowed_text() const {
    std::string out;
    for (std::size_t i = 0; i < allowed_.size(); ++i) {
        if (i > 0) out += i + 1 == allowed_.size() ? " and " : ", ";
        const uid_t uid = allowed_[i];
        out += "uid " + std::to_string(uid);
        if (const passwd* pw = ::getpwuid(uid)) out += std::string(" (") + pw->pw_name + ")";
    }
    return out.empty() ? "nobody" : out;
}

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
            const std::string who = uid ? "uid " + std::to_string(*uid) : "a peer of unknown uid";
            log::warning("admin socket: refused a connection from %s (only %s may use it)",
                         who.c_str(), server->allowed_text().c_str());
            server->reply_and_close(
                    c, admin::encode_error("permission denied: " + who +
                                           " may not use the admin socket " + server->path() +
                                           "; only " + server->allowed_text() +
                                           " may: run pgbvctl as that user"));
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
                server.reply_and_close(
                        c, admin::encode_error("request line longer than " +
                                               std::to_string(admin::kMaxRequestLine) +
                                               " bytes; send one JSON object per line"));
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
