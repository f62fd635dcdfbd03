// An in-memory Vault behind the HttpTransport seam, on the fake clock, for the
// controller's unit tests.
//
// It models what the controller relies on (vault-api.md): AppRole login, lookup-self,
// renew-self with max-TTL capping and its warning, <mount>/creds/<role> leases tied to
// the token that created them, lease renewal with capping, revocation, leases dying with
// their token, Vault's error bodies and codes.  Faults (refused, timeout, sealed, 500,
// 429, garbage, truncated, huge) and per-request scripts are injectable, and every
// request is recorded.  Answers arrive after `latency` on the fake clock, never
// synchronously.
//
// It is not the Python Vault double of tests/vault_double (which runs real SQL); this one
// exists so that lifecycle tests run in milliseconds.

#ifndef PGBV_TESTS_CONTROLLER_FAKE_VAULT_HPP
#define PGBV_TESTS_CONTROLLER_FAKE_VAULT_HPP

#include <functional>
#include <map>
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
    Duration token_ttl = std::chrono::seconds(3600);
    Duration token_max_ttl = std::chrono::seconds(7200);
    bool token_renewable = true;
    Duration latency{0};
    Fault fault = Fault::kNone;
    // Consulted first: an answer replaces the model's for that request.
    std::function<std::optional<HttpResponse>(const Request&)> script;

    // Creates a token directly (for the token auth method).
    std::string issue_token(Duration ttl, Duration max_ttl, bool renewable);

    // --- model state and observations ------------------------------------------------
    std::map<std::string, Token> tokens;
    std::map<std::string, Lease> leases;
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
    HttpResponse lookup_self(const Request& r);
    HttpResponse renew_self(const Request& r);
    HttpResponse creds(const Request& r, const std::string& role_key);
    HttpResponse renew_lease(const Request& r);
    HttpResponse revoke_lease(const Request& r);
    std::string auth_json(const Token& t, Duration ttl, const std::string& warning) const;

    FakeClock& clock_;
    int counter_ = 0;
};

}  // namespace pgbv::ctl::testing

#endif  // PGBV_TESTS_CONTROLLER_FAKE_VAULT_HPP
