// The plugin socket: PROTOCOL.md, controller side.

#include "controller/plugin_server.hpp"

#include <event2/buffer.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>

#include "controller/log.hpp"
#include "controller/version.hpp"

namespace pgbv::ctl {
namespace {

// How long a closing connection may take to flush its last frames.
constexpr int kFlushTimeoutSeconds = 5;

// How long accepting pauses when the process is out of file descriptors.
constexpr int kAcceptPauseSeconds = 1;

timeval to_timeval(Duration d) {
    timeval tv{};
    tv.tv_sec = static_cast<time_t>(d.count() / 1000);
    tv.tv_usec = static_cast<suseconds_t>((d.count() % 1000) * 1000);
    return tv;
}

}  // namespace

struct PluginServer::Client {
    enum class State { kAwaitHello, kReady, kClosing, kDead };

    PluginServer* server = nullptr;
    ClientId id = 0;
    uid_t uid = 0;
    State state = State::kAwaitHello;
    bool counted = true;    // counts against max_clients
    bool reported = false;  // client_closed() was called
    UniqueBufferevent bev;
    UniqueEvent hello_timer;
    wire::FrameDecoder decoder;
    std::string software;
};

PluginServer::PluginServer(event_base* base, UnixListener listener, PluginHandler& handler,
                           Options options)
    : base_(base), listener_(std::move(listener)), handler_(handler), options_(std::move(options)) {
    accept_event_.reset(
            event_new(base_, listener_.fd(), EV_READ | EV_PERSIST, &PluginServer::on_accept, this));
    resume_timer_.reset(evtimer_new(base_, &PluginServer::on_resume, this));
    reap_timer_.reset(evtimer_new(base_, &PluginServer::on_reap, this));
    if (!accept_event_ || !resume_timer_ || !reap_timer_) {
        throw std::runtime_error("cannot allocate the plugin socket's events");
    }
    event_add(accept_event_.get(), nullptr);
}

PluginServer::~PluginServer() = default;

std::uint32_t PluginServer::client_count() const {
    std::uint32_t n = 0;
    for (const auto& [id, c] : clients_)
        n += c->counted ? 1 : 0;
    return n;
}

bool PluginServer::allowed(uid_t uid) const {
    return std::find(options_.allowed_uids.begin(), options_.allowed_uids.end(), uid) !=
           options_.allowed_uids.end();
}

void PluginServer::on_accept(evutil_socket_t fd, short, void* self) {
    auto* server = static_cast<PluginServer*>(self);
    for (;;) {
        const int conn = ::accept4(fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (conn >= 0) {
            server->accept_one(conn);
            continue;
        }
        if (errno == EINTR || errno == ECONNABORTED) continue;
        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
            log::warning("plugin socket: cannot accept a connection: %s; pausing %ds",
                         std::strerror(errno), kAcceptPauseSeconds);
            event_del(server->accept_event_.get());
            timeval tv = {kAcceptPauseSeconds, 0};
            evtimer_add(server->resume_timer_.get(), &tv);
        } else if (errno != EAGAIN && errno != EWOULDBLOCK) {
            log::warning("plugin socket: accept failed: %s", std::strerror(errno));
        }
        return;
    }
}

void PluginServer::on_resume(evutil_socket_t, short, void* self) {
    auto* server = static_cast<PluginServer*>(self);
    if (!server->shutting_down_) event_add(server->accept_event_.get(), nullptr);
}

void PluginServer::accept_one(int fd) {
    auto client = std::make_unique<Client>();
    Client& c = *client;
    c.server = this;
    c.id = ++next_id_;
    c.bev.reset(bufferevent_socket_new(base_, fd, BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS));
    if (!c.bev) {
        ::close(fd);
        log::warning("plugin socket: cannot allocate a connection (out of memory?)");
        return;
    }
    bufferevent_setcb(c.bev.get(), &PluginServer::on_read, nullptr, &PluginServer::on_event, &c);
    const auto uid = peer_uid(fd);
    const std::uint32_t active = client_count();
    clients_.emplace(c.id, std::move(client));
    const bool admitted = !shutting_down_ && uid && allowed(*uid) &&
                          active < static_cast<std::uint32_t>(options_.max_clients);
    if (options_.metrics != nullptr) options_.metrics->plugin_connection(admitted);
    if (shutting_down_) {
        refuse(c, PGBV_ERR_SHUTTING_DOWN, "the controller is shutting down");
        return;
    }
    if (!uid || !allowed(*uid)) {
        const std::string who = uid ? "uid " + std::to_string(*uid) : "a peer of unknown uid";
        log::warning("plugin socket: refused %s: not in allowed_uids", who.c_str());
        refuse(c, PGBV_ERR_NOT_PERMITTED,
               who + " may not use this socket; add it to allowed_uids in the controller's "
                     "[controller] section");
        return;
    }
    c.uid = *uid;
    if (active >= static_cast<std::uint32_t>(options_.max_clients)) {
        log::warning(
                "plugin socket: refused a connection from uid %u: already %u clients "
                "(max_plugin_clients)",
                static_cast<unsigned>(*uid), active);
        refuse(c, PGBV_ERR_TOO_MANY_CLIENTS,
               "too many plugin connections (max_plugin_clients = " +
                       std::to_string(options_.max_clients) + ")");
        return;
    }
    c.hello_timer.reset(evtimer_new(base_, &PluginServer::on_hello_timeout, &c));
    if (c.hello_timer) {
        const timeval tv = to_timeval(options_.hello_timeout);
        evtimer_add(c.hello_timer.get(), &tv);
    }
    bufferevent_enable(c.bev.get(), EV_READ);
    log::debug("plugin #%llu: connected (uid %u)", static_cast<unsigned long long>(c.id),
               static_cast<unsigned>(c.uid));
}

void PluginServer::on_hello_timeout(evutil_socket_t, short, void* ctx) {
    auto& c = *static_cast<Client*>(ctx);
    if (c.state != Client::State::kAwaitHello) return;
    log::warning("plugin #%llu: no HELLO within %llds; closing",
                 static_cast<unsigned long long>(c.id),
                 static_cast<long long>(c.server->options_.hello_timeout.count() / 1000));
    c.server->refuse(c, PGBV_ERR_PROTOCOL, "no HELLO received in time");
}

void PluginServer::on_read(bufferevent* bev, void* ctx) {
    auto& c = *static_cast<Client*>(ctx);
    PluginServer& server = *c.server;
    evbuffer* in = bufferevent_get_input(bev);
    std::uint8_t buf[4096];
    while (evbuffer_get_length(in) > 0) {
        if (c.state != Client::State::kAwaitHello && c.state != Client::State::kReady) {
            evbuffer_drain(in, evbuffer_get_length(in));
            return;
        }
        const int n = evbuffer_remove(in, buf, sizeof buf);
        if (n <= 0) break;
        c.decoder.feed(buf, static_cast<std::size_t>(n));
        secure_wipe(buf, static_cast<std::size_t>(n));
        for (;;) {
            if (c.state != Client::State::kAwaitHello && c.state != Client::State::kReady) break;
            wire::Decoded d = c.decoder.next();
            if (d.need_more()) break;
            if (d.failed()) {
                log::warning("plugin #%llu: protocol error: %s; closing",
                             static_cast<unsigned long long>(c.id), d.error.c_str());
                server.refuse(c, PGBV_ERR_PROTOCOL, d.error);
                return;
            }
            server.handle(c, std::move(*d.message));
        }
    }
}

void PluginServer::handle(Client& c, wire::Message message) {
    const auto id = static_cast<unsigned long long>(c.id);
    if (c.state == Client::State::kAwaitHello) {
        auto* hello = std::get_if<wire::Hello>(&message);
        if (hello == nullptr) {
            const std::string why =
                    std::string("expected HELLO first, got ") + wire::type_name(message);
            log::warning("plugin #%llu: protocol error: %s; closing", id, why.c_str());
            refuse(c, PGBV_ERR_PROTOCOL, why);
            return;
        }
        c.hello_timer.reset();
        c.software = log::one_line(hello->software);
        if (hello->version != wire::kVersion) {
            const std::string why = "protocol version " + std::to_string(hello->version) +
                                    " is not supported; this controller speaks version " +
                                    std::to_string(wire::kVersion);
            log::warning("plugin #%llu (%s): %s; closing", id, c.software.c_str(), why.c_str());
            refuse(c, PGBV_ERR_VERSION, why);
            return;
        }
        if (!send(c, wire::Hello{wire::kVersion, kSoftware})) return;
        std::vector<wire::Credentials> snapshot = handler_.snapshot(c.id);
        for (const auto& creds : snapshot) {
            if (!send(c, creds)) return;
        }
        if (!send(c, wire::SnapshotDone{static_cast<std::uint32_t>(snapshot.size())})) return;
        c.state = Client::State::kReady;
        log::info("plugin #%llu connected (uid %u, %s); sent %zu credential set%s", id,
                  static_cast<unsigned>(c.uid), c.software.empty() ? "?" : c.software.c_str(),
                  snapshot.size(), snapshot.size() == 1 ? "" : "s");
        return;
    }
    if (auto* drained = std::get_if<wire::Drained>(&message)) {
        handler_.drained(c.id, *drained);
    } else if (auto* failed = std::get_if<wire::LoginFailed>(&message)) {
        handler_.login_failed(c.id, *failed);
    } else if (auto* error = std::get_if<wire::Error>(&message)) {
        log::warning("plugin #%llu sent ERROR %u: %s; closing", id,
                     static_cast<unsigned>(error->code), log::one_line(error->message).c_str());
        close_after_flush(c);
    } else {
        const std::string why = std::holds_alternative<wire::Hello>(message)
                                        ? std::string("HELLO sent twice")
                                        : std::string(wire::type_name(message)) +
                                                  " is sent by the controller, not the plugin";
        log::warning("plugin #%llu: protocol error: %s; closing", id, why.c_str());
        refuse(c, PGBV_ERR_PROTOCOL, why);
    }
}

template <class M>
bool PluginServer::send(Client& c, const M& message) {
    std::vector<std::uint8_t> frame;
    try {
        frame = wire::encode(message);
    } catch (const std::exception& e) {
        // Only possible for a message we built wrongly; never drop the whole server for it.
        log::error("plugin #%llu: cannot encode %s: %s", static_cast<unsigned long long>(c.id),
                   wire::type_name(message), e.what());
        return true;
    }
    write_frame(c, frame);
    wire::wipe(frame);
    return c.state != Client::State::kDead;
}

void PluginServer::write_frame(Client& c, const std::vector<std::uint8_t>& frame) {
    if (c.state == Client::State::kDead) return;
    evbuffer* out = bufferevent_get_output(c.bev.get());
    if (evbuffer_get_length(out) + frame.size() > options_.max_output) {
        log::warning("plugin #%llu: not reading (%zu bytes waiting); dropping the connection",
                     static_cast<unsigned long long>(c.id), evbuffer_get_length(out));
        kill(c);
        return;
    }
    bufferevent_write(c.bev.get(), frame.data(), frame.size());
}

std::vector<ClientId> PluginServer::broadcast(const wire::Credentials& credentials) {
    std::vector<ClientId> sent;
    std::vector<std::uint8_t> frame;
    try {
        frame = wire::encode(credentials);
    } catch (const std::exception& e) {
        log::error("set %s: cannot encode its credentials: %s", credentials.set.c_str(), e.what());
        return sent;
    }
    for (auto& [id, c] : clients_) {
        if (c->state != Client::State::kReady) continue;
        write_frame(*c, frame);
        if (c->state == Client::State::kReady) sent.push_back(id);
    }
    wire::wipe(frame);
    return sent;
}

void PluginServer::refuse(Client& c, std::uint16_t code, const std::string& message) {
    std::string text = message.substr(0, PGBV_WIRE_MAX_ERROR_MESSAGE);
    send(c, wire::Error{code, text});
    close_after_flush(c);
}

void PluginServer::close_after_flush(Client& c) {
    if (c.state == Client::State::kDead || c.state == Client::State::kClosing) return;
    c.state = Client::State::kClosing;
    c.counted = false;
    c.hello_timer.reset();
    if (!c.reported) {
        c.reported = true;
        handler_.client_closed(c.id);
    }
    bufferevent_disable(c.bev.get(), EV_READ);
    if (evbuffer_get_length(bufferevent_get_output(c.bev.get())) == 0) {
        kill(c);
        return;
    }
    bufferevent_setcb(c.bev.get(), nullptr, &PluginServer::on_flushed, &PluginServer::on_event, &c);
    const timeval tv = {kFlushTimeoutSeconds, 0};
    bufferevent_set_timeouts(c.bev.get(), nullptr, &tv);
}

void PluginServer::on_flushed(bufferevent* bev, void* ctx) {
    auto& c = *static_cast<Client*>(ctx);
    if (evbuffer_get_length(bufferevent_get_output(bev)) == 0) c.server->kill(c);
}

void PluginServer::on_event(bufferevent*, short what, void* ctx) {
    auto& c = *static_cast<Client*>(ctx);
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT)) {
        if (c.state == Client::State::kReady) {
            log::info("plugin #%llu disconnected", static_cast<unsigned long long>(c.id));
        }
        c.server->kill(c);
    }
}

