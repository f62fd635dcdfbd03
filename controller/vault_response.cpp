// What Vault's answers mean.

#include "controller/vault_response.hpp"

#include <algorithm>

#include "controller/json.hpp"
#include "controller/log.hpp"
#include "pgbv/wire.h"

namespace pgbv::ctl {
namespace {

constexpr std::size_t kMaxErrorText = 300;

VaultError make_error(VaultError::Kind kind, long status, const std::string& message,
                      const std::string& detail = std::string()) {
    VaultError e;
    e.kind = kind;
    e.status = status;
    e.message = log::one_line(message);
    e.detail = log::one_line(detail.empty() ? message : detail);
    return e;
}

// Why Vault answers 429/5xx, for the log: retries are expected, but the operator wants to
// know whether to unseal, fix a standby's forwarding or raise a quota.  Empty when Vault's
// own text already says it.
std::string cause_of(long status, const std::string& text) {
    const auto has = [&](const char* word) { return text.find(word) != std::string::npos; };
    switch (status) {
        case 429:
            return has("rate limit") ? "rate limited by a Vault quota; retrying"
                                     : "rate limited, or a standby node; retrying";
        case 500:
            return "Vault internal error; retrying";
        case 502:
            return "upstream failure or rate limit; retrying";
        case 503:
            if (has("sealed")) return "";
            if (has("standby") || has("no active")) {
                return "standby node without an active node; retrying";
            }
            return "Vault unavailable: sealed, standby or overloaded; retrying";
        default:
            return "";
    }
}

VaultError bad(long status, const std::string& what, const std::string& why) {
    return make_error(
            VaultError::Kind::kBadResponse, status,
            what + ": unexpected answer from Vault (HTTP " + std::to_string(status) + "): " + why);
}

// One error string from Vault, e.g. "1 error occurred:\n\t* permission denied\n\n".
std::string flatten(std::string_view message) {
    std::string out;
    std::size_t pos = 0;
    while (pos <= message.size()) {
        auto nl = message.find('\n', pos);
        if (nl == std::string_view::npos) nl = message.size();
        std::string line = log::one_line(message.substr(pos, nl - pos));
        pos = nl + 1;
        if (line.empty()) continue;
        // go-multierror's header line says nothing by itself.
        if (line.find("error occurred:") != std::string::npos ||
            line.find("errors occurred:") != std::string::npos) {
            continue;
        }
        if (line.rfind("* ", 0) == 0) line.erase(0, 2);
        if (!out.empty()) out += "; ";
        out += line;
    }
    return out;
}

Result<json::Ptr> body_object(const HttpResponse& r, const std::string& what) {
    if (r.body.empty()) return bad(r.status, what, "empty body");
    std::string error;
    json::Ptr root = json::parse(r.body.view(), &error);
    if (!root) {
        return bad(r.status, what,
                   error + " in a body of " + std::to_string(r.body.size()) +
                           " bytes (truncated or not JSON)");
    }
    if (!json_is_object(root.get())) return bad(r.status, what, "the body is not a JSON object");
    return root;
}

std::vector<std::string> warnings_of(const json_t* root) {
    std::vector<std::string> out;
    const json_t* list = json::array(root, "warnings");
    size_t i;
    json_t* item;
    json_array_foreach(list, i, item) {
        if (json_is_string(item)) out.push_back(log::one_line(json_string_value(item)));
    }
    return out;
}

std::optional<Duration> seconds(const json_t* obj, const char* key) {
    auto v = json::integer(obj, key);
    if (!v || *v < 0 || *v > (std::int64_t{1} << 40)) return std::nullopt;
    return std::chrono::seconds(*v);
}

}  // namespace

std::optional<std::string> vault_error_text(std::string_view body) {
    json::Ptr root = json::parse(body, nullptr);
    const json_t* errors = json::array(root.get(), "errors");
    if (errors == nullptr) return std::nullopt;
    std::string text;
    size_t i;
    json_t* item;
    json_array_foreach(errors, i, item) {
        if (!json_is_string(item)) continue;
        const std::string one = flatten(json_string_value(item));
        if (one.empty()) continue;
        if (!text.empty()) text += "; ";
        text += one;
    }
    if (text.size() > kMaxErrorText) text = text.substr(0, kMaxErrorText) + "...";
    return text;
}

std::optional<VaultError> error_of(const HttpResponse& r, const std::string& what) {
    using K = VaultError::Kind;
    if (r.failed()) return make_error(K::kUnavailable, 0, what + ": " + r.error, r.error);
    if (r.status >= 200 && r.status < 300) return std::nullopt;

    std::string detail = "HTTP " + std::to_string(r.status);
    bool refusal = false;
    if (auto text = vault_error_text(r.body.view())) {
        // Vault answers a token renewal past its max TTL with a 500 carrying this text:
        // a refusal, not an outage.
        refusal = text->find("past the max TTL") != std::string::npos;
        detail += text->empty() ? " (no error message)" : ": " + *text;
        if (const std::string cause = cause_of(r.status, *text); !refusal && !cause.empty()) {
            detail += " (" + cause + ")";
        }
    } else if (!r.body.empty()) {
        // A proxy's page or garbage: say how big, never what.
        detail += " with a non-Vault body of " + std::to_string(r.body.size()) + " bytes";
    }
    K kind;
    if (refusal) {
        kind = K::kRejected;
    } else if (r.status == 403) {
        kind = K::kDenied;
    } else if (r.status == 429 || r.status >= 500 || r.status < 400) {
        // Throttled, failing, sealed, standby; or a redirect beyond those we follow.
        kind = K::kUnavailable;
        if (r.status >= 300 && r.status < 400) detail += " (redirect not followed)";
    } else {
        kind = K::kRejected;
    }
    return make_error(kind, r.status, what + ": " + detail, detail);
}

Result<AuthInfo> parse_auth(const HttpResponse& r, const std::string& what) {
    if (auto e = error_of(r, what)) return *e;
    auto root = body_object(r, what);
    if (!root.ok()) return root.error();
    const json_t* auth = json::object(root.value().get(), "auth");
    if (auth == nullptr) return bad(r.status, what, "no \"auth\" object");
    auto token = json::string(auth, "client_token");
    if (!token || token->empty()) return bad(r.status, what, "no auth.client_token");
    auto ttl = seconds(auth, "lease_duration");
    if (!ttl) return bad(r.status, what, "auth.lease_duration missing or not a number");
    AuthInfo info;
    info.token.assign(*token);
    info.accessor = std::string(json::string(auth, "accessor").value_or(""));
    info.ttl = *ttl;
    info.renewable = json::boolean(auth, "renewable").value_or(false);
    info.batch = json::string(auth, "token_type").value_or("") == "batch";
    if (info.batch) info.renewable = false;
    info.warnings = warnings_of(root.value().get());
    return info;
}

Result<TokenInfo> parse_token_lookup(const HttpResponse& r, const std::string& what) {
    if (auto e = error_of(r, what)) return *e;
    auto root = body_object(r, what);
    if (!root.ok()) return root.error();
    const json_t* data = json::object(root.value().get(), "data");
    if (data == nullptr) return bad(r.status, what, "no \"data\" object");
    auto ttl = seconds(data, "ttl");
    if (!ttl) return bad(r.status, what, "data.ttl missing or not a number");
    TokenInfo info;
    info.ttl = *ttl;
    info.renewable = json::boolean(data, "renewable").value_or(false);
    info.creation_ttl = seconds(data, "creation_ttl").value_or(Duration::zero());
    info.batch = json::string(data, "type").value_or("") == "batch";
    if (info.batch) info.renewable = false;
    return info;
}

Result<DbCredentials> parse_credentials(const HttpResponse& r, const std::string& what) {
    if (auto e = error_of(r, what)) return *e;
    auto root = body_object(r, what);
    if (!root.ok()) return root.error();
    const json_t* top = root.value().get();
    const json_t* data = json::object(top, "data");
    if (data == nullptr) return bad(r.status, what, "no \"data\" object");
    auto user = json::string(data, "username");
    auto password = json::string(data, "password");
    if (!user || user->empty()) return bad(r.status, what, "no data.username");
    if (!password || password->empty()) return bad(r.status, what, "no data.password");
    if (user->size() > PGBV_WIRE_MAX_USERNAME || user->find('\0') != std::string_view::npos) {
        return bad(r.status, what,
                   "data.username is longer than 127 bytes or contains NUL, which the plugin "
                   "protocol cannot carry; shorten the role's username_template");
    }
    if (password->size() > PGBV_WIRE_MAX_PASSWORD ||
        password->find('\0') != std::string_view::npos) {
        return bad(r.status, what,
                   "data.password is longer than 1024 bytes or contains NUL, which the plugin "
                   "protocol cannot carry; change the role's password policy");
    }
    auto lease_id = json::string(top, "lease_id");
    auto ttl = seconds(top, "lease_duration");
    if (!lease_id || lease_id->empty()) {
        return bad(r.status, what,
                   "no lease_id: is this a dynamic database role (for a static role set "
                   "kind = static in the set)?");
    }
    if (!ttl) return bad(r.status, what, "lease_duration missing or not a number");
    DbCredentials c;
    c.lease_id = std::string(*lease_id);
    c.ttl = *ttl;
    c.renewable = json::boolean(top, "renewable").value_or(false);
    c.username = std::string(*user);
    c.password.assign(*password);
    return c;
}

namespace {

// A username and password the plugin protocol can carry; `source` says what to change
// when they cannot be (e.g. "the role's username_template").
std::optional<VaultError> check_login(long status, const std::string& what,
                                      const std::string& user_field, std::string_view user,
                                      const std::string& password_field, std::string_view password,
                                      const char* fix) {
    if (user.size() > PGBV_WIRE_MAX_USERNAME || user.find('\0') != std::string_view::npos) {
        return bad(status, what,
                   user_field +
                           " is longer than 127 bytes or contains NUL, which the plugin "
                           "protocol cannot carry; " +
                           fix);
    }
    if (password.size() > PGBV_WIRE_MAX_PASSWORD || password.find('\0') != std::string_view::npos) {
        return bad(status, what,
                   password_field +
                           " is longer than 1024 bytes or contains NUL, which the plugin "
                           "protocol cannot carry; " +
                           fix);
    }
    return std::nullopt;
}

const char* json_type_name(const json_t* v) {
    switch (json_typeof(v)) {
        case JSON_OBJECT:
            return "an object";
        case JSON_ARRAY:
            return "an array";
        case JSON_INTEGER:
        case JSON_REAL:
            return "a number";
        case JSON_TRUE:
        case JSON_FALSE:
            return "a boolean";
        case JSON_NULL:
            return "null";
        case JSON_STRING:
            break;
    }
    return "a string";
}

}  // namespace

Result<StaticCredentials> parse_static_credentials(const HttpResponse& r, const std::string& what) {
    if (auto e = error_of(r, what)) return *e;
    auto root = body_object(r, what);
    if (!root.ok()) return root.error();
    const json_t* data = json::object(root.value().get(), "data");
    if (data == nullptr) return bad(r.status, what, "no \"data\" object");
    auto user = json::string(data, "username");
    auto password = json::string(data, "password");
    if (!user || user->empty()) return bad(r.status, what, "no data.username");
    if (!password || password->empty()) return bad(r.status, what, "no data.password");
    if (auto e = check_login(r.status, what, "data.username", *user, "data.password", *password,
                             "change the static role's user or password policy")) {
        return *e;
    }
    // Vault reports the time to the next rotation; a rotation that is overdue (Vault's
    // queue runs every few seconds) may show as 0 or, on some versions, below 0.
    auto ttl = json::integer(data, "ttl");
    if (!ttl) return bad(r.status, what, "data.ttl missing or not a number");
    StaticCredentials c;
    c.username = std::string(*user);
    c.password.assign(*password);
    c.ttl = std::chrono::seconds(std::clamp<std::int64_t>(*ttl, 0, std::int64_t{1} << 40));
    c.last_vault_rotation = std::string(json::string(data, "last_vault_rotation").value_or(""));
    return c;
}

Result<KvCredentials> parse_kv_credentials(const HttpResponse& r, const std::string& what,
                                           const std::string& username_field,
                                           const std::string& password_field) {
    if (r.status == 404 && !r.failed()) {
        // KV v2 answers 404 both for a path never written and for a latest version that
        // was deleted or destroyed (then with its metadata).
        json::Ptr root = json::parse(r.body.view(), nullptr);
        const json_t* meta = json::object(json::object(root.get(), "data"), "metadata");
        const auto deleted = json::string(meta, "deletion_time");
        const bool destroyed = json::boolean(meta, "destroyed").value_or(false);
        VaultError e;
        e.kind = VaultError::Kind::kRejected;
        e.status = 404;
        if (meta != nullptr && (destroyed || (deleted && !deleted->empty()))) {
            e.detail = "HTTP 404: the latest version (" +
                       std::to_string(json::integer(meta, "version").value_or(0)) + ") was " +
                       (destroyed ? "destroyed" : "deleted") +
                       "; write a new version (vault kv put) or undelete it";
        } else {
            e.detail =
                    "HTTP 404: no secret there; check mount and path (the mount must be a KV "
                    "version 2 engine, path is under it without 'data/'), or write the secret "
                    "with vault kv put";
        }
        e.message = what + ": " + e.detail;
        return e;
    }
    if (auto e = error_of(r, what)) return *e;
    auto root = body_object(r, what);
    if (!root.ok()) return root.error();
    const json_t* outer = json::object(root.value().get(), "data");
    if (outer == nullptr) return bad(r.status, what, "no \"data\" object");
    const json_t* fields = json::object(outer, "data");
    if (fields == nullptr) {
        return bad(r.status, what,
                   "no data.data object: is the mount a KV version 2 engine (version 1 is "
                   "read without 'data/')?");
    }
    const json_t* meta = json::object(outer, "metadata");
    const std::int64_t version = json::integer(meta, "version").value_or(0);
    const std::string at_version = version > 0 ? " (version " + std::to_string(version) + ")" : "";
    auto field = [&](const std::string& name, const char* key) -> Result<std::string_view> {
        const json_t* v = json_object_get(fields, name.c_str());
        VaultError e;
        e.kind = VaultError::Kind::kRejected;
        e.status = r.status;
        if (v == nullptr) {
            e.detail = "the secret" + at_version + " has no field \"" + name + "\" (" + key +
                       "); write it with vault kv put, or set " + key + " to the field that " +
                       "holds it";
        } else if (!json_is_string(v)) {
            e.detail = "field \"" + name + "\" (" + key + ") of the secret" + at_version + " is " +
                       json_type_name(v) + ", not a string";
        } else if (json_string_length(v) == 0) {
            e.detail =
                    "field \"" + name + "\" (" + key + ") of the secret" + at_version + " is empty";
        } else {
            return std::string_view(json_string_value(v), json_string_length(v));
        }
        e.message = what + ": " + e.detail;
        return e;
    };
    auto user = field(username_field, "username_field");
    if (!user.ok()) return user.error();
    auto password = field(password_field, "password_field");
    if (!password.ok()) return password.error();
    if (auto e = check_login(r.status, what, "field \"" + username_field + "\"", user.value(),
                             "field \"" + password_field + "\"", password.value(),
                             "store a shorter value")) {
        return *e;
    }
    KvCredentials c;
    c.username = std::string(user.value());
    c.password.assign(password.value());
    c.version = version;
    return c;
}

Result<LeaseRenewal> parse_lease_renewal(const HttpResponse& r, const std::string& what) {
    if (auto e = error_of(r, what)) return *e;
    auto root = body_object(r, what);
    if (!root.ok()) return root.error();
    const json_t* top = root.value().get();
    auto ttl = seconds(top, "lease_duration");
    if (!ttl) return bad(r.status, what, "lease_duration missing or not a number");
    LeaseRenewal renewal;
    renewal.lease_id = std::string(json::string(top, "lease_id").value_or(""));
    renewal.ttl = *ttl;
    renewal.renewable = json::boolean(top, "renewable").value_or(false);
    renewal.warnings = warnings_of(top);
    return renewal;
}

Result<NoContent> parse_no_content(const HttpResponse& r, const std::string& what) {
    if (auto e = error_of(r, what)) return *e;
    return NoContent{};
}

}  // namespace pgbv::ctl

