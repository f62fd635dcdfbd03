// The controller's counters and their Prometheus text exposition.

#include "controller/metrics.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <optional>

namespace pgbv::ctl {
namespace {

bool starts_with(std::string_view s, std::string_view prefix) {
    return s.substr(0, prefix.size()) == prefix;
}

bool ends_with(std::string_view s, std::string_view suffix) {
    return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

// Mount paths may have several segments ("team/database"), so the marker is searched.
bool has_segment(std::string_view path, std::string_view marker) {
    return starts_with(path, marker.substr(1)) || path.find(marker) != std::string_view::npos;
}

std::string code_label(long code) {
    return code > 0 ? std::to_string(code) : std::string("error");
}

// The current generation's holders, from the generations list status gives (current
// first); 0 when the list is not filled in.
std::uint32_t current_holders(const SetStatus& s) {
    for (const auto& g : s.generations) {
        if (g.number == s.generation) return g.holders;
    }
    return 0;
}

}  // namespace

std::string_view vault_path_class(std::string_view path) {
    if (const auto q = path.find('?'); q != std::string_view::npos) path = path.substr(0, q);
    while (starts_with(path, "/"))
        path.remove_prefix(1);
    if (path == "auth/token/lookup-self") return "token_lookup";
    if (path == "auth/token/renew-self") return "token_renew";
    if (starts_with(path, "auth/") && ends_with(path, "/login")) return "login";
    if (starts_with(path, "sys/wrapping/")) return "wrapping";
    if (path == "sys/health") return "health";
    if (path == "sys/leases/renew") return "lease_renew";
    if (path == "sys/leases/revoke") return "lease_revoke";
    if (starts_with(path, "sys/") || starts_with(path, "auth/")) return "other";
    if (has_segment(path, "/static-creds/")) return "static_creds";
    if (has_segment(path, "/creds/")) return "creds";
    if (has_segment(path, "/data/")) return "kv";
    return "other";
}

bool set_ready(const SetStatus& s, std::int64_t now, std::string* reason) {
    auto no = [&](const std::string& why) {
        if (reason != nullptr) *reason = "set " + s.name + ": " + why;
        return false;
    };
    if (s.generation == 0) return no("no credentials yet (" + s.state + ")");
    if (s.state == "expired" || (s.deadline != 0 && s.deadline <= now)) {
        return no("generation " + std::to_string(s.generation) +
                  " has reached its deadline without a replacement (" + s.state + ")");
    }
    if (current_holders(s) == 0) {
        return no("generation " + std::to_string(s.generation) +
                  " has not reached any plugin connection (is PgBouncer connected?)");
    }
    return true;
}

Readiness readiness(const Status& status) {
    Readiness r;
    for (const auto& s : status.sets) {
        std::string why;
        if (!set_ready(s, status.now, &why)) {
            r.ready = false;
            r.reasons.push_back(std::move(why));
        }
    }
    return r;
}

// ---------------------------------------------------------------------------------------
// Histogram.

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)), counts_(bounds_.size() + 1, 0) {
    std::sort(bounds_.begin(), bounds_.end());
}

void Histogram::observe(double value) {
    const auto it = std::lower_bound(bounds_.begin(), bounds_.end(), value);
    ++counts_[static_cast<std::size_t>(it - bounds_.begin())];
    sum_ += value;
    ++count_;
}

// ---------------------------------------------------------------------------------------
// Exposition.

std::string escape_label_value(std::string_view value) {
    std::string out;
    out.reserve(value.size());
    for (char c : value) {
        if (c == '\\') {
            out += "\\\\";
        } else if (c == '"') {
            out += "\\\"";
        } else if (c == '\n') {
            out += "\\n";
        } else {
            out += c;
        }
    }
    return out;
}

std::string escape_help(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    for (char c : text) {
        if (c == '\\') {
            out += "\\\\";
        } else if (c == '\n') {
            out += "\\n";
        } else {
            out += c;
        }
    }
    return out;
}

