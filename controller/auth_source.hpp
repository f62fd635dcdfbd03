// Where the controller's Vault identity comes from: a token, or an AppRole pair.
//
// Token method: VAULT_TOKEN (taken out of the environment once, at start, and wiped
// there) or token_file, which is re-read on every use by the token keeper, so that a
// Vault Agent sink that rewrites it is followed.  AppRole: role_id_file and
// secret_id_file, re-read at every login (a new secret ID may have been delivered).
//
// Files are read whole (at most 64 KiB), trailing whitespace removed; an empty file is
// an error.  Errors name the file and never contain its content.

#ifndef PGBV_CONTROLLER_AUTH_SOURCE_HPP
#define PGBV_CONTROLLER_AUTH_SOURCE_HPP

#include <string>

#include "controller/config.hpp"
#include "pgbv/secret.hpp"

namespace pgbv::ctl {

class AuthSource {
public:
    // `env_token`: the value of VAULT_TOKEN when settings.token_from_env (see
    // take_env_token()); ignored otherwise.
    AuthSource(const VaultSettings& settings, Secret env_token);

    AuthMethod method() const { return method_; }
    const char* method_name() const { return method_ == AuthMethod::kToken ? "token" : "approle"; }
    const std::string& approle_mount() const { return approle_mount_; }

    // Where the token comes from, for messages: "VAULT_TOKEN" or the file's path.
    std::string token_origin() const;

    // Token method: the token as it is now.  False and `error` set if it cannot be read.
    bool read_token(Secret* token, std::string* error) const;

    // AppRole: the pair as it is now.
    bool read_approle(Secret* role_id, Secret* secret_id, std::string* error) const;

    // Moves VAULT_TOKEN out of the process environment: returns its value, overwrites
    // the environment's copy and unsets it, so that it shows neither in
    // /proc/<pid>/environ nor in any child's environment.
    static Secret take_env_token();

    // Reads a secret file as described above.
    static bool read_secret_file(const std::string& path, Secret* out, std::string* error);

private:
    AuthMethod method_;
    std::string token_file_;
    Secret env_token_;
    std::string role_id_file_;
    std::string secret_id_file_;
    std::string approle_mount_;
};

}  // namespace pgbv::ctl

#endif  // PGBV_CONTROLLER_AUTH_SOURCE_HPP
