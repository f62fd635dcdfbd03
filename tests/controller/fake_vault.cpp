// An in-memory Vault behind the HttpTransport seam.

#include "fake_vault.hpp"

#include <jansson.h>

#include <algorithm>

namespace pgbv::ctl::testing {
namespace {

using std::chrono::seconds;

long long secs(Duration d) {
    return std::chrono::duration_cast<seconds>(d).count();
}

HttpResponse answer(long status, std::string body) {
    HttpResponse r;
    r.status = status;
    r.body = Secret::take(std::move(body));
    return r;
}

HttpResponse vault_error(long status, const std::string& message) {
    json_t* o = json_pack("{s:[s]}", "errors", message.c_str());
    char* text = json_dumps(o, JSON_COMPACT);
    HttpResponse r = answer(status, text);
    free(text);
    json_decref(o);
    return r;
}

HttpResponse denied() {
    return vault_error(403, "1 error occurred:\n\t* permission denied\n\n");
}

std::string json_field(const std::string& body, const char* key) {
    json_t* o = json_loads(body.c_str(), 0, nullptr);
    std::string v;
    if (json_t* f = json_object_get(o, key)) {
        if (json_is_string(f)) v = json_string_value(f);
        if (json_is_integer(f)) v = std::to_string(json_integer_value(f));
    }
    json_decref(o);
    return v;
}

class FakeCall final : public HttpCall {
public:
    FakeCall(FakeClock& clock, HttpResponse response, HttpTransport::Callback done, MonoTime when)
        : response_(std::move(response)), done_(std::move(done)) {
        timer_ = clock.new_timer([this] {
            auto done = std::move(done_);
            done_ = nullptr;
            HttpResponse r = std::move(response_);
            done(std::move(r));  // may destroy this call
        });
        timer_->arm_at(when);
    }

private:
    HttpResponse response_;
    HttpTransport::Callback done_;
    std::unique_ptr<Timer> timer_;
};

}  // namespace

FakeVault::FakeVault(FakeClock& clock) : clock_(clock) {
    roles["database/app"] = Role{};
}

std::string FakeVault::wrap_secret_id(const std::string& creation_path,
                                      const std::string& secret_id, Duration ttl) {
    Wrapped w;
    w.creation_path = creation_path;
    w.secret_id = secret_id;
    w.expire = clock_.now() + ttl;
    const std::string token = "hvs.wrapping-" + std::to_string(++counter_);
    wrapped[token] = w;
    return token;
}

std::string FakeVault::issue_token(Duration ttl, Duration max_ttl, bool renewable, bool batch) {
    Token t;
    t.value = (batch ? "hvb.fake-token-" : "hvs.fake-token-") + std::to_string(++counter_);
    t.batch = batch;
    if (batch) renewable = false;
    t.issued = clock_.now();
    t.expire = clock_.now() + ttl;
    t.max_end = clock_.now() + max_ttl;
    t.renewable = renewable;
    t.creation_ttl = ttl;
    tokens[t.value] = t;
    return t.value;
}

bool FakeVault::token_alive(const std::string& token) const {
    auto it = tokens.find(token);
    return it != tokens.end() && !it->second.revoked && clock_.now() < it->second.expire;
}

bool FakeVault::lease_alive(const std::string& id) const {
    auto it = leases.find(id);
    if (it == leases.end()) return false;
    const Lease& l = it->second;
    if (l.revoked_at) return false;
    if (clock_.now() >= l.expire) return false;
    // Vault revokes a token's leases with it.
    auto t = tokens.find(l.token);
    return t != tokens.end() && !t->second.revoked && clock_.now() < t->second.expire;
}

const FakeVault::Lease* FakeVault::lease_of_user(const std::string& username) const {
    for (const auto& [id, l] : leases) {
        if (l.username == username) return &l;
    }
    return nullptr;
}

int FakeVault::count(const std::string& method, const std::string& prefix) const {
    return static_cast<int>(std::count_if(requests.begin(), requests.end(), [&](const Request& r) {
        return r.method == method && r.path.rfind(prefix, 0) == 0;
    }));
}

std::vector<std::string> FakeVault::live_leases() const {
    std::vector<std::string> out;
    for (const auto& [id, l] : leases) {
        if (lease_alive(id)) out.push_back(id);
    }
    return out;
}

std::unique_ptr<HttpCall> FakeVault::start(HttpRequest http, Callback done) {
    Request r;
    r.at = clock_.now();
    r.method = http.method;
    const std::string base = std::string(kAddress) + "/v1/";
    r.path = http.url.rfind(base, 0) == 0 ? http.url.substr(base.size()) : http.url;
    const std::string token_prefix = "X-Vault-Token: ";
    if (http.secret_header.view().rfind(token_prefix, 0) == 0) {
        r.token = std::string(http.secret_header.view().substr(token_prefix.size()));
    }
    r.body = std::string(http.body.view());
    r.headers = http.headers;
    requests.push_back(r);

    MonoTime when = clock_.now() + latency;
    HttpResponse response;
    switch (fault) {
        case Fault::kRefused:
            // libcurl's text carries a timing that changes from one attempt to the next.
            response.error = "Failed to connect to vault.test port 8200 after " +
                             std::to_string(requests.size() % 7) + " ms: Connection refused";
            break;
        case Fault::kTimeout:
            response.error = "no complete answer within 5 s (request_timeout)";
            when = clock_.now() + http.timeout;
            break;
        case Fault::kSealed:
            response = vault_error(503, "Vault is sealed");
            break;
        case Fault::kServerError:
            response = vault_error(500, "1 error occurred:\n\t* internal error\n\n");
            break;
        case Fault::kRateLimited:
            response = vault_error(429, "request path \"x\": rate limit quota exceeded");
            break;
        case Fault::kGarbage:
            response = answer(200, "<html>502 Bad Gateway</html>");
            break;
        case Fault::kTruncated: {
            HttpResponse full = handle(r, http);
            std::string body(full.body.view());
            body.resize(body.size() / 2);
            response = answer(full.status, body);
            break;
        }
        case Fault::kHuge:
            response.error = "the response body is larger than the limit of 1048576 bytes";
            break;
        case Fault::kNone:
            if (script) {
                if (auto scripted = script(r)) {
                    response = std::move(*scripted);
                    break;
                }
            }
            response = handle(r, http);
            break;
    }
    return std::make_unique<FakeCall>(clock_, std::move(response), std::move(done), when);
}

HttpResponse FakeVault::handle(const Request& r, const HttpRequest& http) {
    bool request_header = false;
    for (const auto& h : http.headers)
        request_header |= h == "X-Vault-Request: true";
    if (!request_header) return vault_error(412, "missing 'X-Vault-Request' header");
    if (r.method == "POST" && r.path == "auth/" + approle_mount + "/login") return login(r);
    if (r.method == "POST" && r.path.rfind("auth/", 0) == 0 && r.path.size() > 11 &&
        r.path.compare(r.path.size() - 6, 6, "/login") == 0) {
        const std::string mount = r.path.substr(5, r.path.size() - 11);
        if (cert_roles.count(mount) != 0) return cert_login(r, mount);
        std::string type = mount;
        if (auto it = jwt_mount_types.find(mount); it != jwt_mount_types.end()) type = it->second;
        if (type == "kubernetes" || type == "jwt") return jwt_login(r, mount, type);
    }
    if (r.method == "POST" && r.path == "sys/wrapping/lookup") return wrap_lookup(r);
    if (r.method == "POST" && r.path == "sys/wrapping/unwrap") return unwrap(r);
    if (r.method == "GET" && r.path.rfind("sys/health", 0) == 0) return health();
    if (r.method == "GET" && r.path == "auth/token/lookup-self") return lookup_self(r);
    if (r.method == "POST" && r.path == "auth/token/renew-self") return renew_self(r);
    if (r.method == "PUT" && r.path == "sys/leases/renew") return renew_lease(r);
    if (r.method == "PUT" && r.path == "sys/leases/revoke") return revoke_lease(r);
    if (const auto st = r.path.find("/static-creds/");
        r.method == "GET" && st != std::string::npos) {
        return static_creds(r, r.path.substr(0, st) + "/" + r.path.substr(st + 14));
    }
    if (const auto d = r.path.find("/data/"); r.method == "GET" && d != std::string::npos) {
        return kv_read(r, r.path.substr(0, d) + "/" + r.path.substr(d + 6));
    }
    const auto at = r.path.find("/creds/");
    if (r.method == "GET" && at != std::string::npos) {
        return creds(r, r.path.substr(0, at) + "/" + r.path.substr(at + 7));
    }
    return vault_error(404, "1 error occurred:\n\t* unsupported path\n\n");
}

std::string FakeVault::auth_json(const Token& t, Duration ttl, const std::string& warning) const {
    json_t* o = json_pack("{s:s, s:n, s:{s:s, s:s, s:I, s:b, s:s}}", "request_id", "r", "data",
                          "auth", "client_token", t.value.c_str(), "accessor", "acc",
                          "lease_duration", static_cast<json_int_t>(secs(ttl)), "renewable",
                          t.renewable, "token_type", t.batch ? "batch" : "service");
    json_object_set_new(o, "warnings",
                        warning.empty() ? json_null() : json_pack("[s]", warning.c_str()));
    char* text = json_dumps(o, JSON_COMPACT);
    std::string s(text);
    free(text);
    json_decref(o);
    return s;
}

HttpResponse FakeVault::login(const Request& r) {
    if (json_field(r.body, "role_id") != role_id || json_field(r.body, "secret_id") != secret_id) {
        return vault_error(400, "invalid role or secret ID");
    }
    return new_login();
}

HttpResponse FakeVault::new_login() {
    const std::string value =
            issue_token(token_ttl, token_max_ttl, token_renewable && !batch_tokens, batch_tokens);
    return answer(200, auth_json(tokens[value], token_ttl, ""));
}

HttpResponse FakeVault::jwt_login(const Request& r, const std::string& mount,
                                  const std::string& type) {
    const std::string role = json_field(r.body, "role");
    const std::string jwt = json_field(r.body, "jwt");
    if (role.empty()) return vault_error(400, "missing role");
    if (jwt.empty()) return vault_error(400, "missing jwt");
    auto it = jwt_roles.find(mount + "/" + role);
    if (it == jwt_roles.end()) return vault_error(400, "invalid role name \"" + role + "\"");
    if (std::find(it->second.begin(), it->second.end(), jwt) == it->second.end()) {
        if (type == "kubernetes") return denied();
        return vault_error(400, "error validating token: token is expired");
    }
    return new_login();
}

HttpResponse FakeVault::cert_login(const Request& r, const std::string& mount) {
    const std::string name = json_field(r.body, "name");
    const auto& names = cert_roles[mount];
    if (std::find(names.begin(), names.end(), name) == names.end()) {
        return vault_error(400, name.empty() ? "invalid certificate or no client certificate "
                                               "supplied"
                                             : "invalid certificate role \"" + name + "\"");
    }
    return new_login();
}

HttpResponse FakeVault::wrap_lookup(const Request& r) {
    const std::string token = json_field(r.body, "token");
    auto it = wrapped.find(token);
    if (it == wrapped.end() || it->second.used || clock_.now() >= it->second.expire) {
        return vault_error(400, "wrapping token is not valid or does not exist");
    }
    json_t* o = json_pack("{s:{s:s, s:I, s:s}}", "data", "creation_path",
                          it->second.creation_path.c_str(), "creation_ttl",
                          static_cast<json_int_t>(300), "creation_time", "2026-11-28T02:00:00Z");
    char* text = json_dumps(o, JSON_COMPACT);
    HttpResponse resp = answer(200, text);
    free(text);
    json_decref(o);
    return resp;
}

HttpResponse FakeVault::unwrap(const Request& r) {
    std::string token = json_field(r.body, "token");
    if (token.empty()) token = r.token;
    auto it = wrapped.find(token);
    if (it == wrapped.end() || it->second.used || clock_.now() >= it->second.expire) {
        return vault_error(400, "wrapping token is not valid or does not exist");
    }
    it->second.used = true;
    json_t* o = json_pack("{s:{s:s, s:s}}", "data", "secret_id", it->second.secret_id.c_str(),
                          "secret_id_accessor", "acc-1");
    char* text = json_dumps(o, JSON_COMPACT);
    HttpResponse resp = answer(200, text);
    free(text);
    json_decref(o);
    return resp;
}

HttpResponse FakeVault::health() {
    json_t* o = json_pack("{s:b, s:b, s:b, s:b, s:s, s:s, s:I}", "initialized", 1, "sealed",
                          health_sealed, "standby", health_standby, "performance_standby", 0,
                          "version", "1.15.0", "cluster_name", "vault-cluster-test",
                          "server_time_utc", static_cast<json_int_t>(1700000000));
    char* text = json_dumps(o, JSON_COMPACT);
    HttpResponse resp = answer(health_code, text);
    free(text);
    json_decref(o);
    return resp;
}

HttpResponse FakeVault::lookup_self(const Request& r) {
    if (!token_alive(r.token)) return denied();
    const Token& t = tokens[r.token];
    json_t* o = json_pack("{s:{s:I, s:b, s:I, s:s}}", "data", "ttl",
                          static_cast<json_int_t>(secs(to_duration(t.expire - clock_.now()))),
                          "renewable", t.renewable, "creation_ttl",
                          static_cast<json_int_t>(secs(t.creation_ttl)), "type",
                          t.batch ? "batch" : "service");
    char* text = json_dumps(o, JSON_COMPACT);
    HttpResponse resp = answer(200, text);
    free(text);
    json_decref(o);
    return resp;
}

HttpResponse FakeVault::renew_self(const Request& r) {
    if (!token_alive(r.token)) return denied();
    Token& t = tokens[r.token];
    if (t.batch) return vault_error(400, "batch tokens cannot be renewed");
    if (!t.renewable) return vault_error(400, "lease is not renewable");
    const Duration increment = seconds(std::stoll(
            json_field(r.body, "increment").empty() ? "0" : json_field(r.body, "increment")));
    const Duration left = to_duration(t.max_end - clock_.now());
    // Vault answers this with a 500 (a plain Go error in RenewToken).
    if (left <= Duration::zero()) {
        return vault_error(500, "1 error occurred:\n\t* past the max TTL, cannot renew\n\n");
    }
    Duration ttl = increment > Duration::zero() ? increment : t.creation_ttl;
    std::string warning;
    if (ttl > left) {
        ttl = std::chrono::duration_cast<seconds>(left);
        warning = "TTL of \"" + std::to_string(secs(increment)) +
                  "s\" exceeded the effective "
                  "max_ttl of \"" +
                  std::to_string(secs(ttl)) + "s\"; TTL value is capped accordingly";
    }
    t.expire = clock_.now() + ttl;
    return answer(200, auth_json(t, ttl, warning));
}

HttpResponse FakeVault::creds(const Request& r, const std::string& role_key) {
    if (!token_alive(r.token)) return denied();
    auto role = roles.find(role_key);
    if (role == roles.end()) {
        return vault_error(400, "unknown role: " + role_key.substr(role_key.rfind('/') + 1));
    }
    Lease l;
    const int n = ++counter_;
    const std::string role_name = role_key.substr(role_key.rfind('/') + 1);
    l.id = role_key.substr(0, role_key.rfind('/')) + "/creds/" + role_name + "/lease" +
           std::to_string(n);
    l.token = r.token;
    l.username = "v-approle-" + role_name + "-" + std::to_string(n);
    l.password = "P4ss-" + std::to_string(n) + "-qwertyuiopasdf";
    l.issued = clock_.now();
    l.expire = clock_.now() + role->second.ttl;
    l.max_end = clock_.now() + role->second.max_ttl;
    l.renewable = role->second.renewable;
    leases[l.id] = l;
    json_t* o = json_pack("{s:s, s:s, s:b, s:I, s:{s:s, s:s}, s:n, s:s}", "request_id", "r",
                          "lease_id", l.id.c_str(), "renewable", l.renewable, "lease_duration",
                          static_cast<json_int_t>(secs(role->second.ttl)), "data", "username",
                          l.username.c_str(), "password", l.password.c_str(), "warnings",
                          "mount_type", "database");
    char* text = json_dumps(o, JSON_COMPACT);
    HttpResponse resp = answer(200, text);
    free(text);
    json_decref(o);
    return resp;
}

HttpResponse FakeVault::renew_lease(const Request& r) {
    if (!token_alive(r.token)) return denied();
    const std::string id = json_field(r.body, "lease_id");
    auto it = leases.find(id);
    if (it == leases.end() || it->second.revoked_at) return vault_error(400, "lease not found");
    if (!lease_alive(id)) return vault_error(400, "lease expired");
    Lease& l = it->second;
    if (!l.renewable) return vault_error(400, "lease is not renewable");
    const Duration increment = seconds(std::stoll(json_field(r.body, "increment")));
    const Duration left = std::chrono::duration_cast<seconds>(l.max_end - clock_.now());
    Duration ttl = std::min(increment, left);
    json_t* warnings = json_null();
    if (ttl < increment) {
        warnings = json_pack("[s]",
                             "TTL of \"1h\" exceeded the effective max_ttl; TTL value is "
                             "capped accordingly");
    }
    l.expire = clock_.now() + ttl;
    json_t* o = json_pack("{s:s, s:b, s:I, s:n, s:o}", "lease_id", id.c_str(), "renewable", true,
                          "lease_duration", static_cast<json_int_t>(secs(ttl)), "data", "warnings",
                          warnings);
    char* text = json_dumps(o, JSON_COMPACT);
    HttpResponse resp = answer(200, text);
    free(text);
    json_decref(o);
    return resp;
}

void FakeVault::add_static_role(const std::string& key, const std::string& username,
                                Duration period, Duration queue_lag) {
    StaticRole& s = static_roles[key];
    s.username = username;
    s.rotation_period = period;
    s.queue_lag = queue_lag;
    rotate_static_role(key);
}

void FakeVault::rotate_static_role(const std::string& key) {
    StaticRole& s = static_roles.at(key);
    ++s.rotations;
    s.password = "St4tic-" + std::to_string(++counter_) + "-" + std::to_string(s.rotations);
    s.last_rotation = clock_.now();
    arm_static_rotation(key);
}

void FakeVault::arm_static_rotation(const std::string& key) {
    auto& timer = rotation_timers_[key];
    if (!timer) timer = clock_.new_timer([this, key] { rotate_static_role(key); });
    const StaticRole& s = static_roles.at(key);
    timer->arm_at(s.last_rotation + s.rotation_period + s.queue_lag);
}

HttpResponse FakeVault::static_creds(const Request& r, const std::string& role_key) {
    if (!token_alive(r.token)) return denied();
    auto it = static_roles.find(role_key);
    if (it == static_roles.end()) {
        return vault_error(400, "unknown role: " + role_key.substr(role_key.rfind('/') + 1));
    }
    const StaticRole& s = it->second;
    // Vault: NextRotationTime - now, rounded to the second, never below 0.
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            s.last_rotation + s.rotation_period - clock_.now());
    const long long ttl = std::max<long long>(0, (left.count() + 500) / 1000);
    const std::string last = std::to_string(clock_.wall_at(s.last_rotation));  // not RFC 3339
    json_t* o = json_pack(
            "{s:s, s:s, s:b, s:I, s:{s:s, s:s, s:I, s:s, s:I}, s:n, s:s}", "request_id", "r",
            "lease_id", "", "renewable", false, "lease_duration", static_cast<json_int_t>(0),
            "data", "username", s.username.c_str(), "password", s.password.c_str(), "ttl",
            static_cast<json_int_t>(ttl), "last_vault_rotation", last.c_str(), "rotation_period",
            static_cast<json_int_t>(secs(s.rotation_period)), "warnings", "mount_type", "database");
    char* text = json_dumps(o, JSON_COMPACT);
    HttpResponse resp = answer(200, text);
    free(text);
    json_decref(o);
    return resp;
}

