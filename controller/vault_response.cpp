// What Vault's answers mean.

#include "controller/vault_response.hpp"

#include "controller/json.hpp"
#include "controller/log.hpp"
#include "pgbv/wire.h"

namespace pgbv::ctl {
namespace {

constexpr std::size_t kMaxErrorText = 300;

VaultError make_error(VaultError::Kind kind, long status, const std::string& message) {
    VaultError e;
    e.kind = kind;
    e.status = status;
    e.message = log::one_line(message);
    return e;
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
    if (r.failed()) return make_error(K::kUnavailable, 0, what + ": " + r.error);
    if (r.status >= 200 && r.status < 300) return std::nullopt;

    std::string detail = "HTTP " + std::to_string(r.status);
    bool refusal = false;
    if (auto text = vault_error_text(r.body.view())) {
        // Vault answers a token renewal past its max TTL with a 500 carrying this text:
        // a refusal, not an outage.
        refusal = text->find("past the max TTL") != std::string::npos;
        detail += text->empty() ? " (no error message)" : ": " + *text;
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
    return make_error(kind, r.status, what + ": " + detail);
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
                   "no lease_id: is this a dynamic database role (static roles use "
                   "static-creds and are not supported)?");
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