std::string format_sample_value(double value) {
    if (std::isnan(value)) return "NaN";
    if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
    // Exact integers (counters, most gauges) without an exponent or a fraction.
    if (value == std::trunc(value) && std::fabs(value) < 9.007199254740992e15) {
        return std::to_string(static_cast<long long>(value));
    }
    char buf[64];
    const auto res = std::to_chars(buf, buf + sizeof buf, value);
    return std::string(buf, res.ptr);
}

void Exposition::family(std::string_view name, std::string_view type, std::string_view help) {
    out_ += "# HELP ";
    out_ += name;
    out_ += ' ';
    out_ += escape_help(help);
    out_ += "\n# TYPE ";
    out_ += name;
    out_ += ' ';
    out_ += type;
    out_ += '\n';
}

void Exposition::sample(std::string_view name, const Labels& labels, double value) {
    out_ += name;
    if (!labels.empty()) {
        out_ += '{';
        bool first = true;
        for (const auto& [key, v] : labels) {
            if (!first) out_ += ',';
            first = false;
            out_ += key;
            out_ += "=\"";
            out_ += escape_label_value(v);
            out_ += '"';
        }
        out_ += '}';
    }
    out_ += ' ';
    out_ += format_sample_value(value);
    out_ += '\n';
}

void Exposition::histogram(std::string_view name, const Labels& labels, const Histogram& h) {
    const std::string bucket = std::string(name) + "_bucket";
    std::uint64_t cumulative = 0;
    for (std::size_t i = 0; i <= h.bounds().size(); ++i) {
        cumulative += h.counts()[i];
        Labels with = labels;
        with.emplace_back("le", i < h.bounds().size() ? format_sample_value(h.bounds()[i])
                                                      : std::string("+Inf"));
        sample(bucket, with, static_cast<double>(cumulative));
    }
    sample(std::string(name) + "_sum", labels, h.sum());
    sample(std::string(name) + "_count", labels, static_cast<double>(h.count()));
}

// ---------------------------------------------------------------------------------------
// Metrics.

const std::vector<double>& Metrics::latency_bounds() {
    static const std::vector<double> kBounds = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                                0.5,   1,    2.5,   5,    10,  30};
    return kBounds;
}

Metrics::SetCounters& Metrics::of(std::string_view set) {
    auto it = sets_.find(set);
    if (it == sets_.end()) it = sets_.emplace(std::string(set), SetCounters{}).first;
    return it->second;
}

const Metrics::SetCounters* Metrics::find(std::string_view set) const {
    const auto it = sets_.find(set);
    return it == sets_.end() ? nullptr : &it->second;
}

void Metrics::vault_request(std::string_view path_class, long code, Duration took) {
    const auto key = std::make_pair(std::string(path_class), code_label(code));
    ++requests_[key];
    auto it = latency_.find(path_class);
    if (it == latency_.end()) {
        it = latency_.emplace(std::string(path_class), Histogram(latency_bounds())).first;
    }
    it->second.observe(std::max<double>(0, static_cast<double>(took.count()) / 1000.0));
}

void Metrics::rotation(std::string_view set, std::string_view reason) {
    const bool known = std::find(kRotationReasons.begin(), kRotationReasons.end(), reason) !=
                       kRotationReasons.end();
    auto& rotations = of(set).rotations;
    const std::string_view label = known ? reason : std::string_view("other");
    auto it = rotations.find(label);
    if (it == rotations.end()) it = rotations.emplace(std::string(label), 0).first;
    ++it->second;
}

void Metrics::renewal(std::string_view set, bool ok) {
    ++(ok ? of(set).renewals : of(set).renewal_failures);
}

void Metrics::revocation(std::string_view set, bool ok) {
    ++(ok ? of(set).revocations : of(set).revocation_failures);
}

void Metrics::login(bool ok) {
    ++(ok ? logins_ : login_failures_);
}

void Metrics::plugin_connection(bool accepted) {
    ++(accepted ? plugin_accepted_ : plugin_refused_);
}

