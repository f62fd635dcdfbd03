// Where a credential set's secrets come from: one small strategy per secret kind, so that
// credential_set's state machine (when to read, push, drain, revoke) need not know which.
//
//   dynamic  GET <mount>/creds/<role>         a new user per read, under a lease
//   static   GET <mount>/static-creds/<role>  one user; Vault rotates its password and
//                                             reports the time to the next rotation (ttl)
//   kv       GET <mount>/data/<path>          a user and password stored in KV version 2,
//                                             with the secret's version
//
// Only a dynamic read yields a lease (something to renew and revoke).  A source holds no
// state between reads: what changed is judged by the credential set.

#ifndef PGBV_CONTROLLER_SECRET_SOURCE_HPP
#define PGBV_CONTROLLER_SECRET_SOURCE_HPP

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "controller/config.hpp"
#include "controller/vault_client.hpp"
#include "pgbv/secret.hpp"

namespace pgbv::ctl {

class SecretSource {
public:
    // One read's result, whatever the kind.
    struct Fetched {
        std::string username;
        Secret password;
        std::string lease_id;  // dynamic only; empty: nothing to renew or revoke
        bool renewable = false;
        Duration ttl{0};            // dynamic: the lease's TTL; static: until Vault's next rotation
        std::int64_t version = 0;   // kv: data.metadata.version (0: none sent)
        std::string last_rotation;  // static: last_vault_rotation as Vault sent it
    };
    using Done = std::function<void(Result<Fetched>)>;

    virtual ~SecretSource() = default;

    SecretKind kind() const { return kind_; }
    // Whether reads yield leases (renewed, revoked, bound to the token that read them).
    bool leased() const { return kind_ == SecretKind::kDynamic; }
    // What is read, for logs and status: "database/creds/app", "secret/data/apps/db".
    const std::string& path() const { return path_; }

    // Reads the secret with `token`; `done` runs later, from the event loop, unless the
    // returned Pending is destroyed first.
    virtual VaultClient::Pending fetch(VaultClient& vault, const Secret& token,
                                       Done done) const = 0;

protected:
    SecretSource(SecretKind kind, std::string path) : kind_(kind), path_(std::move(path)) {}

private:
    SecretKind kind_;
    std::string path_;
};

// The source for a set's settings (kind, mount, role or path, field names).
std::unique_ptr<SecretSource> make_secret_source(const SetSettings& settings);

}  // namespace pgbv::ctl

#endif  // PGBV_CONTROLLER_SECRET_SOURCE_HPP