std::int64_t FakeVault::put_kv(const std::string& key, const std::string& data_json) {
    KvSecret& k = kv[key];
    k.data_json = data_json;
    k.deleted = false;
    return ++k.version;
}

HttpResponse FakeVault::kv_read(const Request& r, const std::string& key) {
    if (!token_alive(r.token)) return denied();
    auto it = kv.find(key);
    if (it == kv.end()) return answer(404, R"({"errors":[]})");
    const KvSecret& k = it->second;
    json_t* meta =
            json_pack("{s:s, s:n, s:s, s:b, s:I}", "created_time", "2026-11-28T00:00:00Z",
                      "custom_metadata", "deletion_time", k.deleted ? "2026-11-28T01:00:00Z" : "",
                      "destroyed", false, "version", static_cast<json_int_t>(k.version));
    json_t* data = k.deleted ? json_null() : json_loads(k.data_json.c_str(), 0, nullptr);
    json_t* o =
            json_pack("{s:s, s:s, s:b, s:I, s:{s:o, s:o}, s:n, s:s}", "request_id", "r", "lease_id",
                      "", "renewable", false, "lease_duration", static_cast<json_int_t>(0), "data",
                      "data", data, "metadata", meta, "warnings", "mount_type", "kv");
    char* text = json_dumps(o, JSON_COMPACT);
    HttpResponse resp = answer(k.deleted ? 404 : 200, text);
    free(text);
    json_decref(o);
    return resp;
}

HttpResponse FakeVault::revoke_lease(const Request& r) {
    if (!token_alive(r.token)) return denied();
    const std::string id = json_field(r.body, "lease_id");
    auto it = leases.find(id);
    if (it != leases.end() && !it->second.revoked_at) {
        it->second.revoked_at = clock_.now();
        it->second.revoked_by_request = true;
    }
    return answer(204, "");
}

}  // namespace pgbv::ctl::testing
