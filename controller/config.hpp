// The controller's configuration file: an INI file in PgBouncer's style, checked whole.
//
// Sections: [vault] (how to reach and log in to Vault), [controller] (sockets, logging)
// and one [set.<name>] per credential set.  Vault's standard environment variables
// override the file: VAULT_ADDR, VAULT_CACERT, VAULT_CAPATH, VAULT_NAMESPACE,
// VAULT_CLIENT_CERT, VAULT_CLIENT_KEY, VAULT_TLS_SERVER_NAME, VAULT_SKIP_VERIFY, and
// VAULT_TOKEN (used instead of token_file when auth_method = token).  Every key is
// documented in controller/CONFIG.md.
//
// Any problem stops start-up with one message "file:line: what is wrong" (or
// "file: ..." for a problem of the file as a whole, "VAULT_ADDR: ..." for one of the
// environment).  Relative paths in the file are relative to the file's directory.
//
// The configuration holds no secret: the token and the AppRole secret ID are read from
// their files (or the environment) by auth_source when needed.

#ifndef PGBV_CONTROLLER_CONFIG_HPP
#define PGBV_CONTROLLER_CONFIG_HPP

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "controller/clock.hpp"
#include "controller/log.hpp"

namespace pgbv::ctl {

enum class AuthMethod { kToken, kAppRole, kKubernetes, kJwt, kCert };

// "token", "approle", "kubernetes", "jwt", "cert": as written in auth_method.
const char* auth_method_name(AuthMethod method);

struct VaultSettings {
    std::string address;     // "https://host:port", without a trailing slash
    std::string name_space;  // X-Vault-Namespace; empty: not sent
    std::string ca_file;
    std::string ca_path;
    AuthMethod auth_method = AuthMethod::kToken;
    std::string token_file;       // auth_method token; empty when the token is in VAULT_TOKEN
    bool token_from_env = false;  // VAULT_TOKEN is set and overrides token_file
    std::string role_id_file;     // auth_method approle
    std::string secret_id_file;
    bool secret_id_wrapped = false;  // secret_id_file holds a response-wrapping token
    // Mount path of the auth method, without "auth/"; after loading, never empty (the
    // method's name by default).  `approle_mount` is the old key's name and value, kept
    // equal to auth_mount for approle ("approle" otherwise).
    std::string auth_mount;
    std::string approle_mount = "approle";
    std::string auth_role;  // kubernetes, jwt (required), cert (optional); never approle/token
    std::string jwt_file;   // kubernetes, jwt: re-read at every login
    // TLS towards Vault.
    std::string client_cert;  // PEM; required for cert, allowed for any method
    std::string client_key;
    std::string tls_server_name;  // verify Vault's certificate against this name, send as SNI
    bool tls_skip_verify = false;
    Duration health_interval = std::chrono::seconds(60);  // 0: no sys/health polling
    Duration request_timeout = std::chrono::seconds(10);
    Duration retry_min = std::chrono::seconds(1);
    Duration retry_max = std::chrono::seconds(30);
};

// A TCP address to listen on: host (an IPv4 or IPv6 literal, without brackets, or a name)
// and port (0: any free port).
struct ListenAddress {
    std::string host;
    std::uint16_t port = 0;

    bool operator==(const ListenAddress&) const = default;
};

// "host:port" or "[v6]:port" -> ListenAddress; nullopt if malformed.
std::optional<ListenAddress> parse_listen_address(std::string_view text);

struct ControllerSettings {
    std::string plugin_socket;
    mode_t plugin_socket_mode = 0660;
    std::optional<gid_t> plugin_socket_group;
    std::vector<uid_t> allowed_uids;  // default: the controller's own uid
    int max_plugin_clients = 16;
    std::string admin_socket;  // empty: no admin socket
    mode_t admin_socket_mode = 0600;
    log::Level log_level = log::Level::kInfo;
    log::Format log_format = log::Format::kText;
    // On SIGTERM/SIGINT: wait (at most shutdown_timeout) for PgBouncer to close its
    // servers, then revoke every lease.
    bool revoke_on_shutdown = false;
    Duration shutdown_timeout = std::chrono::seconds(30);
    // The HTTP endpoint (/metrics, /healthz, /readyz); nullopt: http_listen = off.
    std::optional<ListenAddress> http_listen = ListenAddress{"127.0.0.1", 9439};
};

// Where a set's credentials come from in Vault.
enum class SecretKind {
    kDynamic,  // <mount>/creds/<role>: a new user per lease (database dynamic role)
    kStatic,   // <mount>/static-creds/<role>: one user, password rotated by Vault
    kKv,       // <mount>/data/<path>: a user and password stored in KV version 2
};

// "dynamic", "static", "kv".
const char* secret_kind_name(SecretKind kind);

struct SetSettings {
    std::string name;  // 1-63 of [A-Za-z0-9_.-], as on the wire
    SecretKind kind = SecretKind::kDynamic;
    std::string mount = "database";                        // "secret" for kv unless set
    std::string role;                                      // dynamic, static
    std::string path;                                      // kv: the secret's path under the mount
    std::string username_field = "username";               // kv
    std::string password_field = "password";               // kv
    Duration refresh_interval = std::chrono::seconds(60);  // kv: re-read interval
    Duration rotation_margin = std::chrono::seconds(60);   // dynamic

    bool operator==(const SetSettings&) const = default;
};

struct Config {
    std::string path;
    VaultSettings vault;
    ControllerSettings controller;
    std::vector<SetSettings> sets;  // in file order; at least one
};

// Looks up an environment variable; nullptr when unset.  Injected so tests need not
// touch the process environment.
using Getenv = std::function<const char*(const char*)>;

struct ConfigResult {
    std::optional<Config> config;  // set on success
    std::string error;             // set on failure: "file:line: what is wrong"
};

// Reads and checks the file at `path`.
ConfigResult load_config(const std::string& path, const Getenv& getenv);

// Checks `text` as if read from `path` (which names it in messages and anchors
// relative paths).
ConfigResult parse_config(std::string_view text, const std::string& path, const Getenv& getenv);

// Parses "10", "10s", "500ms", "5m", "1h" (a bare number is seconds); nullopt if invalid.
std::optional<Duration> parse_duration(std::string_view text);

// Checks a Vault address: http(s)://host[:port][/]; returns it without the trailing
// slash, or nullopt.
std::optional<std::string> normalize_vault_address(std::string_view text);

}  // namespace pgbv::ctl

#endif  // PGBV_CONTROLLER_CONFIG_HPP
