// The controller's Prometheus metrics: counters of what it did, and the exposition (text
// format 0.0.4) of those counters with the gauges of a Status, computed at scrape time.
//
// Counters live in a Metrics object that main() creates and hands to the VaultClient
// (VaultClient::set_metrics) and the PluginServer; every component that talks to Vault
// holds the client, which is how the credential sets and the token keeper reach it.  No
// global: each unit test owns its own.
//
// Labels: per set `set` and `kind` (dynamic, static, kv); rotations also `reason` (one of
// kRotationReasons); Vault requests `path_class` (vault_path_class()) and `code` (the
// HTTP status, or "error" when no answer came: refused, timeout, TLS).
//
// Never holds a secret: set names, path classes and codes only.
//
// Thread safety: none; everything runs on the event loop's thread.

#ifndef PGBV_CONTROLLER_METRICS_HPP
#define PGBV_CONTROLLER_METRICS_HPP

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "controller/clock.hpp"
#include "controller/status.hpp"

namespace pgbv::ctl {

// Why a set got new credentials, as the `reason` label of pgbv_rotations_total:
//   scheduled        the lease reaches its max TTL or is not renewable
//   token_end        the Vault token that fetched them was replaced (its end is near)
//   login_failed     PostgreSQL refused them (LOGIN_FAILED, SQLSTATE class 28)
//   manual           pgbvctl rotate
//   lease_lost       Vault no longer knows the lease (revoked behind the controller's back)
//   renewal_refused  renewals are refused (403) and the lease ends soon
//   vault_rotated    a static role: Vault rotated the password
//   kv_changed       a KV secret: a periodic read found other credentials
//   settings_changed a reload changed the set's settings
//   other            anything else
inline constexpr std::array<std::string_view, 10> kRotationReasons = {
        "scheduled",       "token_end",     "login_failed", "manual",           "lease_lost",
        "renewal_refused", "vault_rotated", "kv_changed",   "settings_changed", "other"};

// The path_class label of a Vault API path (what follows /v1/, query string allowed):
// login, token_lookup, token_renew, wrapping, health, creds, static_creds, kv,
// lease_renew, lease_revoke, other.
std::string_view vault_path_class(std::string_view path);

// Readiness (/readyz, pgbv_ready): every set has credentials before their deadline and
// they reached at least one plugin connection.
struct Readiness {
    bool ready = true;
    std::vector<std::string> reasons;  // one line per set that is not ready
};
Readiness readiness(const Status& status);
// Whether one set is ready; if not and `reason` is given, why (one line naming the set).
bool set_ready(const SetStatus& set, std::int64_t now, std::string* reason);

// A Prometheus histogram: cumulative buckets on fixed upper bounds, plus sum and count.
class Histogram {
public:
    explicit Histogram(std::vector<double> bounds);

    void observe(double value);

    const std::vector<double>& bounds() const { return bounds_; }
    // counts()[i]: observations <= bounds()[i] (not cumulative); the last entry: above
    // every bound.
    const std::vector<std::uint64_t>& counts() const { return counts_; }
    double sum() const { return sum_; }
    std::uint64_t count() const { return count_; }

private:
    std::vector<double> bounds_;
    std::vector<std::uint64_t> counts_;
    double sum_ = 0;
    std::uint64_t count_ = 0;
};

// Writes the text exposition format 0.0.4: a family's HELP and TYPE lines, then its
// samples; label values and HELP texts escaped as the format requires.
class Exposition {
public:
    using Labels = std::vector<std::pair<std::string_view, std::string>>;

    void family(std::string_view name, std::string_view type, std::string_view help);
    void sample(std::string_view name, const Labels& labels, double value);
    // A histogram's _bucket, _sum and _count samples under `labels`.
    void histogram(std::string_view name, const Labels& labels, const Histogram& h);

    const std::string& text() const { return out_; }
    std::string take() { return std::move(out_); }

private:
    std::string out_;
};

// `\` `"` and newline escaped for a label value.
std::string escape_label_value(std::string_view value);
// `\` and newline escaped for a HELP text.
std::string escape_help(std::string_view text);
// A sample value: integers without a fraction, others in the shortest exact form;
// +Inf, -Inf, NaN as Prometheus spells them.
std::string format_sample_value(double value);

class Metrics {
public:
    // Upper bounds of pgbv_vault_request_duration_seconds: from a local Vault's
    // milliseconds to request_timeout's default (10 s) and beyond.
    static const std::vector<double>& latency_bounds();

    Metrics() = default;
    Metrics(const Metrics&) = delete;
    Metrics& operator=(const Metrics&) = delete;

    // One Vault request answered (`code` its HTTP status) or failed below HTTP (code 0),
    // after `took`.
    void vault_request(std::string_view path_class, long code, Duration took);
    // `set` got a new generation replacing an older one, for `reason` (kRotationReasons).
    void rotation(std::string_view set, std::string_view reason);
    void renewal(std::string_view set, bool ok);
    void revocation(std::string_view set, bool ok);
    // A login attempt (any auth method) that gave a new token, or that failed.
    void login(bool ok);
    // A plugin connection accepted, or refused (not allowed, too many, shutting down).
    void plugin_connection(bool accepted);

    // For tests and the exposition.
    std::uint64_t rotations(std::string_view set, std::string_view reason) const;
    std::uint64_t renewals(std::string_view set) const;
    std::uint64_t renewal_failures(std::string_view set) const;
    std::uint64_t revocations(std::string_view set) const;
    std::uint64_t revocation_failures(std::string_view set) const;
    std::uint64_t vault_requests(std::string_view path_class, std::string_view code) const;
    std::uint64_t logins() const { return logins_; }
    std::uint64_t login_failures() const { return login_failures_; }
    std::uint64_t plugin_connections(bool accepted) const {
        return accepted ? plugin_accepted_ : plugin_refused_;
    }
    // nullptr until a request of that class has been timed.
    const Histogram* latency(std::string_view path_class) const;

    // The whole exposition: these counters and the gauges of `status` (whose sets decide
    // which per-set series appear: a set removed from the configuration disappears).
    std::string render(const Status& status) const;

private:
    struct SetCounters {
        std::map<std::string, std::uint64_t, std::less<>> rotations;  // by reason
        std::uint64_t renewals = 0;
        std::uint64_t renewal_failures = 0;
        std::uint64_t revocations = 0;
        std::uint64_t revocation_failures = 0;
    };

    SetCounters& of(std::string_view set);
    const SetCounters* find(std::string_view set) const;

    std::map<std::string, SetCounters, std::less<>> sets_;
    // (path_class, code) -> count
    std::map<std::pair<std::string, std::string>, std::uint64_t, std::less<>> requests_;
    std::map<std::string, Histogram, std::less<>> latency_;
    std::uint64_t logins_ = 0;
    std::uint64_t login_failures_ = 0;
    std::uint64_t plugin_accepted_ = 0;
    std::uint64_t plugin_refused_ = 0;
};

}  // namespace pgbv::ctl

#endif  // PGBV_CONTROLLER_METRICS_HPP
