// The admin protocol between pgbv-controller and pgbvctl, defined once for both.
//
// Transport: the controller's admin Unix socket (admin_socket_mode, 0600 by default; the
// peer's uid must be the controller's or root's).  Each message is one JSON object on one
// line ending in '\n'.  The client sends a request line, the controller answers with one
// response line; a connection may carry several exchanges and either side may close it.
// A line that is not a JSON object with a "command" string, or longer than
// kMaxRequestLine, is answered with an error and the connection closed.
//
// Requests and their answers:
//   {"command":"status"}                 {"ok":true,"status":{...}}       (below)
//   {"command":"sets"}                   {"ok":true,"now":..,"sets":[{set}, ...]}
//   {"command":"leases"}                 {"ok":true,"now":..,"leases":[{lease}, ...]}
//   {"command":"rotate","set":"<name>"}  {"ok":true,"message":".."}  fetch new credentials now
//   {"command":"revoke-drained"}         {"ok":true,"message":".."}  revoke every drained
//                                        old generation's lease now
//   {"command":"reload"}                 {"ok":true,"reload":{"added":[..],"changed":[..],
//                                         "removed":[..],"restart_needed":[..]}}
//   {"command":"log-level","level":"error|warning|info|debug"}
//                                        {"ok":true,"level":"debug","previous":"info"}
//   anything that failed                 {"ok":false,"error":"<one line>"}
//
// No answer ever holds a password or a token.  Times: seconds since the epoch (0 = none);
// TTLs: seconds (-1 = unknown/none).
//
// status: {"health":"ok|degraded|failing","version":"0.1.0","now":..,"uptime":..,
//    "vault":{"address":..,"state":"unknown|reachable|unreachable","error":..,
//             "health":{"enabled":bool,"state":"off|unknown|active|standby|perf_standby|
//                       sealed|uninitialized|dr_secondary","code":..,"initialized":bool,
//                       "sealed":bool,"standby":bool,"version":..,"cluster_name":..,
//                       "checked_at":..,"error":..}},
//    "token":{"state":..,"method":..,"ttl":..,"expires":bool,"renewable":bool,
//             "max_ttl_reached":bool,"logins":..,"error":..,"auth_path":..,"role":..,
//             "batch":bool},
//    "plugin_clients":..,
//    "sets":[{set}, ...]}
// {set}: {"name":..,"state":..,"kind":"dynamic|static|kv","source":..,"mount":..,"role":..,
//    "username":..,"generation":..,"lease_id":..,"lease_ttl":..,"renewable":bool,
//    "max_ttl_reached":bool,"deadline":..,"rotate_at":..,"renew_at":..,"draining":..,
//    "error":..,"generations":[{"generation":..,"username":..,"lease_id":..,
//    "state":"current|in_use|drained","lease_ttl":..,"deadline":..,"renewable":bool,
//    "holders":..,"revoke_failures":..}, ...]}
//    draining: old generations still in use by PgBouncer (not yet DRAINED) or waiting for
//    their revocation; the controller cannot see PgBouncer's server counts.
// {lease}: one generation of one set: {"set":..} plus the fields of a "generations" entry.

#ifndef PGBV_CONTROLLER_ADMIN_PROTOCOL_HPP
#define PGBV_CONTROLLER_ADMIN_PROTOCOL_HPP

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "controller/status.hpp"

namespace pgbv::ctl::admin {

// A request line longer than this is refused and the connection closed.
inline constexpr std::size_t kMaxRequestLine = 4096;
// pgbvctl refuses a response line longer than this.
inline constexpr std::size_t kMaxResponseLine = 16 << 20;

// Every command, in the order `pgbvctl --help` and the unknown-command error list them.
inline constexpr const char* kCommands[] = {"status",         "sets",   "leases",   "rotate",
                                            "revoke-drained", "reload", "log-level"};
// "status, sets, leases, rotate, revoke-drained, reload, log-level".
std::string command_list();
bool is_command(std::string_view name);

struct Request {
    std::string command;
    std::string set;    // for "rotate"
    std::string level;  // for "log-level"
};

// One row of `leases`: a generation of a set.
struct Lease {
    std::string set;
    GenerationStatus generation;
};

struct ReloadReport {
    std::vector<std::string> added;
    std::vector<std::string> changed;
    std::vector<std::string> removed;
    std::vector<std::string> restart_needed;  // keys (e.g. "[vault] address") not applied
};

struct Response {
    bool ok = false;
    std::string error;             // when !ok
    std::optional<Status> status;  // status
    std::int64_t now = 0;          // sets, leases
    std::optional<std::vector<SetStatus>> sets;
    std::optional<std::vector<Lease>> leases;
    std::string message;  // rotate, revoke-drained
    std::optional<ReloadReport> reload;
    std::string level;     // log-level: the level now
    std::string previous;  // log-level: the level before
};

// Each encode_* returns one line, '\n' included.
std::string encode_request(const Request& request);
std::string encode_status(const Status& status);
std::string encode_sets(const Status& status);
std::string encode_leases(const Status& status);
std::string encode_message(std::string_view message);
std::string encode_reload(const ReloadReport& report);
std::string encode_log_level(std::string_view level, std::string_view previous);
std::string encode_ok();
std::string encode_error(std::string_view message);

// Each parse_* takes one line (with or without its '\n'); nullopt and `error` set if the
// line is not a valid message.  parse_request checks the JSON shape only, not whether the
// command exists (check_request does).
std::optional<Request> parse_request(std::string_view line, std::string* error);
std::optional<Response> parse_response(std::string_view line, std::string* error);

// "" if `request` names a known command with the arguments it needs; otherwise what is
// wrong, naming the valid commands or levels.
std::string check_request(const Request& request);

}  // namespace pgbv::ctl::admin

#endif  // PGBV_CONTROLLER_ADMIN_PROTOCOL_HPP
