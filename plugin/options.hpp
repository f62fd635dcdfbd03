// Parsing of credential_plugin_options, the plugin's settings from pgbouncer.ini.
#ifndef PGBV_PLUGIN_OPTIONS_HPP
#define PGBV_PLUGIN_OPTIONS_HPP

#include <chrono>
#include <cstddef>
#include <string>
#include <string_view>
#include <variant>

namespace pgbv::plugin {

// The plugin's settings.  Defaults are those used when a key is absent.
struct Options {
    // Unix socket of pgbv-controller.  Required; absolute, because PgBouncer changes its
    // working directory when it daemonises.
    std::string socket_path;
    // Reconnect delays: exponential from min to max, with jitter.
    std::chrono::milliseconds reconnect_min{100};
    std::chrono::milliseconds reconnect_max{5000};
    // DRAINED/LOGIN_FAILED reports kept while the controller is away; the oldest are
    // dropped beyond this.
    std::size_t max_pending_reports = 1024;
    // A connection whose HELLO and snapshot are not complete by then is closed.
    std::chrono::milliseconds handshake_timeout{10000};
};

// Parses credential_plugin_options: keys and values separated by spaces or tabs, as in
//     socket=/run/pgbv/plugin.sock reconnect_min_ms=100 reconnect_max_ms=5000
// Keys: socket (required), reconnect_min_ms, reconnect_max_ms, max_pending_reports,
// handshake_timeout_ms.  Values cannot contain spaces.
//
// Returns the Options, or a one-line reason naming the offending key (unknown key,
// duplicate key, missing value, bad number, number out of range, missing socket).
std::variant<Options, std::string> parse_options(std::string_view text);

}  // namespace pgbv::plugin

#endif  // PGBV_PLUGIN_OPTIONS_HPP