// Marks the connection dead; it is freed from the loop, never inside its own callback.
void PluginServer::kill(Client& c) {
    if (c.state == Client::State::kDead) return;
    c.state = Client::State::kDead;
    c.counted = false;
    c.hello_timer.reset();
    if (!c.reported) {
        c.reported = true;
        handler_.client_closed(c.id);
    }
    bufferevent_disable(c.bev.get(), EV_READ | EV_WRITE);
    const timeval zero = {0, 0};
    evtimer_add(reap_timer_.get(), &zero);
}

void PluginServer::on_reap(evutil_socket_t, short, void* self) {
    auto* server = static_cast<PluginServer*>(self);
    for (auto it = server->clients_.begin(); it != server->clients_.end();) {
        if (it->second->state == Client::State::kDead) {
            it = server->clients_.erase(it);
        } else {
            ++it;
        }
    }
}

void PluginServer::shutdown() {
    if (shutting_down_) return;
    shutting_down_ = true;
    event_del(accept_event_.get());
    evtimer_del(resume_timer_.get());
    for (auto& [id, c] : clients_) {
        if (c->state == Client::State::kAwaitHello || c->state == Client::State::kReady) {
            refuse(*c, PGBV_ERR_SHUTTING_DOWN, "the controller is shutting down");
        }
    }
}

}  // namespace pgbv::ctl
