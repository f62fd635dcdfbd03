// An in-memory Vault behind the HttpTransport seam, on the fake clock, for the
// controller's unit tests.
//
// It models what the controller relies on (vault-api.md): AppRole login, lookup-self,
// renew-self with max-TTL capping and its warning, <mount>/creds/<role> leases tied to
// the token that created them, lease renewal with capping, revocation, leases dying with
// their token, kubernetes/jwt/cert logins, batch tokens, wrapped AppRole secret IDs
// (sys/wrapping/lookup and unwrap), sys/health, static roles
// (<mount>/static-creds/<role>, rotated on schedule by a fake clock timer, optionally late
// as Vault's rotation queue is), KV version 2 (<mount>/data/<path>, versions, deleted
// versions), Vault's error bodies and codes.  Faults (refused, timeout, sealed, 500,
// 429, garbage, truncated, huge) and per-request scripts are injectable, and every
// request is recorded.  Answers arrive after `latency` on the fake clock, never
// synchronously.
//
// It is not the Python Vault double of tests/vault_double (which runs real SQL); this one
// exists so that lifecycle tests run in milliseconds.

#ifndef PGBV_TESTS_CONTROLLER_FAKE_VAULT_HPP
#define PGBV_TESTS_CONTROLLER_FAKE_VAULT_HPP

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "controller/http.hpp"
#include "fake_clock.hpp"

namespace pgbv::ctl::testing {

class FakeVault final : public HttpTransport {
public:
    static constexpr const char* kAddress = "http://vault.test:8200";

    struct Role {
        Duration ttl = std::chrono::seconds(60);
        Duration max_ttl = std::chrono::seconds(600);
        bool renewable = true;
    };
    struct Token {
        std::string value;
        MonoTime issued;
        MonoTime expire;
        MonoTime max_end;
        bool renewable = true;
        bool revoked = false;
        Duration creation_ttl{0};
        bool batch = false;
    };
    // A response-wrapping token that wraps an AppRole secret ID.
    struct Wrapped {
        std::string creation_path;  // e.g. "auth/approle/role/app/secret-id"
        std::string secret_id;
        bool used = false;
        MonoTime expire;
    };
    struct Lease {
        std::string id;
        std::string token;  // the token that created it
        std::string username;
        std::string password;
        MonoTime issued;
        MonoTime expire;
        MonoTime max_end;
        bool renewable = true;
        bool revoked_by_request = false;
        std::optional<MonoTime> revoked_at;
    };
    // A database static role: one user; its password changes every rotation_period,
    // queue_lag after it is due (Vault rotates from a queue checked every few seconds).
    struct StaticRole {
        std::string username;
        std::string password;
        Duration rotation_period = std::chrono::seconds(60);
        Duration queue_lag{0};
        MonoTime last_rotation;
        int rotations = 0;
    };
    // A KV version 2 secret: its latest version's data (a JSON object) and version.
    struct KvSecret {
        std::string data_json;
        std::int64_t version = 0;
        bool deleted = false;  // the latest version was deleted (soft)
    };
    struct Request {
        MonoTime at;
        std::string method;
        std::string path;  // without "/v1/"
        std::string token;
        std::string body;
        std::vector<std::string> headers;
    };
    enum class Fault {
        kNone,
        kRefused,
        kTimeout,
        kSealed,
        kServerError,
        kRateLimited,
        kGarbage,
        kTruncated,
        kHuge
    };

    explicit FakeVault(FakeClock& clock);

    std::unique_ptr<HttpCall> start(HttpRequest request, Callback done) override;