namespace pgbv::ctl {

Result<WrapInfo> parse_wrap_lookup(const HttpResponse& r, const std::string& what) {
    if (auto e = error_of(r, what)) return *e;
    auto root = body_object(r, what);
    if (!root.ok()) return root.error();
    const json_t* data = json::object(root.value().get(), "data");
    if (data == nullptr) return bad(r.status, what, "no \"data\" object");
    auto path = json::string(data, "creation_path");
    if (!path) return bad(r.status, what, "no data.creation_path");
    WrapInfo info;
    info.creation_path = std::string(*path);
    info.ttl = seconds(data, "creation_ttl").value_or(Duration::zero());
    return info;
}

Result<UnwrappedSecretId> parse_unwrapped_secret_id(const HttpResponse& r,
                                                    const std::string& what) {
    if (auto e = error_of(r, what)) return *e;
    auto root = body_object(r, what);
    if (!root.ok()) return root.error();
    const json_t* data = json::object(root.value().get(), "data");
    if (data == nullptr) return bad(r.status, what, "no \"data\" object");
    auto id = json::string(data, "secret_id");
    if (!id || id->empty()) {
        return bad(r.status, what,
                   "no data.secret_id: the wrapping token does not wrap an AppRole secret ID");
    }
    UnwrappedSecretId out;
    out.secret_id.assign(*id);
    return out;
}

Result<VaultHealthInfo> parse_health(const HttpResponse& r, const std::string& what) {
    const bool health_code = r.status == 200 || r.status == 429 || r.status == 472 ||
                             r.status == 473 || r.status == 501 || r.status == 503;
    if (r.failed() || !health_code) {
        if (auto e = error_of(r, what)) return *e;
        return bad(r.status, what, "not one of sys/health's status codes");
    }
    auto root = body_object(r, what);
    if (!root.ok()) {
        // A sealed or standby node behind a proxy may answer without Vault's body.
        if (auto e = error_of(r, what)) return *e;
        return root.error();
    }
    const json_t* o = root.value().get();
    VaultHealthInfo h;
    h.status = r.status;
    h.initialized = json::boolean(o, "initialized").value_or(false);
    h.sealed = json::boolean(o, "sealed").value_or(false);
    h.standby = json::boolean(o, "standby").value_or(false);
    h.performance_standby = json::boolean(o, "performance_standby").value_or(false);
    h.version = log::one_line(json::string(o, "version").value_or(""));
    h.cluster_name = log::one_line(json::string(o, "cluster_name").value_or(""));
    return h;
}

}  // namespace pgbv::ctl
