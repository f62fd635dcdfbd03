// The controller's configuration file: an INI file in PgBouncer's style, checked whole.
//
// Sections: [vault] (how to reach and log in to Vault), [controller] (sockets, logging)
// and one [set.<name>] per credential set.  Vault's standard environment variables
// override the file: VAULT_ADDR, VAULT_CACERT, VAULT_CAPATH, VAULT_NAMESPACE, and
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

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "controller/clock.hpp"
#include "controller/log.hpp"

namespace pgbv::ctl {

enum class AuthMethod { kToken, kAppRole };

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
    std::string approle_mount = "approle";
    Duration request_timeout = std::chrono::seconds(10);
    Duration retry_min = std::chrono::seconds(1);
    Duration retry_max = std::chrono::seconds(30);
};

struct ControllerSettings {
    std::string plugin_socket;
    mode_t plugin_socket_mode = 0660;
    std::optional<gid_t> plugin_socket_group;
    std::vector<uid_t> allowed_uids;  // default: the controller's own uid
    int max_plugin_clients = 16;
    std::string admin_socket;  // empty: no admin socket
    log::Level log_level = log::Level::kInfo;
};

struct SetSettings {
    std::string name;  // 1-63 of [A-Za-z0-9_.-], as on the wire
    std::string mount = "database";
    std::string role;
    Duration rotation_margin = std::chrono::seconds(60);
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