std::uint64_t Metrics::rotations(std::string_view set, std::string_view reason) const {
    const SetCounters* c = find(set);
    if (c == nullptr) return 0;
    const auto it = c->rotations.find(reason);
    return it == c->rotations.end() ? 0 : it->second;
}

std::uint64_t Metrics::renewals(std::string_view set) const {
    const SetCounters* c = find(set);
    return c ? c->renewals : 0;
}

std::uint64_t Metrics::renewal_failures(std::string_view set) const {
    const SetCounters* c = find(set);
    return c ? c->renewal_failures : 0;
}

std::uint64_t Metrics::revocations(std::string_view set) const {
    const SetCounters* c = find(set);
    return c ? c->revocations : 0;
}

std::uint64_t Metrics::revocation_failures(std::string_view set) const {
    const SetCounters* c = find(set);
    return c ? c->revocation_failures : 0;
}

std::uint64_t Metrics::vault_requests(std::string_view path_class, std::string_view code) const {
    const auto it = requests_.find(std::make_pair(std::string(path_class), std::string(code)));
    return it == requests_.end() ? 0 : it->second;
}

const Histogram* Metrics::latency(std::string_view path_class) const {
    const auto it = latency_.find(path_class);
    return it == latency_.end() ? nullptr : &it->second;
}

