// Where the controller's Vault identity comes from: a token, or what a login needs.
//
// Token method: VAULT_TOKEN (taken out of the environment once, at start, and wiped
// there) or token_file, which is re-read on every use by the token keeper, so that a
// Vault Agent sink that rewrites it is followed.  AppRole: role_id_file and
// secret_id_file, re-read at every login (a new secret ID may have been delivered); with
// secret_id_wrapped the secret ID file holds a response-wrapping token, which the token
// keeper unwraps.  Kubernetes and JWT: auth_role and jwt_file, the JWT re-read at every
// login (projected service-account tokens rotate).  Cert: the TLS client certificate
// does the work (curl_transport); the body only names the role, if any.
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
    const char* method_name() const { return auth_method_name(method_); }
    const std::string& mount() const { return mount_; }
    // Kept for callers of the AppRole-only days: the auth mount.
    const std::string& approle_mount() const { return mount_; }
    const std::string& role() const { return role_; }
    bool secret_id_wrapped() const { return secret_id_wrapped_; }
    const std::string& secret_id_file() const { return secret_id_file_; }

    // Names the login for messages, never with a secret: `kubernetes login as role "app"
    // at auth/kubernetes`, `approle login at auth/approle`.
    std::string login_description() const;

    // What to do about a login that Vault refused with `status`, for the end of the
    // error message ("check auth_role in [vault] and the role in Vault").
    std::string login_hint(long status) const;

    // Where the token comes from, for messages: "VAULT_TOKEN" or the file's path.
    std::string token_origin() const;

    // Token method: the token as it is now.  False and `error` set if it cannot be read.
    bool read_token(Secret* token, std::string* error) const;

    // AppRole: the pair as it is now.  With secret_id_wrapped, `secret_id` is the
    // wrapping token as the file holds it.
    bool read_approle(Secret* role_id, Secret* secret_id, std::string* error) const;

    // Kubernetes, JWT: the JWT as jwt_file holds it now; the error says what to do.
    bool read_jwt(Secret* jwt, std::string* error) const;

    // The JSON body of POST auth/<mount>/login for every method but token, files read
    // now.  AppRole: `secret_id`, if not null, replaces secret_id_file (an unwrapped
    // secret ID).  False and `error` set when a file cannot be read.
    bool login_body(const Secret* secret_id, Secret* body, std::string* error) const;

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
    bool secret_id_wrapped_;
    std::string mount_;
    std::string role_;
    std::string jwt_file_;
};

}  // namespace pgbv::ctl

#endif  // PGBV_CONTROLLER_AUTH_SOURCE_HPP
