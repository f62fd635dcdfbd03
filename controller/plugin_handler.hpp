// What the plugin socket server asks of the controller: the interface between them, so
// that the server can be tested without Vault and the controller without sockets.

#ifndef PGBV_CONTROLLER_PLUGIN_HANDLER_HPP
#define PGBV_CONTROLLER_PLUGIN_HANDLER_HPP

#include <cstdint>
#include <vector>

#include "pgbv/wire_codec.hpp"

namespace pgbv::ctl {

using ClientId = std::uint64_t;

class PluginHandler {
public:
    virtual ~PluginHandler() = default;

    // The snapshot for a plugin that just said HELLO: the current credentials of every
    // set that has some.  `client` is from then on a holder of them.
    virtual std::vector<wire::Credentials> snapshot(ClientId client) = 0;

    virtual void drained(ClientId client, const wire::Drained& message) = 0;
    virtual void login_failed(ClientId client, const wire::LoginFailed& message) = 0;

    // The connection is gone (closed by either side).
    virtual void client_closed(ClientId client) = 0;
};

}  // namespace pgbv::ctl

#endif  // PGBV_CONTROLLER_PLUGIN_HANDLER_HPP
