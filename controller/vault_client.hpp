// The Vault HTTP API calls the controller makes, and whether Vault is reachable.
//
// Each call builds one request (X-Vault-Request: true always, X-Vault-Token and
// X-Vault-Namespace when there is one), sends it through the HttpTransport and hands the
// parsed result (vault_response.hpp) to `done`, later, from the event loop.  Destroying
// the returned Pending cancels the call; `done` then never runs.
//
// Reachability: every answer updates one state (unknown, reachable, unreachable); each
// change is logged once, so an outage makes two log lines, not one per retry.
//
// REQUIRES: the transport and the clock outlive the client, and the client outlives every
// Pending it returned.

#ifndef PGBV_CONTROLLER_VAULT_CLIENT_HPP
#define PGBV_CONTROLLER_VAULT_CLIENT_HPP

#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "controller/clock.hpp"
#include "controller/http.hpp"
#include "controller/metrics.hpp"
#include "controller/vault_response.hpp"

namespace pgbv::ctl {

class VaultClient {
public:
    struct Options {
        std::string address;     // "https://vault:8200", no trailing slash
        std::string name_space;  // empty: no X-Vault-Namespace header
        Duration timeout = std::chrono::seconds(10);
    };

    struct Health {
        enum class State { kUnknown, kReachable, kUnreachable };
        State state = State::kUnknown;
        std::string last_error;  // the error that made it unreachable; one line
        MonoTime since{};        // when the current state began
        std::uint64_t requests = 0;
        std::uint64_t failures = 0;  // answers that were errors of any kind
    };

    template <class T>
    using Done = std::function<void(Result<T>)>;
    using Pending = std::unique_ptr<HttpCall>;

    VaultClient(HttpTransport& transport, const Clock& clock, Options options);

    // POST auth/<mount>/login {"role_id","secret_id"}.
    Pending login_approle(std::string_view mount, const Secret& role_id, const Secret& secret_id,
                          Done<AuthInfo> done);
    // POST auth/<mount>/login with `body` (kubernetes, jwt, cert, approle: each method's
    // fields).  `description` names the login in errors, e.g. `kubernetes login as role
    // "app" at auth/kubernetes`; it must hold no secret.
    Pending login(const std::string& description, std::string_view mount, Secret body,
                  Done<AuthInfo> done);
    // POST sys/wrapping/lookup {"token"}: where a response-wrapping token comes from.
    Pending wrapping_lookup(const Secret& wrapping_token, Done<WrapInfo> done);
    // POST sys/wrapping/unwrap with the wrapping token as the client token (single use).
    Pending unwrap_secret_id(const Secret& wrapping_token, Done<UnwrappedSecretId> done);
    // GET sys/health?standbyok=true&perfstandbyok=true.  Leaves the reachability state
    // alone: a sealed node's 503 there is an answer, not an outage to log twice.
    Pending health_check(Done<VaultHealthInfo> done);
    // GET auth/token/lookup-self.
    Pending lookup_self(const Secret& token, Done<TokenInfo> done);
    // POST auth/token/renew-self {"increment"}.
    Pending renew_self(const Secret& token, Duration increment, Done<AuthInfo> done);
    // GET <mount>/creds/<role>.
    Pending read_credentials(const Secret& token, std::string_view mount, std::string_view role,
                             Done<DbCredentials> done);
    // GET <mount>/static-creds/<role>.
    Pending read_static_credentials(const Secret& token, std::string_view mount,
                                    std::string_view role, Done<StaticCredentials> done);
    // GET <mount>/data/<path> (KV version 2), taking the user and password from the fields
    // named.
    Pending read_kv(const Secret& token, std::string_view mount, std::string_view path,
                    const std::string& username_field, const std::string& password_field,
                    Done<KvCredentials> done);
    // PUT sys/leases/renew {"lease_id","increment"}.
    Pending renew_lease(const Secret& token, std::string_view lease_id, Duration increment,
                        Done<LeaseRenewal> done);
    // PUT sys/leases/revoke {"lease_id"}.
    Pending revoke_lease(const Secret& token, std::string_view lease_id, Done<NoContent> done);

    const Health& health() const { return health_; }
    const std::string& address() const { return options_.address; }

    // Where every request is counted and timed (by path class and status), and where the
    // components that talk to Vault through this client count what they do (rotations,
    // renewals, logins...).  Without a call, a Metrics of the client's own.
    void set_metrics(Metrics& metrics) { metrics_ = &metrics; }
    Metrics& metrics() { return *metrics_; }

private:
    HttpRequest request(const char* method, const std::string& path, const Secret* token) const;
    template <class T>
    Pending send(HttpRequest request, std::string what,
                 Result<T> (*parse)(const HttpResponse&, const std::string&), Done<T> done);
    void note(const VaultError* error);
    // transport_.start(), counting and timing the request in metrics().
    Pending start(HttpRequest request, HttpTransport::Callback done);

    HttpTransport& transport_;
    const Clock& clock_;
    Options options_;
    Health health_;
    std::unique_ptr<Metrics> own_metrics_ = std::make_unique<Metrics>();
    Metrics* metrics_ = own_metrics_.get();
};

}  // namespace pgbv::ctl

#endif  // PGBV_CONTROLLER_VAULT_CLIENT_HPP
