// What the controller reports about itself: plain data for the admin socket and pgbvctl.
//
// Never holds a password or a token.  Times are wall-clock seconds since the epoch
// (0 = unknown or none) or durations in whole seconds (-1 = unknown or none).

#ifndef PGBV_CONTROLLER_STATUS_HPP
#define PGBV_CONTROLLER_STATUS_HPP

#include <cstdint>
#include <string>
#include <vector>

namespace pgbv::ctl {

// One generation of a set's credentials that the controller still tracks: the current one
// and the older ones not yet forgotten (waiting for DRAINED, their revocation or their end).
struct GenerationStatus {
    std::uint64_t number = 0;
    std::string username;
    std::string lease_id;         // empty for a static role or a KV secret
    std::string state;            // current, in_use (not yet DRAINED), drained (revoking)
    std::int64_t lease_ttl = -1;  // seconds until its lease ends; -1: none or unknown
    std::int64_t deadline = 0;    // wall clock when it stops working for sure (0: none)
    bool renewable = false;
    std::uint32_t holders = 0;  // plugin connections that received it and have not
                                // reported it drained
    std::uint32_t revoke_failures = 0;
};

struct SetStatus {
    std::string name;
    std::string state;  // waiting_for_token, fetching, serving, rotating, degraded, expired
    std::string mount;
    std::string role;
    std::string kind;      // dynamic, static, kv
    std::string source;    // what is read: "database/static-creds/app", "secret/data/apps/db v3"
    std::string username;  // empty before the first fetch
    std::uint64_t generation = 0;
    std::string lease_id;
    std::int64_t lease_ttl = -1;  // seconds until the current lease ends
    bool renewable = false;
    bool max_ttl_reached = false;  // the last renewal was capped
    std::int64_t deadline = 0;     // when the current credentials stop working for sure
                                   // (static role: Vault's next rotation; kv: none)
    std::int64_t rotate_at = 0;    // when new ones will be fetched (leaseless: read again)
    std::uint32_t draining = 0;    // older generations waiting for DRAINED or their deadline
    std::string last_error;        // the last Vault failure while it lasts; one line
    std::int64_t renew_at = 0;     // when the lease is renewed next (0: not planned)
    std::vector<GenerationStatus> generations;  // current first, then older ones
};

struct TokenStatus {
    std::string state;      // none, logging_in, valid, expired, failing
    std::string method;     // token, approle, kubernetes, jwt, cert
    std::string auth_path;  // "auth/<mount>" of the login; empty for the token method
    std::string role;       // auth_role, if any
    bool batch = false;     // a batch token: never renewed
    std::int64_t ttl = -1;  // seconds left; -1: unknown, or no expiry (see expires)
    bool expires = true;    // false for a token without TTL (e.g. root)
    bool renewable = false;
    bool max_ttl_reached = false;
    std::uint64_t logins = 0;
    std::string last_error;
};

// The last sys/health answer (vault_health.hpp).
struct VaultHealthStatus {
    bool enabled = false;  // health_interval > 0
    // off, unknown (no answer yet), active, standby, perf_standby, sealed, uninitialized,
    // dr_secondary
    std::string state;
    long code = 0;  // HTTP status of the last answer
    bool initialized = false;
    bool sealed = false;
    bool standby = false;
    std::string version;
    std::string cluster_name;
    std::int64_t checked_at = 0;  // wall clock of the last check, answered or not
    std::string error;            // the last check failed: why; one line
};

struct Status {
    std::string health;  // ok, degraded, failing: see admin_protocol.hpp
    std::string version;
    std::int64_t now = 0;  // the controller's wall clock, for reading the times below
    std::int64_t uptime = 0;
    std::string vault_address;
    std::string vault_state;  // unknown, reachable, unreachable
    std::string vault_error;
    VaultHealthStatus vault_health;
    TokenStatus token;
    std::uint32_t plugin_clients = 0;
    std::vector<SetStatus> sets;
};

}  // namespace pgbv::ctl

#endif  // PGBV_CONTROLLER_STATUS_HPP
