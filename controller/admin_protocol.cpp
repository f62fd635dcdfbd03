// The admin protocol between pgbv-controller and pgbvctl.

#include "controller/admin_protocol.hpp"

#include <vector>

#include "controller/json.hpp"
#include "controller/log.hpp"

namespace pgbv::ctl::admin {
namespace {

void put(json_t* o, const char* key, const std::string& v) {
    json_object_set_new(o, key, json_stringn(v.data(), v.size()));
}
void put(json_t* o, const char* key, std::int64_t v) {
    json_object_set_new(o, key, json_integer(static_cast<json_int_t>(v)));
}
void put_bool(json_t* o, const char* key, bool v) {
    json_object_set_new(o, key, json_boolean(v));
}

std::string get_str(const json_t* o, const char* key) {
    return std::string(json::string(o, key).value_or(""));
}
std::int64_t get_int(const json_t* o, const char* key, std::int64_t def) {
    return json::integer(o, key).value_or(def);
}
bool get_bool(const json_t* o, const char* key) {
    return json::boolean(o, key).value_or(false);
}

std::string line_of(const json::Ptr& value) {
    return json::dump(value.get()) + "\n";
}

std::string_view strip_newline(std::string_view line) {
    while (!line.empty() && (line.back() == '\n' || line.back() == '\r'))
        line.remove_suffix(1);
    return line;
}

json_t* health_to_json(const VaultHealthStatus& h) {
    json_t* j = json_object();
    put_bool(j, "enabled", h.enabled);
    put(j, "state", h.state);
    put(j, "code", static_cast<std::int64_t>(h.code));
    put_bool(j, "initialized", h.initialized);
    put_bool(j, "sealed", h.sealed);
    put_bool(j, "standby", h.standby);
    put(j, "version", h.version);
    put(j, "cluster_name", h.cluster_name);
    put(j, "checked_at", h.checked_at);
    put(j, "error", h.error);
    return j;
}

VaultHealthStatus health_from_json(const json_t* j) {
    VaultHealthStatus h;
    h.enabled = get_bool(j, "enabled");
    h.state = get_str(j, "state");
    h.code = static_cast<long>(get_int(j, "code", 0));
    h.initialized = get_bool(j, "initialized");
    h.sealed = get_bool(j, "sealed");
    h.standby = get_bool(j, "standby");
    h.version = get_str(j, "version");
    h.cluster_name = get_str(j, "cluster_name");
    h.checked_at = get_int(j, "checked_at", 0);
    h.error = get_str(j, "error");
    return h;
}

json_t* generation_to_json(const GenerationStatus& g) {
    json_t* j = json_object();
    put(j, "generation", static_cast<std::int64_t>(g.number));
    put(j, "username", g.username);
    put(j, "lease_id", g.lease_id);
    put(j, "state", g.state);
    put(j, "lease_ttl", g.lease_ttl);
    put(j, "deadline", g.deadline);
    put_bool(j, "renewable", g.renewable);
    put(j, "holders", static_cast<std::int64_t>(g.holders));
    put(j, "revoke_failures", static_cast<std::int64_t>(g.revoke_failures));
    return j;
}

GenerationStatus generation_from_json(const json_t* j) {
    GenerationStatus g;
    g.number = static_cast<std::uint64_t>(get_int(j, "generation", 0));
    g.username = get_str(j, "username");
    g.lease_id = get_str(j, "lease_id");
    g.state = get_str(j, "state");
    g.lease_ttl = get_int(j, "lease_ttl", -1);
    g.deadline = get_int(j, "deadline", 0);
    g.renewable = get_bool(j, "renewable");
    g.holders = static_cast<std::uint32_t>(get_int(j, "holders", 0));
    g.revoke_failures = static_cast<std::uint32_t>(get_int(j, "revoke_failures", 0));
    return g;
}

json_t* set_to_json(const SetStatus& set) {
    json_t* j = json_object();
    put(j, "name", set.name);
    put(j, "state", set.state);
    put(j, "kind", set.kind);
    put(j, "source", set.source);
    put(j, "mount", set.mount);
    put(j, "role", set.role);
    put(j, "username", set.username);
    put(j, "generation", static_cast<std::int64_t>(set.generation));
    put(j, "lease_id", set.lease_id);
    put(j, "lease_ttl", set.lease_ttl);
    put_bool(j, "renewable", set.renewable);
    put_bool(j, "max_ttl_reached", set.max_ttl_reached);
    put(j, "deadline", set.deadline);
    put(j, "rotate_at", set.rotate_at);
    put(j, "renew_at", set.renew_at);
    put(j, "draining", static_cast<std::int64_t>(set.draining));
    put(j, "error", set.last_error);
    json_t* gens = json_array();
    for (const GenerationStatus& g : set.generations)
        json_array_append_new(gens, generation_to_json(g));
    json_object_set_new(j, "generations", gens);
    return j;
}

SetStatus set_from_json(const json_t* j) {
    SetStatus set;
    set.name = get_str(j, "name");
    set.state = get_str(j, "state");
    set.kind = get_str(j, "kind");
    set.source = get_str(j, "source");
    set.mount = get_str(j, "mount");
    set.role = get_str(j, "role");
    set.username = get_str(j, "username");
    set.generation = static_cast<std::uint64_t>(get_int(j, "generation", 0));
    set.lease_id = get_str(j, "lease_id");
    set.lease_ttl = get_int(j, "lease_ttl", -1);
    set.renewable = get_bool(j, "renewable");
    set.max_ttl_reached = get_bool(j, "max_ttl_reached");
    set.deadline = get_int(j, "deadline", 0);
    set.rotate_at = get_int(j, "rotate_at", 0);
    set.renew_at = get_int(j, "renew_at", 0);
    set.draining = static_cast<std::uint32_t>(get_int(j, "draining", 0));
    set.last_error = get_str(j, "error");
    std::size_t i;
    json_t* g;
    json_array_foreach(json::array(j, "generations"), i, g) {
        set.generations.push_back(generation_from_json(g));
    }
    return set;
}

std::vector<SetStatus> sets_from_json(const json_t* array) {
    std::vector<SetStatus> sets;
    std::size_t i;
    json_t* j;
    json_array_foreach(array, i, j) {
        sets.push_back(set_from_json(j));
    }
    return sets;
}

std::vector<std::string> strings_from_json(const json_t* array) {
    std::vector<std::string> out;
    std::size_t i;
    json_t* j;
    json_array_foreach(array, i, j) {
        if (json_is_string(j)) out.emplace_back(json_string_value(j), json_string_length(j));
    }
    return out;
}

json_t* strings_to_json(const std::vector<std::string>& items) {
    json_t* a = json_array();
    for (const std::string& item : items)
        json_array_append_new(a, json_stringn(item.data(), item.size()));
    return a;
}

json::Ptr status_to_json(const Status& s) {
    json::Ptr o = json::own(json_object());
    put(o.get(), "health", s.health);
    put(o.get(), "version", s.version);
    put(o.get(), "now", s.now);
    put(o.get(), "uptime", s.uptime);
    json_t* vault = json_object();
    put(vault, "address", s.vault_address);
    put(vault, "state", s.vault_state);
    put(vault, "error", s.vault_error);
    json_object_set_new(vault, "health", health_to_json(s.vault_health));
    json_object_set_new(o.get(), "vault", vault);
    json_t* token = json_object();
    put(token, "state", s.token.state);
    put(token, "method", s.token.method);
    put(token, "ttl", s.token.ttl);
    put_bool(token, "expires", s.token.expires);
    put_bool(token, "renewable", s.token.renewable);
    put_bool(token, "max_ttl_reached", s.token.max_ttl_reached);
    put(token, "logins", static_cast<std::int64_t>(s.token.logins));
    put(token, "error", s.token.last_error);
    put(token, "auth_path", s.token.auth_path);
    put(token, "role", s.token.role);
    put_bool(token, "batch", s.token.batch);
    json_object_set_new(o.get(), "token", token);
    put(o.get(), "plugin_clients", static_cast<std::int64_t>(s.plugin_clients));
    json_t* sets = json_array();
    for (const SetStatus& set : s.sets)
        json_array_append_new(sets, set_to_json(set));
    json_object_set_new(o.get(), "sets", sets);
    return o;
}

std::optional<Status> status_from_json(const json_t* o, std::string* error) {
    if (!json_is_object(o)) {
        *error = "\"status\" is not an object";
        return std::nullopt;
    }
    Status s;
    s.health = get_str(o, "health");
    s.version = get_str(o, "version");
    s.now = get_int(o, "now", 0);
    s.uptime = get_int(o, "uptime", 0);
    const json_t* vault = json::object(o, "vault");
    s.vault_address = get_str(vault, "address");
    s.vault_state = get_str(vault, "state");
    s.vault_error = get_str(vault, "error");
    s.vault_health = health_from_json(json::object(vault, "health"));
    const json_t* token = json::object(o, "token");
    s.token.state = get_str(token, "state");
    s.token.method = get_str(token, "method");
    s.token.ttl = get_int(token, "ttl", -1);
    s.token.expires = get_bool(token, "expires");
    s.token.renewable = get_bool(token, "renewable");
    s.token.max_ttl_reached = get_bool(token, "max_ttl_reached");
    s.token.logins = static_cast<std::uint64_t>(get_int(token, "logins", 0));
    s.token.last_error = get_str(token, "error");
    s.token.auth_path = get_str(token, "auth_path");
    s.token.role = get_str(token, "role");
    s.token.batch = get_bool(token, "batch");
    s.plugin_clients = static_cast<std::uint32_t>(get_int(o, "plugin_clients", 0));
    s.sets = sets_from_json(json::array(o, "sets"));
    if (s.health.empty()) {
        *error = "the status has no \"health\"";
        return std::nullopt;
    }
    return s;
}

}  // namespace

std::string command_list() {
    std::string out;
    for (const char* c : kCommands) {
        if (!out.empty()) out += ", ";
        out += c;
    }
    return out;
}

bool is_command(std::string_view name) {
    for (const char* c : kCommands) {
        if (name == c) return true;
    }
    return false;
}

std::string encode_request(const Request& r) {
    json::Ptr o = json::own(json_object());
    put(o.get(), "command", r.command);
    if (!r.set.empty()) put(o.get(), "set", r.set);
    if (!r.level.empty()) put(o.get(), "level", r.level);
    return line_of(o);
}

std::string encode_status(const Status& s) {
    json::Ptr o = json::own(json_object());
    put_bool(o.get(), "ok", true);
    json_object_set_new(o.get(), "status", status_to_json(s).release());
    return line_of(o);
}

std::string encode_sets(const Status& s) {
    json::Ptr o = json::own(json_object());
    put_bool(o.get(), "ok", true);
    put(o.get(), "now", s.now);
    json_t* sets = json_array();
    for (const SetStatus& set : s.sets)
        json_array_append_new(sets, set_to_json(set));
    json_object_set_new(o.get(), "sets", sets);
    return line_of(o);
}

std::string encode_leases(const Status& s) {
    json::Ptr o = json::own(json_object());
    put_bool(o.get(), "ok", true);
    put(o.get(), "now", s.now);
    json_t* leases = json_array();
    for (const SetStatus& set : s.sets) {
        for (const GenerationStatus& g : set.generations) {
            json_t* j = generation_to_json(g);
            put(j, "set", set.name);
            json_array_append_new(leases, j);
        }
    }
    json_object_set_new(o.get(), "leases", leases);
    return line_of(o);
}

std::string encode_message(std::string_view message) {
    json::Ptr o = json::own(json_object());
    put_bool(o.get(), "ok", true);
    put(o.get(), "message", log::one_line(message));
    return line_of(o);
}

std::string encode_reload(const ReloadReport& r) {
    json::Ptr o = json::own(json_object());
    put_bool(o.get(), "ok", true);
    json_t* j = json_object();
    json_object_set_new(j, "added", strings_to_json(r.added));
    json_object_set_new(j, "changed", strings_to_json(r.changed));
    json_object_set_new(j, "removed", strings_to_json(r.removed));
    json_object_set_new(j, "restart_needed", strings_to_json(r.restart_needed));
    json_object_set_new(o.get(), "reload", j);
    return line_of(o);
}

std::string encode_log_level(std::string_view level, std::string_view previous) {
    json::Ptr o = json::own(json_object());
    put_bool(o.get(), "ok", true);
    put(o.get(), "level", std::string(level));
    put(o.get(), "previous", std::string(previous));
    return line_of(o);
}

std::string encode_ok() {
    json::Ptr o = json::own(json_object());
    put_bool(o.get(), "ok", true);
    return line_of(o);
}

std::string encode_error(std::string_view message) {
    json::Ptr o = json::own(json_object());
    put_bool(o.get(), "ok", false);
    put(o.get(), "error", log::one_line(message));
    return line_of(o);
}

std::optional<Request> parse_request(std::string_view line, std::string* error) {
    line = strip_newline(line);
    if (line.size() > kMaxRequestLine) {
        *error = "request longer than " + std::to_string(kMaxRequestLine) + " bytes";
        return std::nullopt;
    }
    if (line.empty()) {
        *error = "empty line; send one JSON object such as {\"command\":\"status\"}";
        return std::nullopt;
    }
    json::Ptr o = json::parse(line, error);
    if (!o) return std::nullopt;
    if (!json_is_object(o.get())) {
        *error = "the request is not a JSON object; send one such as {\"command\":\"status\"}";
        return std::nullopt;
    }
    auto command = json::string(o.get(), "command");
    if (!command) {
        *error = "the request has no \"command\" string";
        return std::nullopt;
    }
    Request r;
    r.command = std::string(*command);
    for (const char* key : {"set", "level"}) {
        const json_t* v = json_object_get(o.get(), key);
        if (v != nullptr && !json_is_string(v)) {
            *error = std::string("\"") + key + "\" must be a string";
            return std::nullopt;
        }
    }
    r.set = std::string(json::string(o.get(), "set").value_or(""));
    r.level = std::string(json::string(o.get(), "level").value_or(""));
    return r;
}

std::string check_request(const Request& r) {
    if (!is_command(r.command)) {
        // The name comes from outside: one line, and not too long to read.
        std::string name = log::one_line(r.command.substr(0, 64));
        return "unknown command '" + name + "'; valid commands: " + command_list();
    }
    if (r.command == "rotate" && r.set.empty()) {
        return "rotate needs the credential set's name: "
               "{\"command\":\"rotate\",\"set\":\"<name>\"}";
    }
    if (r.command == "log-level" && !log::parse_level(r.level)) {
        return "log-level needs \"level\": error, warning, info or debug" +
               (r.level.empty() ? std::string()
                                : " (not '" + log::one_line(r.level.substr(0, 64)) + "')");
    }
    return "";
}

std::optional<Response> parse_response(std::string_view line, std::string* error) {
    line = strip_newline(line);
    json::Ptr o = json::parse(line, error);
    if (!o) return std::nullopt;
    auto ok = json::boolean(o.get(), "ok");
    if (!ok) {
        *error = "the response has no \"ok\" boolean";
        return std::nullopt;
    }
    Response r;
    r.ok = *ok;
    r.error = get_str(o.get(), "error");
    r.now = get_int(o.get(), "now", 0);
    r.message = get_str(o.get(), "message");
    r.level = get_str(o.get(), "level");
    r.previous = get_str(o.get(), "previous");
    if (const json_t* status = json_object_get(o.get(), "status")) {
        auto s = status_from_json(status, error);
        if (!s) return std::nullopt;
        r.status = std::move(*s);
    }
    if (const json_t* sets = json_object_get(o.get(), "sets")) {
        if (!json_is_array(sets)) {
            *error = "\"sets\" is not an array";
            return std::nullopt;
        }
        r.sets = sets_from_json(sets);
    }
    if (const json_t* leases = json_object_get(o.get(), "leases")) {
        if (!json_is_array(leases)) {
            *error = "\"leases\" is not an array";
            return std::nullopt;
        }
        r.leases.emplace();
        std::size_t i;
        json_t* j;
        json_array_foreach(leases, i, j) {
            r.leases->push_back(Lease{get_str(j, "set"), generation_from_json(j)});
        }
    }
    if (const json_t* reload = json_object_get(o.get(), "reload")) {
        if (!json_is_object(reload)) {
            *error = "\"reload\" is not an object";
            return std::nullopt;
        }
        ReloadReport rr;
        rr.added = strings_from_json(json::array(reload, "added"));
        rr.changed = strings_from_json(json::array(reload, "changed"));
        rr.removed = strings_from_json(json::array(reload, "removed"));
        rr.restart_needed = strings_from_json(json::array(reload, "restart_needed"));
        r.reload = std::move(rr);
    }
    return r;
}

}  // namespace pgbv::ctl::admin
