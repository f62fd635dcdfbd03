// The admin protocol between pgbv-controller and pgbvctl, defined once for both.
//
// Transport: the controller's admin Unix socket (mode 0600; the peer's uid must be the
// controller's or root's).  Each message is one JSON object on one line ending in '\n'.
// The client sends a request line, the controller answers with one response line; a
// connection may carry several exchanges and either side may close it.
//
// Requests:
//   {"command":"status"}
//   {"command":"rotate","set":"<name>"}      fetch new credentials for a set now
// Responses:
//   {"ok":true,"status":{...}}               to status; fields below (status_to_json)
//   {"ok":true}                              to rotate
//   {"ok":false,"error":"<one line>"}        to anything that failed
//
// The status object never holds a password or a token.  Times: seconds since the epoch
// (0 = none); TTLs: seconds (-1 = unknown/none).
//
//   {"health":"ok|degraded|failing","version":"0.1.0","now":..,"uptime":..,
//    "vault":{"address":..,"state":"unknown|reachable|unreachable","error":..,
//             "health":{"enabled":bool,"state":"off|unknown|active|standby|perf_standby|
//                       sealed|uninitialized|dr_secondary","code":..,"initialized":bool,
//                       "sealed":bool,"standby":bool,"version":..,"cluster_name":..,
//                       "checked_at":..,"error":..}},
//    "token":{"state":..,"method":..,"ttl":..,"expires":bool,"renewable":bool,
//             "max_ttl_reached":bool,"logins":..,"error":..,"auth_path":..,"role":..,
//             "batch":bool},
//    "plugin_clients":..,
//    "sets":[{"name":..,"state":..,"kind":"dynamic|static|kv","source":..,"mount":..,
//             "role":..,"username":..,"generation":..,
//             "lease_id":..,"lease_ttl":..,"renewable":bool,"max_ttl_reached":bool,
//             "deadline":..,"rotate_at":..,"draining":..,"error":..}, ...]}

#ifndef PGBV_CONTROLLER_ADMIN_PROTOCOL_HPP
#define PGBV_CONTROLLER_ADMIN_PROTOCOL_HPP

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "controller/status.hpp"

namespace pgbv::ctl::admin {

// A request line longer than this is refused and the connection closed.
inline constexpr std::size_t kMaxRequestLine = 4096;
// pgbvctl refuses a response line longer than this.
inline constexpr std::size_t kMaxResponseLine = 16 << 20;

struct Request {
    std::string command;  // "status" or "rotate"
    std::string set;      // for "rotate"
};

struct Response {
    bool ok = false;
    std::string error;             // when !ok
    std::optional<Status> status;  // for a status request
};

// Each encode_* returns one line, '\n' included.
std::string encode_request(const Request& request);
std::string encode_status(const Status& status);
std::string encode_ok();
std::string encode_error(std::string_view message);

// Each parse_* takes one line (with or without its '\n'); nullopt and `error` set if the
// line is not a valid message.
std::optional<Request> parse_request(std::string_view line, std::string* error);
std::optional<Response> parse_response(std::string_view line, std::string* error);

}  // namespace pgbv::ctl::admin

#endif  // PGBV_CONTROLLER_ADMIN_PROTOCOL_HPP
