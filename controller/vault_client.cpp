// The Vault HTTP API calls the controller makes.

#include "controller/vault_client.hpp"

#include <cstdlib>

#include "controller/json.hpp"
#include "controller/log.hpp"

namespace pgbv::ctl {
namespace {

long long whole_seconds(Duration d) {
    return std::chrono::duration_cast<std::chrono::seconds>(d).count();
}

}  // namespace

VaultClient::VaultClient(HttpTransport& transport, const Clock& clock, Options options)
    : transport_(transport), clock_(clock), options_(std::move(options)) {
    health_.since = clock_.now();
}

HttpRequest VaultClient::request(const char* method, const std::string& path,
                                 const Secret* token) const {
    HttpRequest r;
    r.method = method;
    r.url = options_.address + "/v1/" + path;
    r.timeout = options_.timeout;
    // A Vault Agent or Proxy with require_request_header refuses requests without it.
    r.headers.push_back("X-Vault-Request: true");
    if (!options_.name_space.empty())
        r.headers.push_back("X-Vault-Namespace: " + options_.name_space);
    if (token != nullptr) {
        std::string header = "X-Vault-Token: ";
        header += token->view();
        r.secret_header = Secret::take(std::move(header));
    }
    return r;
}

template <class T>
VaultClient::Pending VaultClient::send(HttpRequest request, std::string what,
                                       Result<T> (*parse)(const HttpResponse&, const std::string&),
                                       Done<T> done) {
    ++health_.requests;
    return start(std::move(request), [this, what = std::move(what), parse,
                                      done = std::move(done)](HttpResponse response) {
        Result<T> result = parse(response, what);
        note(result.ok() ? nullptr : &result.error());
        done(std::move(result));
    });
}

VaultClient::Pending VaultClient::start(HttpRequest request, HttpTransport::Callback done) {
    const std::string prefix = options_.address + "/v1/";
    const std::string_view url = request.url;
    const std::string_view path_class = vault_path_class(
            url.substr(0, prefix.size()) == prefix ? url.substr(prefix.size()) : url);
    const MonoTime sent = clock_.now();
    return transport_.start(std::move(request), [this, path_class, sent,
                                                 done = std::move(done)](HttpResponse response) {
        metrics_->vault_request(path_class, response.failed() ? 0 : response.status,
                                to_duration(clock_.now() - sent));
        done(std::move(response));
    });
}

void VaultClient::note(const VaultError* error) {
    using State = Health::State;
    if (error != nullptr) ++health_.failures;
    const bool down = error != nullptr && !error->vault_answered();
    const State next = down ? State::kUnreachable : State::kReachable;
    if (down) health_.last_error = error->message;
    if (next == health_.state) return;
    const auto was = health_.state;
    const auto lasted = whole_seconds(to_duration(clock_.now() - health_.since));
    health_.state = next;
    health_.since = clock_.now();
    if (down) {
        log::event(log::Level::kWarning, "vault", "",
                   "vault: unreachable at %s: %s; current credentials stay in use until "
                   "their deadline, retrying with backoff",
                   options_.address.c_str(), error->message.c_str());
    } else if (was == State::kUnreachable) {
        health_.last_error.clear();
        log::event(log::Level::kInfo, "vault", "", "vault: reachable again at %s after %llds",
                   options_.address.c_str(), lasted);
    } else {
        log::event(log::Level::kInfo, "vault", "", "vault: reachable at %s",
                   options_.address.c_str());
    }
}

VaultClient::Pending VaultClient::login_approle(std::string_view mount, const Secret& role_id,
                                                const Secret& secret_id, Done<AuthInfo> done) {
    const std::string path = "auth/" + std::string(mount) + "/login";
    json::Ptr body = json::own(json_object());
    json_object_set_new(body.get(), "role_id", json_stringn(role_id.data(), role_id.size()));
    json_object_set_new(body.get(), "secret_id", json_stringn(secret_id.data(), secret_id.size()));
    HttpRequest r = request("POST", path, nullptr);
    r.body = json::dump_secret(body.get());
    return send<AuthInfo>(std::move(r), "AppRole login (POST /v1/" + path + ")", &parse_auth,
                          std::move(done));
}

VaultClient::Pending VaultClient::login(const std::string& description, std::string_view mount,
                                        Secret body, Done<AuthInfo> done) {
    const std::string path = "auth/" + std::string(mount) + "/login";
    HttpRequest r = request("POST", path, nullptr);
    r.body = std::move(body);
    return send<AuthInfo>(std::move(r), description, &parse_auth, std::move(done));
}

VaultClient::Pending VaultClient::wrapping_lookup(const Secret& wrapping_token,
                                                  Done<WrapInfo> done) {
    json::Ptr body = json::own(json_object());
    json_object_set_new(body.get(), "token",
                        json_stringn(wrapping_token.data(), wrapping_token.size()));
    HttpRequest r = request("POST", "sys/wrapping/lookup", nullptr);
    r.body = json::dump_secret(body.get());
    return send<WrapInfo>(std::move(r), "wrapping token lookup (POST /v1/sys/wrapping/lookup)",
                          &parse_wrap_lookup, std::move(done));
}

VaultClient::Pending VaultClient::unwrap_secret_id(const Secret& wrapping_token,
                                                   Done<UnwrappedSecretId> done) {
    return send<UnwrappedSecretId>(request("POST", "sys/wrapping/unwrap", &wrapping_token),
                                   "unwrap (POST /v1/sys/wrapping/unwrap)",
                                   &parse_unwrapped_secret_id, std::move(done));
}

VaultClient::Pending VaultClient::health_check(Done<VaultHealthInfo> done) {
    ++health_.requests;
    const std::string what = "health check (GET /v1/sys/health)";
    return start(request("GET", "sys/health?standbyok=true&perfstandbyok=true", nullptr),
                 [what, done = std::move(done)](HttpResponse response) {
                     done(parse_health(response, what));
                 });
}

VaultClient::Pending VaultClient::lookup_self(const Secret& token, Done<TokenInfo> done) {
    return send<TokenInfo>(request("GET", "auth/token/lookup-self", &token),
                           "token lookup (GET /v1/auth/token/lookup-self)", &parse_token_lookup,
                           std::move(done));
}

VaultClient::Pending VaultClient::renew_self(const Secret& token, Duration increment,
                                             Done<AuthInfo> done) {
    json::Ptr body = json::own(json_object());
    json_object_set_new(body.get(), "increment", json_integer(whole_seconds(increment)));
    HttpRequest r = request("POST", "auth/token/renew-self", &token);
    r.body = json::dump_secret(body.get());
    return send<AuthInfo>(std::move(r), "token renewal (POST /v1/auth/token/renew-self)",
                          &parse_auth, std::move(done));
}

VaultClient::Pending VaultClient::read_credentials(const Secret& token, std::string_view mount,
                                                   std::string_view role,
                                                   Done<DbCredentials> done) {
    const std::string path = std::string(mount) + "/creds/" + std::string(role);
    return send<DbCredentials>(request("GET", path, &token),
                               "credentials fetch (GET /v1/" + path + ")", &parse_credentials,
                               std::move(done));
}

VaultClient::Pending VaultClient::read_static_credentials(const Secret& token,
                                                          std::string_view mount,
                                                          std::string_view role,
                                                          Done<StaticCredentials> done) {
    const std::string path = std::string(mount) + "/static-creds/" + std::string(role);
    return send<StaticCredentials>(request("GET", path, &token),
                                   "static role read (GET /v1/" + path + ")",
                                   &parse_static_credentials, std::move(done));
}

VaultClient::Pending VaultClient::read_kv(const Secret& token, std::string_view mount,
                                          std::string_view path, const std::string& username_field,
                                          const std::string& password_field,
                                          Done<KvCredentials> done) {
    const std::string full = std::string(mount) + "/data/" + std::string(path);
    std::string what = "KV read (GET /v1/" + full + ")";
    // Like send(), with the field names for the parser.
    ++health_.requests;
    return start(request("GET", full, &token),
                 [this, what = std::move(what), username_field, password_field,
                  done = std::move(done)](HttpResponse response) {
                     Result<KvCredentials> result =
                             parse_kv_credentials(response, what, username_field, password_field);
                     note(result.ok() ? nullptr : &result.error());
                     done(std::move(result));
                 });
}

VaultClient::Pending VaultClient::renew_lease(const Secret& token, std::string_view lease_id,
                                              Duration increment, Done<LeaseRenewal> done) {
    json::Ptr body = json::own(json_object());
    json_object_set_new(body.get(), "lease_id", json_stringn(lease_id.data(), lease_id.size()));
    json_object_set_new(body.get(), "increment", json_integer(whole_seconds(increment)));
    HttpRequest r = request("PUT", "sys/leases/renew", &token);
    r.body = json::dump_secret(body.get());
    return send<LeaseRenewal>(std::move(r), "lease renewal (PUT /v1/sys/leases/renew)",
                              &parse_lease_renewal, std::move(done));
}

VaultClient::Pending VaultClient::revoke_lease(const Secret& token, std::string_view lease_id,
                                               Done<NoContent> done) {
    json::Ptr body = json::own(json_object());
    json_object_set_new(body.get(), "lease_id", json_stringn(lease_id.data(), lease_id.size()));
    HttpRequest r = request("PUT", "sys/leases/revoke", &token);
    r.body = json::dump_secret(body.get());
    return send<NoContent>(std::move(r), "lease revocation (PUT /v1/sys/leases/revoke)",
                           &parse_no_content, std::move(done));
}

}  // namespace pgbv::ctl
