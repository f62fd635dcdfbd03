// What Vault's answers mean: typed results and one-line errors from raw HTTP responses.
//
// Pure functions over HttpResponse, so that every odd answer (garbage, truncated JSON, a
// proxy's HTML page, missing or mistyped fields, multi-line Vault errors) is unit-tested
// without a network.  Nothing here crashes on any input, and no error message quotes a
// response body: only Vault's own "errors" strings, flattened to one line and shortened.

#ifndef PGBV_CONTROLLER_VAULT_RESPONSE_HPP
#define PGBV_CONTROLLER_VAULT_RESPONSE_HPP

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "controller/clock.hpp"
#include "controller/http.hpp"
#include "pgbv/secret.hpp"

namespace pgbv::ctl {

struct VaultError {
    enum class Kind {
        kUnavailable,  // no answer, timeout, 429, 5xx (sealed, standby, overloaded)
        kDenied,       // 403: the token is invalid, expired or lacks a policy
        kRejected,     // other 4xx: Vault understood and said no (unknown role, lease gone)
        kBadResponse,  // a 2xx whose body is not what Vault sends
    };
    Kind kind = Kind::kUnavailable;
    long status = 0;      // HTTP status, 0 if none
    std::string message;  // one line, never a secret
    std::string detail;   // `message` without the request's name: "HTTP 400: ..."

    // Whether Vault itself answered sensibly (for the reachability state).
    bool vault_answered() const { return kind == Kind::kDenied || kind == Kind::kRejected; }
};

// A value or the reason there is none.
template <class T>
class Result {
public:
    Result(T value) : v_(std::move(value)) {}           // NOLINT: implicit by design
    Result(VaultError error) : v_(std::move(error)) {}  // NOLINT
    bool ok() const { return v_.index() == 0; }
    T& value() { return std::get<0>(v_); }
    const T& value() const { return std::get<0>(v_); }
    const VaultError& error() const { return std::get<1>(v_); }

private:
    std::variant<T, VaultError> v_;
};

// A login (any method) or a token renewal: the "auth" object.
struct AuthInfo {
    Secret token;
    std::string accessor;
    Duration ttl{0};  // 0: the token does not expire (e.g. root)
    bool renewable = false;
    bool batch = false;  // token_type "batch": never renewable
    std::vector<std::string> warnings;
};

// GET auth/token/lookup-self.
struct TokenInfo {
    Duration ttl{0};  // seconds left; 0: no expiry
    bool renewable = false;
    Duration creation_ttl{0};
    bool batch = false;  // type "batch"
};

// POST sys/wrapping/lookup: what a response-wrapping token wraps.
struct WrapInfo {
    std::string creation_path;  // e.g. "auth/approle/role/app/secret-id"
    Duration ttl{0};
};

// POST sys/wrapping/unwrap of a wrapped AppRole secret ID: data.secret_id.
struct UnwrappedSecretId {
    Secret secret_id;
};

// GET sys/health: any of Vault's health answers (200, 429, 472, 473, 501, 503) with its
// JSON body is a result; other answers are errors.
struct VaultHealthInfo {
    long status = 0;
    bool initialized = false;
    bool sealed = false;
    bool standby = false;
    bool performance_standby = false;
    std::string version;
    std::string cluster_name;
};

// GET <mount>/creds/<role>.
struct DbCredentials {
    std::string lease_id;
    Duration ttl{0};
    bool renewable = false;
    std::string username;
    Secret password;
};

// GET <mount>/static-creds/<role>: no lease; Vault rotates the password itself.
struct StaticCredentials {
    std::string username;
    Secret password;
    Duration ttl{0};                  // until Vault's next rotation; 0: due now
    std::string last_vault_rotation;  // RFC 3339, as Vault sent it; may be empty
};

// GET <mount>/data/<path> (KV version 2): the two fields asked for and the version.
struct KvCredentials {
    std::string username;
    Secret password;
    std::int64_t version = 0;  // data.metadata.version; 0 if Vault sent none
};

// PUT sys/leases/renew.
struct LeaseRenewal {
    std::string lease_id;
    Duration ttl{0};
    bool renewable = false;
    std::vector<std::string> warnings;
};

struct NoContent {};

// Vault's error strings (the "errors" array) joined into one short line, bullets and
// "N errors occurred:" headers removed; nullopt if the body has no such array.
std::optional<std::string> vault_error_text(std::string_view body);

// The error for a response that is not a success (transport failure or status not 2xx);
// nullopt for a 2xx.  `what` names the request, e.g. "GET /v1/database/creds/app".
std::optional<VaultError> error_of(const HttpResponse& response, const std::string& what);

Result<AuthInfo> parse_auth(const HttpResponse& response, const std::string& what);
Result<TokenInfo> parse_token_lookup(const HttpResponse& response, const std::string& what);
Result<DbCredentials> parse_credentials(const HttpResponse& response, const std::string& what);
Result<StaticCredentials> parse_static_credentials(const HttpResponse& response,
                                                   const std::string& what);
// `username_field` and `password_field` name the fields of data.data to use.
Result<KvCredentials> parse_kv_credentials(const HttpResponse& response, const std::string& what,
                                           const std::string& username_field,
                                           const std::string& password_field);
Result<LeaseRenewal> parse_lease_renewal(const HttpResponse& response, const std::string& what);
Result<NoContent> parse_no_content(const HttpResponse& response, const std::string& what);
Result<WrapInfo> parse_wrap_lookup(const HttpResponse& response, const std::string& what);
Result<UnwrappedSecretId> parse_unwrapped_secret_id(const HttpResponse& response,
                                                    const std::string& what);
Result<VaultHealthInfo> parse_health(const HttpResponse& response, const std::string& what);

}  // namespace pgbv::ctl

#endif  // PGBV_CONTROLLER_VAULT_RESPONSE_HPP
