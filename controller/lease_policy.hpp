// When to renew, rotate, log in again and retry: the controller's whole timing policy.
//
// Like Vault's api/lifetime_watcher.go, every timing decision lives here, with its
// constants named and explained, as pure functions of the current time, what Vault
// granted and a jitter draw u in [0, 1).  The state machines (credential_set, token_keeper)
// only ask these functions; nothing here knows about HTTP or timers.
//
// Vocabulary:
//   ttl       what Vault granted on the last fetch, login or renewal.
//   cap       a renewal granted less than asked: the lease (or token) has reached its
//             max TTL and its end is now final.
//   deadline  when credentials stop working for sure: the earliest of the lease's final
//             end and the end of the token that fetched them (Vault revokes a token's
//             leases with it).
//   margin    how long before the deadline new credentials are pushed, so that
//             transactions on the old ones can finish.
//
// Static roles and KV secrets have no lease: a static role is read again right after
// Vault's scheduled rotation (below), a KV secret every refresh_interval (configured).

#ifndef PGBV_CONTROLLER_LEASE_POLICY_HPP
#define PGBV_CONTROLLER_LEASE_POLICY_HPP

#include <algorithm>
#include <chrono>
#include <cmath>
#include <optional>

#include "controller/clock.hpp"

namespace pgbv::ctl::policy {

using namespace std::chrono_literals;

// Renew once this fraction of the granted TTL has passed: the remaining third leaves
// room to retry a failed renewal before the lease ends (Vault's clients do the same).
inline constexpr double kRenewFraction = 2.0 / 3.0;

// Renew up to this fraction of kRenewFraction earlier, at random, so that leases fetched
// together do not renew together.  Only earlier, never later.
inline constexpr double kRenewJitter = 0.1;

// A margin never takes more than this fraction of the TTL it applies to.  A margin meant
// for hour-long leases would otherwise rotate ten-second leases as soon as they arrive.
inline constexpr double kMaxMarginFraction = 0.5;

// Time reserved for the renewal round trip that discovers a cap (at most a tenth of the
// TTL): renewing no later than end - margin - this finds the cap while there is still a
// whole margin left before the final end.
inline constexpr Duration kRenewRoundTrip = 1s;

// Nothing is scheduled sooner than this after the step that scheduled it: bounds the
// request rate when TTLs are tiny or Vault grants zero.
inline constexpr Duration kMinStep = 200ms;

// Retries wait retry_min * 2^(failures-1), at most retry_max (both configurable), less up
// to this fraction at random so that many sets failing together spread their retries.
inline constexpr double kBackoffJitter = 0.25;

// A retry never waits longer than this fraction of the time left before the deadline, so
// a Vault that comes back shortly before the credentials die is still noticed in time.
inline constexpr double kBackoffDeadlineFraction = 0.5;

// The Vault token is replaced this long before it ends, on top of the largest rotation
// margin: time for the login and for every set to fetch under the new token, so that the
// old credentials still get their full margin to drain before the old token takes them.
inline constexpr Duration kReloginExtra = 10s;

// A LOGIN_FAILED triggers at most one refetch per set per this interval: a PostgreSQL
// that refuses every new role must not make the controller hammer Vault.
inline constexpr Duration kLoginFailedRefetchInterval = 10s;

// A static role is read again this long after Vault said it would rotate it (its ttl):
// the ttl is whole seconds rounded down, so reading at ttl exactly would often find the old
// password.  The old password stops working at once, so any later costs logins; new server
// logins in that window fail with 28P01, which triggers an immediate read anyway.
inline constexpr Duration kStaticRotationLag = 1s;

// A static role read after its rotation was due that still shows the old password (Vault
// rotates from a queue checked every few seconds, and stores the new password only after
// PostgreSQL has it) is read again this often ...
inline constexpr Duration kStaticRotationPoll = 1s;

// ... until this long has passed; then it is read again on Vault's next ttl (or after
// kStaticRotationFallback if Vault still reports none), with a warning: polling forever
// would hammer Vault for a role whose rotation is stuck (e.g. PostgreSQL refuses it).
inline constexpr Duration kStaticRotationPollLimit = 30s;
inline constexpr Duration kStaticRotationFallback = 60s;

// When to read a static role again that was read at `now` with `ttl` left before Vault
// rotates it.
inline MonoTime static_reread_at(MonoTime now, Duration ttl) {
    return now + std::max(ttl, Duration::zero()) + kStaticRotationLag;
}

// The margin used for something whose TTL (or whole life) is `life`.
inline Duration effective_margin(Duration margin, Duration life) {
    const auto cap = Duration(static_cast<Duration::rep>(life.count() * kMaxMarginFraction));
    return std::max(Duration::zero(), std::min(margin, cap));
}

// When to renew a lease or token that was granted `ttl` at `now`, so that a cap is found
// at least `margin` (effective) before the final end.
inline MonoTime renew_at(MonoTime now, Duration ttl, Duration margin, double u) {
    const double fraction = kRenewFraction * (1.0 - kRenewJitter * u);
    const Duration by_fraction(static_cast<Duration::rep>(ttl.count() * fraction));
    const Duration round_trip = std::min(kRenewRoundTrip, ttl / 10);
    const Duration by_margin = ttl - effective_margin(margin, ttl) - round_trip;
    return now + std::max(kMinStep, std::min(by_fraction, by_margin));
}

// True when a renewal that asked for `requested` was capped by the max TTL.  Vault grants
// whole seconds and grants exactly what was asked unless the max TTL is in the way.
inline bool renewal_capped(Duration requested, Duration granted) {
    return granted < requested;
}

// The earlier of two optional times; nullopt means "no end known".
inline std::optional<MonoTime> earliest(std::optional<MonoTime> a, std::optional<MonoTime> b) {
    if (!a) return b;
    if (!b) return a;
    return std::min(*a, *b);
}

// When to fetch new credentials for ones that die at `deadline`; `life` is their TTL.
inline MonoTime rotate_at(MonoTime deadline, Duration margin, Duration life) {
    return deadline - effective_margin(margin, life);
}

// How long to wait before retry number `failures` (1 for the first retry).
// `time_left`: until the deadline of what the retry protects, if any.
inline Duration backoff(int failures, Duration retry_min, Duration retry_max, double u,
                        std::optional<Duration> time_left) {
    Duration wait = retry_min;
    for (int i = 1; i < failures && wait < retry_max; ++i)
        wait *= 2;
    wait = std::min(wait, retry_max);
    wait = Duration(static_cast<Duration::rep>(wait.count() * (1.0 - kBackoffJitter * u)));
    if (time_left && *time_left > Duration::zero()) {
        const Duration bound(
                static_cast<Duration::rep>(time_left->count() * kBackoffDeadlineFraction));
        wait = std::min(wait, bound);
    }
    return std::max(wait, kMinStep);
}

// How long before its end the token must be replaced, given the largest rotation margin
// of all credential sets.
inline Duration relogin_lead(Duration largest_margin) {
    return largest_margin + kReloginExtra;
}

// When to log in again for a token issued at `issued` that ends for good at `end`.
inline MonoTime relogin_at(MonoTime issued, MonoTime end, Duration lead) {
    return end - effective_margin(lead, to_duration(end - issued));
}

}  // namespace pgbv::ctl::policy

#endif  // PGBV_CONTROLLER_LEASE_POLICY_HPP