    // --- configuration --------------------------------------------------------------
    std::map<std::string, Role> roles;  // "<mount>/<role>", e.g. "database/app"
    std::string role_id = "role-id-1";
    std::string secret_id = "secret-id-1";
    std::string approle_mount = "approle";
    // Kubernetes and JWT roles: "<mount>/<role>" (e.g. "kubernetes/app") -> the JWTs it
    // accepts.  An unknown role: 400 invalid role name; another JWT: kubernetes 403
    // (TokenReview refused), jwt 400 (claims).  A mount is of type kubernetes or jwt by
    // its name, or as jwt_mount_types says.
    std::map<std::string, std::vector<std::string>> jwt_roles;
    std::map<std::string, std::string> jwt_mount_types;  // mount -> "kubernetes" | "jwt"
    // Cert auth: mount -> role names accepted in {"name"} ("" accepts a login without a
    // name).  The TLS part is out of reach of this fake; see the HTTPS tests.
    std::map<std::string, std::vector<std::string>> cert_roles;
    // Logins issue batch tokens (not renewable, type "batch").
    bool batch_tokens = false;
    // sys/health answer.
    long health_code = 200;
    bool health_sealed = false;
    bool health_standby = false;
    Duration token_ttl = std::chrono::seconds(3600);
    Duration token_max_ttl = std::chrono::seconds(7200);
    bool token_renewable = true;
    Duration latency{0};
    Fault fault = Fault::kNone;
    // Consulted first: an answer replaces the model's for that request.
    std::function<std::optional<HttpResponse>(const Request&)> script;

    // Creates a token directly (for the token auth method).
    std::string issue_token(Duration ttl, Duration max_ttl, bool renewable, bool batch = false);
    // Wraps `secret_id` as if made by `creation_path` with -wrap-ttl; returns the
    // wrapping token.
    std::string wrap_secret_id(const std::string& creation_path, const std::string& secret_id,
                               Duration ttl = std::chrono::seconds(300));

    // A static role "<mount>/<role>" for `username`, rotated now and then every `period`.
    void add_static_role(const std::string& key, const std::string& username, Duration period,
                         Duration queue_lag = Duration::zero());
    // Rotates it now (POST <mount>/rotate-role/<role>).
    void rotate_static_role(const std::string& key);
    // Writes a new version of KV secret "<mount>/<path>" with `data_json`; returns it.
    std::int64_t put_kv(const std::string& key, const std::string& data_json);

    // --- model state and observations ------------------------------------------------
    std::map<std::string, Token> tokens;
    std::map<std::string, Lease> leases;
    std::map<std::string, Wrapped> wrapped;          // by wrapping token
    std::map<std::string, StaticRole> static_roles;  // "<mount>/<role>"
    std::map<std::string, KvSecret> kv;              // "<mount>/<path>"
    std::vector<Request> requests;

    bool token_alive(const std::string& token) const;
    bool lease_alive(const std::string& lease_id) const;
    // The lease whose credentials have this username, or nullptr.
    const Lease* lease_of_user(const std::string& username) const;
    int count(const std::string& method, const std::string& path_prefix) const;
    // Leases neither revoked nor expired, now.
    std::vector<std::string> live_leases() const;

private:
    HttpResponse handle(const Request& r, const HttpRequest& http);
    HttpResponse login(const Request& r);
    HttpResponse jwt_login(const Request& r, const std::string& mount, const std::string& type);
    HttpResponse cert_login(const Request& r, const std::string& mount);
    HttpResponse wrap_lookup(const Request& r);
    HttpResponse unwrap(const Request& r);
    HttpResponse health();
    HttpResponse new_login();
    HttpResponse lookup_self(const Request& r);
    HttpResponse renew_self(const Request& r);
    HttpResponse creds(const Request& r, const std::string& role_key);
    HttpResponse renew_lease(const Request& r);
    HttpResponse revoke_lease(const Request& r);
    HttpResponse static_creds(const Request& r, const std::string& role_key);
    HttpResponse kv_read(const Request& r, const std::string& key);
    void arm_static_rotation(const std::string& key);
    std::string auth_json(const Token& t, Duration ttl, const std::string& warning) const;

    FakeClock& clock_;
    int counter_ = 0;
    std::map<std::string, std::unique_ptr<Timer>> rotation_timers_;
};

}  // namespace pgbv::ctl::testing

#endif  // PGBV_TESTS_CONTROLLER_FAKE_VAULT_HPP