std::string Metrics::render(const Status& status) const {
    static const char* const kStates[] = {"waiting_for_token", "fetching", "serving",
                                          "rotating",          "degraded", "expired"};
    using Labels = Exposition::Labels;
    Exposition e;
    auto set_labels = [](const SetStatus& s) { return Labels{{"set", s.name}, {"kind", s.kind}}; };
    auto per_set = [&](std::string_view name, std::string_view type, std::string_view help,
                       const std::function<std::optional<double>(const SetStatus&)>& value) {
        e.family(name, type, help);
        for (const auto& s : status.sets) {
            if (const auto v = value(s)) e.sample(name, set_labels(s), *v);
        }
    };
    auto counter = [&](const SetStatus& s, std::uint64_t SetCounters::*field) {
        const SetCounters* c = find(s.name);
        return std::optional<double>(c ? static_cast<double>(c->*field) : 0.0);
    };

    // Global.
    e.family("pgbv_build_info", "gauge", "The controller's version (always 1).");
    e.sample("pgbv_build_info", {{"version", status.version}}, 1);
    e.family("pgbv_start_time_seconds", "gauge", "When the controller started, Unix time.");
    e.sample("pgbv_start_time_seconds", {}, static_cast<double>(status.now - status.uptime));
    const Readiness ready = readiness(status);
    e.family("pgbv_ready", "gauge",
             "1 when every set has credentials before their deadline, delivered to at least "
             "one plugin connection (what /readyz answers 200 for).");
    e.sample("pgbv_ready", {}, ready.ready ? 1 : 0);
    e.family("pgbv_vault_up", "gauge", "1 when Vault answered the last request, else 0.");
    e.sample("pgbv_vault_up", {}, status.vault_state == "reachable" ? 1 : 0);
    e.family("pgbv_token_valid", "gauge", "1 while the controller holds a usable Vault token.");
    e.sample("pgbv_token_valid", {}, status.token.state == "valid" ? 1 : 0);
    e.family("pgbv_token_seconds_left", "gauge",
             "Seconds until the Vault token ends (absent for a token without expiry or none).");
    if (status.token.ttl >= 0) {
        e.sample("pgbv_token_seconds_left", {}, static_cast<double>(status.token.ttl));
    }
    e.family("pgbv_logins_total", "counter", "Vault logins that gave a new token.");
    e.sample("pgbv_logins_total", {}, static_cast<double>(logins_));
    e.family("pgbv_login_failures_total", "counter",
             "Vault login attempts that failed (each retry counts).");
    e.sample("pgbv_login_failures_total", {}, static_cast<double>(login_failures_));
    e.family("pgbv_plugin_connections", "gauge", "Plugin connections open now.");
    e.sample("pgbv_plugin_connections", {}, static_cast<double>(status.plugin_clients));
    e.family("pgbv_plugin_connections_total", "counter",
             "Plugin connections accepted or refused on the plugin socket.");
    e.sample("pgbv_plugin_connections_total", {{"result", "accepted"}},
             static_cast<double>(plugin_accepted_));
    e.sample("pgbv_plugin_connections_total", {{"result", "refused"}},
             static_cast<double>(plugin_refused_));
    e.family("pgbv_vault_requests_total", "counter",
             "Vault requests by path class and HTTP status (code \"error\": no answer).");
    for (const auto& [key, n] : requests_) {
        e.sample("pgbv_vault_requests_total", {{"path_class", key.first}, {"code", key.second}},
                 static_cast<double>(n));
    }
    e.family("pgbv_vault_request_duration_seconds", "histogram",
             "Time from sending a Vault request to its answer or failure.");
    for (const auto& [path_class, h] : latency_) {
        e.histogram("pgbv_vault_request_duration_seconds", {{"path_class", path_class}}, h);
    }

    // Per set.
    per_set("pgbv_generation", "gauge", "The set's current credential generation (0: none yet).",
            [](const SetStatus& s) { return std::optional<double>(s.generation); });
    per_set("pgbv_lease_seconds_left", "gauge",
            "Seconds until the current lease ends (absent without a lease).",
            [](const SetStatus& s) {
                return s.lease_ttl >= 0 ? std::optional<double>(s.lease_ttl) : std::nullopt;
            });
    per_set("pgbv_deadline_seconds", "gauge",
            "Seconds until the current credentials stop working for sure (absent: no known "
            "end, e.g. a KV secret).",
            [&](const SetStatus& s) {
                return s.deadline != 0 ? std::optional<double>(
                                                 std::max<std::int64_t>(0, s.deadline - status.now))
                                       : std::nullopt;
            });
    per_set("pgbv_old_generations", "gauge",
            "Older generations still kept: in use by PgBouncer or waiting for revocation.",
            [](const SetStatus& s) { return std::optional<double>(s.draining); });
    per_set("pgbv_current_generation_plugins", "gauge",
            "Plugin connections that received the current generation.",
            [](const SetStatus& s) { return std::optional<double>(current_holders(s)); });
    per_set("pgbv_set_ready", "gauge", "1 when the set counts as ready (see pgbv_ready).",
            [&](const SetStatus& s) {
                return std::optional<double>(set_ready(s, status.now, nullptr) ? 1 : 0);
            });
    e.family("pgbv_set_state", "gauge", "1 for the set's current state, 0 for the others.");
    for (const auto& s : status.sets) {
        for (const char* state : kStates) {
            Labels l = set_labels(s);
            l.emplace_back("state", state);
            e.sample("pgbv_set_state", l, s.state == state ? 1 : 0);
        }
    }
    e.family("pgbv_rotations_total", "counter",
             "New generations that replaced older ones, by reason (the first fetch is not "
             "counted).");
    for (const auto& s : status.sets) {
        for (std::string_view reason : kRotationReasons) {
            Labels l = set_labels(s);
            l.emplace_back("reason", std::string(reason));
            e.sample("pgbv_rotations_total", l, static_cast<double>(rotations(s.name, reason)));
        }
    }
    per_set("pgbv_renewals_total", "counter", "Lease renewals Vault granted.",
            [&](const SetStatus& s) { return counter(s, &SetCounters::renewals); });
    per_set("pgbv_renewal_failures_total", "counter",
            "Lease renewals that failed (refused, or Vault unreachable).",
            [&](const SetStatus& s) { return counter(s, &SetCounters::renewal_failures); });
    per_set("pgbv_revocations_total", "counter", "Old leases revoked.",
            [&](const SetStatus& s) { return counter(s, &SetCounters::revocations); });
    per_set("pgbv_revocation_failures_total", "counter", "Lease revocations that failed.",
            [&](const SetStatus& s) { return counter(s, &SetCounters::revocation_failures); });
    return e.take();
}

}  // namespace pgbv::ctl
